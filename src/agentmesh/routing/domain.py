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

- **subject familiarity** (opt-in, only when the training rows name their
  subject, the ``domain`` column): :class:`SubjectProfile`, a naive Bayes model
  of the training subjects over the same n-grams; a prompt none of them
  explains confidently (a low largest posterior) may come from a subject the
  router was not trained on, in the same format and vocabulary. Measured on
  MMLU's subject groups it did not pay (``models/routers/README.md``), so
  trainers leave it out unless asked.

Each is divided by its limit: a quantile (0.99 by default; e.g. 0.95 for
subject familiarity) of the training prompts' own values, novelty and
familiarity measured cross-fitted (a model of the other folds), so about 1%
(5%) of in-domain prompts lie beyond it. The prompt's **distance** is the
largest ratio; above 1 it is out of domain, and the router falls back to the
declared safe strategy (:data:`FALLBACKS`). Pure Python, no numpy: score and
distance together take about 1.36 times the score alone
(``benchmarks/learned_guard.py``: ~80 against ~58 µs per MMLU prompt; ~300 µs
with a subject profile).
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from agentmesh.routing.features import FEATURES

__all__ = ["FALLBACKS", "DomainGuard", "SubjectProfile", "vocabulary_bits"]

FALLBACKS: Mapping[str, str] = MappingProxyType(
    {
        "strong": "the strongest eligible model (score 1)",
        "prior": "the training rows' prior win rate of the strong model as the score",
    }
)
"""Safe strategy name -> what an out-of-domain prompt gets."""

_FLOOR = 0.05


def _pack(data: bytes) -> str:
    """``data`` as a router file stores it: zlib-compressed, then base64."""
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def _unpack(text: object) -> bytes:
    """What :func:`_pack` packed (``binascii.Error``, a ``ValueError``, or ``zlib.error``)."""
    return zlib.decompress(base64.b64decode(str(text), validate=True))


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
class SubjectProfile:
    """A naive Bayes model of the training subjects over word n-grams (see the module docstring).

    Attributes:
        subjects: Subject names (the training rows' ``domain`` values).
        log_prior: Log share of training prompts per subject.
        log_denominator: ``log(n-grams of the subject + smoothing * vocabulary)``.
        counts: n-gram -> ``(subject index, prompts of that subject having it)``
            pairs, for the n-grams at least two training prompts share.
        smoothing: Additive smoothing of the counts.
    """

    subjects: tuple[str, ...]
    log_prior: tuple[float, ...]
    log_denominator: tuple[float, ...]
    counts: Mapping[str, tuple[tuple[int, int], ...]]
    smoothing: float = 0.1

    def __post_init__(self) -> None:
        n = len(self.subjects)
        if n < 2 or not n == len(self.log_prior) == len(self.log_denominator):
            raise ValueError("a subject profile needs two subjects or more, one prior each")
        if self.smoothing <= 0:
            raise ValueError("subject smoothing must be positive")
        if any(not 0 <= i < n or c < 1 for pairs in self.counts.values() for i, c in pairs):
            raise ValueError("subject counts name a subject index out of range or a count < 1")

    def confidence(self, grams: Iterable[str]) -> float:
        """The largest posterior over the subjects (1 / subjects: none is likelier)."""
        table = self.counts
        log_a = math.log(self.smoothing)
        bonus = [0.0] * len(self.subjects)
        known = 0
        for gram in grams:
            pairs = table.get(gram)
            if pairs is None:
                continue
            known += 1
            for i, c in pairs:
                bonus[i] += math.log(c + self.smoothing) - log_a
        ll = [
            p + known * (log_a - d) + b
            for p, d, b in zip(self.log_prior, self.log_denominator, bonus, strict=True)
        ]
        top = max(ll)
        return 1.0 / sum(math.exp(v - top) for v in ll)

    def to_dict(self) -> dict[str, Any]:
        """The ``subjects`` object of a domain summary (counts zlib-compressed JSON)."""
        packed = json.dumps(
            {g: [v for pair in pairs for v in pair] for g, pairs in sorted(self.counts.items())},
            separators=(",", ":"),
        ).encode("utf-8")
        return {
            "kind": "naive-bayes",
            "subjects": list(self.subjects),
            "log_prior": [round(v, 6) for v in self.log_prior],
            "log_denominator": [round(v, 6) for v in self.log_denominator],
            "smoothing": self.smoothing,
            "counts": _pack(packed),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SubjectProfile:
        """Read the ``subjects`` object of a domain summary.

        Raises:
            ValueError: A missing or malformed field.
        """
        if doc.get("kind", "naive-bayes") != "naive-bayes":
            raise ValueError(f"unknown subject profile kind {doc.get('kind')!r}")
        raw = json.loads(_unpack(doc["counts"]))
        if not isinstance(raw, dict):
            raise TypeError("subject counts must be an object")
        counts = {
            str(g): tuple((int(v[k]), int(v[k + 1])) for k in range(0, len(v) - 1, 2))
            for g, v in raw.items()
        }
        return cls(
            subjects=tuple(str(s) for s in doc["subjects"]),
            log_prior=tuple(float(v) for v in doc["log_prior"]),
            log_denominator=tuple(float(v) for v in doc["log_denominator"]),
            counts=MappingProxyType(counts),
            smoothing=float(doc.get("smoothing", 0.1)),
        )


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
        subjects: The training subjects' model, when the rows named them.
        subject_limit: Subject confidence at ``1 - subject_quantile`` of the
            training prompts (cross-fitted); below it a prompt is out of domain.
        subject_quantile: Share of training prompts above the subject limit.
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
    subjects: SubjectProfile | None = None
    subject_limit: float = 0.0
    subject_quantile: float = 0.95

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
        if self.subjects is not None and not 0 < self.subject_limit <= 1:
            raise ValueError(f"subject limit must be in (0, 1], got {self.subject_limit}")

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

    def subject_distance(self, grams: Iterable[str]) -> float:
        """The subject limit over the prompt's subject confidence (0 without a profile)."""
        if self.subjects is None:
            return 0.0
        return self.subject_limit / self.subjects.confidence(grams)

    def distance(self, grams: Iterable[str], values: Mapping[str, float]) -> float:
        """The largest of novelty, feature and subject distance over their limits (> 1: outside)."""
        found = grams if isinstance(grams, (set, frozenset, list, tuple)) else list(grams)
        return max(
            self.novelty(found) / self.novelty_limit,
            self.feature_distance(values) / self.feature_limit,
            self.subject_distance(found),
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
            "vocabulary": _pack(self.vocabulary),
            **(
                {}
                if self.subjects is None
                else {
                    "subject_limit": round(self.subject_limit, 6),
                    "subject_quantile": self.subject_quantile,
                    "subjects": self.subjects.to_dict(),
                }
            ),
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
            vocabulary = _unpack(doc["vocabulary"])
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
                subjects=None
                if doc.get("subjects") is None
                else SubjectProfile.from_dict(doc["subjects"]),
                subject_limit=float(doc.get("subject_limit", 0.0)),
                subject_quantile=float(doc.get("subject_quantile", 0.95)),
            )
        except (KeyError, TypeError, ValueError, IndexError, zlib.error) as exc:
            raise ValueError(f"domain: {exc}") from None
