"""The training domain of a learned router, and how far a prompt lies outside it.

A router trained on one kind of traffic (MMLU questions) says nothing useful
about another (word problems, open-ended requests): there its score can be
worse than a coin. :class:`DomainGuard` is the summary a router file keeps of
the prompts it was trained on, in the router's own features:

- **vocabulary novelty**: the share of the prompt's word n-grams
  (:func:`~agentmesh.routing.features.terms`) that no two training prompts
  shared. The training vocabulary is a hashed bitmap (CRC-32 of each n-gram,
  one bit; a false hit can only make a prompt look more familiar);
- **feature distance**: the root mean square of the prompt's named features
  (:data:`~agentmesh.routing.features.FEATURES`) in training standard
  deviations (a deviation floor of 0.05, as the trainer uses).

Each is divided by its limit: a quantile (0.99 by default) of the training
prompts' own values, the novelty measured cross-fitted (vocabulary of the
other folds), so about 1% of in-domain prompts lie beyond it. The prompt's
**distance** is the larger ratio; above 1 it is out of domain, and the router
falls back to the declared safe strategy (:data:`FALLBACKS`). Pure Python, no
numpy: score and distance together take about 1.36 times the score alone
(``benchmarks/learned_guard.py``: ~85 against ~63 µs per MMLU prompt).
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agentmesh.routing.features import FEATURES

__all__ = ["FALLBACKS", "DomainGuard", "vocabulary_bits"]

FALLBACKS: Mapping[str, str] = MappingProxyType(
    {
        "strong": "the strongest eligible model (score 1)",
        "prior": "the training rows' prior win rate of the strong model as the score",
    }
)
"""Safe strategy name -> what an out-of-domain prompt gets."""

_FLOOR = 0.05


def _bit(gram: str, size: int) -> int:
    return zlib.crc32(gram.encode("utf-8")) % size


def vocabulary_bits(grams: Iterable[str], per_gram: int = 8) -> bytearray:
    """A bitmap of ``grams`` (about ``per_gram`` bits per n-gram, a power of two in all)."""
    found = list(grams)
    size = 1 << max(10, math.ceil(math.log2(max(1, len(found)) * per_gram)))
    bits = bytearray(size // 8)
    for gram in found:
        i = _bit(gram, size)
        bits[i >> 3] |= 1 << (i & 7)
    return bits


@dataclass(frozen=True, slots=True)
class DomainGuard:
    """Where a router's training prompts lie, and what to do outside (see the module docstring).

    Attributes:
        features: Names of the features measured (the router's).
        mean: Training mean of each feature.
        std: Training standard deviation of each (floored at 0.05).
        feature_limit: Feature distance at the ``quantile`` of the training prompts.
        vocabulary: Bitmap of the n-grams at least two training prompts have.
        novelty_limit: Novelty at the ``quantile`` (cross-fitted).
        order: Longest n-gram.
        quantile: Share of training prompts inside both limits, each.
        fallback: Safe strategy out of domain, a key of :data:`FALLBACKS`.
        prior: The strong model's prior win rate on the training rows.
        rows: How many training prompts were summarised.
        typical: Median distance of the training prompts (cross-fitted): a
            batch of traffic whose median lies well above it has drifted, even
            when few of its prompts are past the edge one by one.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    feature_limit: float
    vocabulary: bytes
    novelty_limit: float
    order: int = 2
    quantile: float = 0.99
    fallback: str = "strong"
    prior: float = 0.5
    rows: int = 0
    typical: float | None = None

    def __post_init__(self) -> None:
        if self.fallback not in FALLBACKS:
            raise ValueError(f"unknown fallback {self.fallback!r}; known: {', '.join(FALLBACKS)}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {sorted(FEATURES)}")
        if not len(self.features) == len(self.mean) == len(self.std):
            raise ValueError("one mean and one std per feature are needed")
        if self.feature_limit <= 0 or self.novelty_limit <= 0:
            raise ValueError("domain limits must be positive")
        if len(self.vocabulary) < 128 or len(self.vocabulary) & (len(self.vocabulary) - 1):
            raise ValueError("the vocabulary bitmap must be a power of two of at least 128 bytes")
        if not 0 <= self.prior <= 1:
            raise ValueError(f"prior must be in [0, 1], got {self.prior}")

    def novelty(self, grams: Iterable[str]) -> float:
        """Share of ``grams`` outside the training vocabulary (0 for no n-gram)."""
        bits = self.vocabulary
        size = len(bits) * 8
        total = unseen = 0
        for gram in grams:
            total += 1
            i = zlib.crc32(gram.encode("utf-8")) % size
            if not bits[i >> 3] >> (i & 7) & 1:
                unseen += 1
        return unseen / total if total else 0.0

    def feature_distance(self, values: Mapping[str, float]) -> float:
        """Root mean square of the features in training standard deviations."""
        if not self.features:
            return 0.0
        total = sum(
            ((values[f] - m) / s) ** 2
            for f, m, s in zip(self.features, self.mean, self.std, strict=True)
        )
        return math.sqrt(total / len(self.features))

    def distance(self, grams: Iterable[str], values: Mapping[str, float]) -> float:
        """The larger of novelty and feature distance, each over its limit (> 1: outside)."""
        return max(
            self.novelty(grams) / self.novelty_limit,
            self.feature_distance(values) / self.feature_limit,
        )

    def fallback_score(self, fallback: str | None = None) -> float:
        """The score an out-of-domain prompt gets under ``fallback`` (default :attr:`fallback`).

        Raises:
            ValueError: ``fallback`` is not a key of :data:`FALLBACKS`.
        """
        name = self.fallback if fallback is None else fallback
        if name not in FALLBACKS:
            raise ValueError(f"unknown fallback {name!r}; known: {', '.join(FALLBACKS)}")
        return 1.0 if name == "strong" else self.prior

    def to_dict(self) -> dict[str, Any]:
        """The ``domain`` object of a router file."""
        return {
            "kind": "vocabulary+features",
            "rows": self.rows,
            "quantile": self.quantile,
            "fallback": self.fallback,
            "prior": round(self.prior, 6),
            **({} if self.typical is None else {"typical_distance": round(self.typical, 6)}),
            "features": list(self.features),
            "mean": [round(v, 6) for v in self.mean],
            "std": [round(v, 6) for v in self.std],
            "feature_limit": round(self.feature_limit, 6),
            "novelty_limit": round(self.novelty_limit, 6),
            "ngram_order": self.order,
            "vocabulary_bits": len(self.vocabulary) * 8,
            "vocabulary": base64.b64encode(zlib.compress(self.vocabulary, 9)).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DomainGuard:
        """Read the ``domain`` object of a router file.

        Raises:
            ValueError: A missing or malformed field.
        """
        if doc.get("kind", "vocabulary+features") != "vocabulary+features":
            raise ValueError(f"unknown domain summary kind {doc.get('kind')!r}")
        try:
            vocabulary = zlib.decompress(base64.b64decode(str(doc["vocabulary"]), validate=True))
            return cls(
                features=tuple(str(f) for f in doc["features"]),
                mean=tuple(float(v) for v in doc["mean"]),
                std=tuple(max(_FLOOR, float(v)) for v in doc["std"]),
                feature_limit=float(doc["feature_limit"]),
                vocabulary=vocabulary,
                novelty_limit=float(doc["novelty_limit"]),
                order=int(doc.get("ngram_order", 2)),
                quantile=float(doc.get("quantile", 0.99)),
                fallback=str(doc.get("fallback", "strong")),
                prior=float(doc.get("prior", 0.5)),
                rows=int(doc.get("rows", 0)),
                typical=None
                if doc.get("typical_distance") is None
                else float(doc["typical_distance"]),
            )
        except (KeyError, TypeError, ValueError, zlib.error) as exc:
            raise ValueError(f"domain: {exc}") from None
