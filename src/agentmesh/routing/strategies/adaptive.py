"""Strategies that adapt to the prompt or the step.

``task`` (classifier -> per-task quality), ``complexity`` (classifier -> tier),
``cascade`` (ordered ladder, one rung per escalation), ``consensus`` (k diverse
models for a vote) and ``learned`` (a scoring model read from a file).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from agentmesh.models.spec import ModelSpec
from agentmesh.routing.context import RouteContext
from agentmesh.routing.domain import DomainGuard
from agentmesh.routing.features import FEATURES, extract, profile, terms
from agentmesh.routing.strategies.base import (
    Ranking,
    Strategy,
    StrategyParams,
    by_quality,
    ordered,
)
from agentmesh.routing.types import Candidate, Exclusion
from agentmesh.tracing import annotate_current
from agentmesh.tracing.attributes import ROUTE_DOMAIN_DISTANCE, ROUTE_OUT_OF_DOMAIN

__all__ = [
    "Assessment",
    "CascadeStrategy",
    "ComplexityStrategy",
    "ConsensusStrategy",
    "LearnedModel",
    "LearnedStrategy",
    "TaskStrategy",
]


class TaskStrategy(Strategy[StrategyParams]):
    """The model with the best quality estimate for the (classified) task."""

    name = "task"
    needs_stats = False
    needs_task = True

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Highest quality for the task first; cheaper wins ties."""
        ranked = by_quality(candidates, ctx)
        source = ctx.classification.source if ctx.classification else "given"
        return Ranking(
            ranked,
            f"task {ctx.task!r} ({source}): best quality {ranked[0].model} ({ranked[0].note})",
        )


Level = Literal["low", "medium", "high"]


def _default_tiers() -> dict[Level, int]:
    return {"low": 1, "medium": 2, "high": 3}


class ComplexityParams(StrategyParams):
    """Tier to use for each complexity level."""

    tiers: dict[Level, Annotated[int, Field(ge=1)]] = Field(default_factory=_default_tiers)


class ComplexityStrategy(Strategy[ComplexityParams]):
    """Classifier complexity -> target tier -> cheapest model at (or nearest to) that tier.

    Nearest means: the target tier first, then one tier above, one below, two
    above...; an easy prompt never lands on a frontier model while a cheaper
    tier is eligible, and a hard one never on a weak model while a stronger is.
    """

    name = "complexity"
    needs_stats = False
    Params = ComplexityParams
    needs_classification = True

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Closest tier to the target first, cheapest within a tier."""
        verdict = ctx.classification
        level = verdict.level if verdict else "medium"
        target = self.params.tiers.get(level, 2)
        scored = []
        for spec in candidates:
            gap = spec.tier - target
            distance = abs(gap) + (0.5 if gap < 0 else 0.0)
            scored.append((spec, -distance, f"tier {spec.tier} (target {target})"))
        ranked = ordered(scored, ctx)
        complexity = f"{verdict.complexity:.2f} " if verdict else ""
        return Ranking(
            ranked, f"complexity {complexity}({level}) -> tier {target}: {ranked[0].model}"
        )


class CascadeParams(StrategyParams):
    """``ladder``: model ids from cheapest to strongest; empty = eligible models by tier, cost."""

    ladder: tuple[str, ...] = ()


class CascadeStrategy(Strategy[CascadeParams]):
    """An ordered ladder; escalation level ``n`` starts at rung ``n``.

    The caller calls the chosen rung, checks the answer, and either accepts it
    or routes again with ``escalation + 1``. Rungs below the current one are
    excluded (with why); the rungs above are the fallbacks.
    """

    name = "cascade"
    needs_stats = False
    Params = CascadeParams
    handles_escalation = True

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """The ladder from the current rung up."""
        by_id = {s.id: s for s in candidates}
        if self.params.ladder:
            ladder = [by_id[m] for m in self.params.ladder if m in by_id]
            off = [s for s in candidates if s.id not in self.params.ladder]
        else:
            ladder = sorted(candidates, key=lambda s: (s.tier, ctx.worst_cost(s), s.id))
            off = []
        rung = ctx.request.escalation
        excluded = [Exclusion(s.id, "not on the cascade ladder", self.name) for s in off]
        excluded += [
            Exclusion(s.id, f"cascade rung {i + 1} is below escalation level {rung}", self.name)
            for i, s in enumerate(ladder[:rung])
        ]
        rest = ladder[rung:]
        ranked = tuple(
            Candidate(s.id, float(len(rest) - i), f"rung {rung + i + 1} of {len(ladder)}")
            for i, s in enumerate(rest)
        )
        reason = (
            f"cascade rung {rung + 1} of {len(ladder)}: {rest[0].id}"
            if rest
            else f"cascade ladder of {len(ladder)} exhausted at escalation {rung}"
        )
        return Ranking(ranked, reason, tuple(excluded))


class ConsensusParams(StrategyParams):
    """``k`` models, diverse by ``family`` or ``provider`` first (``none``: by quality only)."""

    k: Annotated[int, Field(ge=2, le=16)] = 3
    diverse_by: Literal["family", "provider", "none"] = "family"


class ConsensusStrategy(Strategy[ConsensusParams]):
    """Selects ``k`` models for a vote: the best of each distinct family first, then the best."""

    name = "consensus"
    needs_stats = False
    Params = ConsensusParams
    needs_task = True

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Rank by quality, then pick ``k`` with diversity."""
        pool = by_quality(candidates, ctx)
        specs = {s.id: s for s in candidates}
        by = self.params.diverse_by

        def key(model_id: str) -> str:
            spec = specs[model_id]
            return {"family": spec.family, "provider": spec.provider.value}.get(by, model_id)

        chosen: list[str] = []
        seen: set[str] = set()
        for c in pool:
            if len(chosen) < self.params.k and key(c.model) not in seen:
                chosen.append(c.model)
                seen.add(key(c.model))
        for c in pool:
            if len(chosen) < self.params.k and c.model not in chosen:
                chosen.append(c.model)
        order = {m: i for i, m in enumerate(chosen)}
        ranked = tuple(sorted(pool, key=lambda c: order.get(c.model, len(order))))
        kinds = sorted({key(m) for m in chosen})
        short = f" (only {len(chosen)} eligible)" if len(chosen) < self.params.k else ""
        spread = f" across {by} {', '.join(kinds)}" if by != "none" else ""
        return Ranking(ranked, f"consensus of {len(chosen)}{short}{spread}", selected=tuple(chosen))


_LEARNED_FORMAT = "agentmesh-learned-router"


@dataclass(frozen=True, slots=True)
class Assessment:
    """A learned router's view of one prompt.

    Attributes:
        score: The router's own score in (0, 1).
        distance: Distance to its training domain (1 = the edge); ``None``: no summary.
        fallback_score: The score under the safe strategy, when out of domain.
    """

    score: float
    distance: float | None = None
    fallback_score: float = 1.0

    @property
    def out_of_domain(self) -> bool:
        """True when the prompt lies outside the router's training domain."""
        return self.distance is not None and self.distance > 1.0

    @property
    def routed_score(self) -> float:
        """The score routing uses: the fallback's out of domain, the router's inside."""
        return self.fallback_score if self.out_of_domain else self.score


@dataclass(frozen=True, slots=True)
class LearnedModel:
    """A logistic scorer of "does this prompt need a strong model", as stored on disk.

    File format (JSON), version 1::

        {"format": "agentmesh-learned-router", "version": 1, "kind": "logistic",
         "features": ["log_chars", "math", ...], "weights": [...], "bias": -0.3,
         "threshold": 0.5, "meta": {"trained_on": "...", ...}}

    Version 2 adds weighted word n-grams of the prompt (what
    ``agentmesh train-router`` writes)::

        {..., "version": 2, "kind": "logistic",
         "ngram_order": 2, "ngrams": {"which of": 0.41, "statement": 1.3, ...}}

    The score is ``sigmoid(bias + sum(w_f * feature_f) + sum(w_g) / sqrt(n))`` over
    the prompt's distinct n-grams ``g`` (:func:`agentmesh.routing.features.terms`;
    ``n`` = how many it has, listed or not). ``features`` name entries of
    :data:`agentmesh.routing.features.FEATURES`. Both versions load.

    Either version may carry ``"domain": {...}``, the summary of its training
    prompts (:class:`~agentmesh.routing.domain.DomainGuard`): :meth:`assess`
    then measures how far a prompt lies outside it.
    """

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.5
    meta: tuple[tuple[str, Any], ...] = ()
    ngrams: Mapping[str, float] = field(default_factory=dict)
    ngram_order: int = 2
    domain: DomainGuard | None = None

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {sorted(FEATURES)}")
        if len(self.features) != len(self.weights):
            raise ValueError(f"{len(self.features)} features but {len(self.weights)} weights")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 1 <= self.ngram_order <= 4:
            raise ValueError(f"ngram_order must be 1..4, got {self.ngram_order}")

    @property
    def version(self) -> int:
        """1 for features only, 2 with n-gram weights."""
        return 2 if self.ngrams else 1

    def logit(self, text: str) -> float:
        """The linear score before the sigmoid."""
        values = extract(text, self.features) if self.features else {}
        grams = terms(text, self.ngram_order) if self.ngrams else set()
        return self._logit(values, grams)

    def _logit(self, values: Mapping[str, float], grams: set[str]) -> float:
        z = self.bias
        if self.features:
            z += sum(w * values[f] for f, w in zip(self.features, self.weights, strict=True))
        if self.ngrams and grams:
            weights = self.ngrams
            z += sum(weights.get(g, 0.0) for g in grams) / math.sqrt(len(grams))
        return z

    def score(self, text: str) -> float:
        """Probability-like score in (0, 1) that ``text`` needs the strong model."""
        return _sigmoid(self.logit(text))

    def assess(self, text: str, fallback: str | None = None) -> Assessment:
        """The score and, with a domain summary, the distance to it (the prompt read once).

        Args:
            text: The prompt.
            fallback: Overrides the summary's safe strategy (a key of ``FALLBACKS``).
        """
        guard = self.domain
        if guard is None:
            return Assessment(self.score(text))
        read = profile(text)
        names = tuple(dict.fromkeys(self.features + guard.features))
        values = extract(read, names)
        grams = terms(text, guard.order)
        own = grams if guard.order == self.ngram_order else terms(text, self.ngram_order)
        score = _sigmoid(self._logit(values, own if self.ngrams else set()))
        return Assessment(score, guard.distance(grams, values), guard.fallback_score(fallback))

    def save(self, path: str | Path) -> None:
        """Write the model file (version 1 when there are no n-grams)."""
        document: dict[str, Any] = {
            "format": _LEARNED_FORMAT,
            "version": self.version,
            "kind": "logistic",
            "features": list(self.features),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "meta": dict(self.meta),
        }
        if self.domain is not None:
            document["domain"] = self.domain.to_dict()
        if self.ngrams:
            document["ngram_order"] = self.ngram_order
            document["ngrams"] = dict(self.ngrams)
        Path(path).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        """Read a model file (version 1 or 2).

        Raises:
            ValueError: The file is not a learned-router model, naming the file and problem.
        """
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: deep nesting
            raise ValueError(f"{path}: cannot read learned router: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != _LEARNED_FORMAT:
            raise ValueError(f"{path}: not a learned router (format must be {_LEARNED_FORMAT!r})")
        if doc.get("version", 1) not in (1, 2) or doc.get("kind", "logistic") != "logistic":
            raise ValueError(
                f"{path}: unsupported learned router version {doc.get('version')!r} "
                f"kind {doc.get('kind')!r} (this agentmesh reads logistic versions 1 and 2)"
            )
        try:
            ngrams = doc.get("ngrams") or {}
            if not isinstance(ngrams, dict):
                raise TypeError("ngrams must be an object of n-gram -> weight")
            domain = doc.get("domain")
            if domain is not None and not isinstance(domain, dict):
                raise TypeError("domain must be an object (the training domain summary)")
            return cls(
                features=tuple(doc["features"]),
                weights=tuple(float(w) for w in doc["weights"]),
                bias=float(doc["bias"]),
                threshold=float(doc.get("threshold", 0.5)),
                meta=tuple((str(k), v) for k, v in (doc.get("meta") or {}).items()),
                ngrams={str(g): float(w) for g, w in ngrams.items()},
                ngram_order=int(doc.get("ngram_order", 2)),
                domain=DomainGuard.from_dict(domain) if domain is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


class LearnedParams(StrategyParams):
    """Options of the ``learned`` strategy.

    Attributes:
        model_file: A :class:`LearnedModel` JSON file.
        threshold: Overrides the file's threshold.
        guard: Fall back to a safe strategy when the prompt lies outside the
            router's training domain (on by default; needs a file with a
            ``domain`` summary: ``agentmesh train-router`` writes one).
        fallback: Overrides the file's safe strategy (``strong`` or ``prior``).
    """

    model_file: str
    threshold: Annotated[float | None, Field(ge=0, le=1)] = None
    guard: bool = True
    fallback: Literal["strong", "prior"] | None = None


class LearnedStrategy(Strategy[LearnedParams]):
    """Strong or cheap by a learned score of the prompt.

    Above the threshold, the strongest eligible model; below, the cheapest
    (RouteLLM's strong/weak routing, generalised to tiers). With the guard on
    and a file that records its training domain, a prompt outside that domain
    gets the safe strategy's score instead (``strong``: the strongest model),
    and the decision says so: ``out_of_domain: true`` and the distance in the
    reason, ``agentmesh.route.out_of_domain`` and ``agentmesh.route.domain_distance``
    on the route span.
    """

    name = "learned"
    needs_stats = False
    Params = LearnedParams

    def __init__(self, params: LearnedParams) -> None:
        super().__init__(params)
        self.model = LearnedModel.load(params.model_file)
        self.threshold = params.threshold if params.threshold is not None else self.model.threshold
        self.guarded = params.guard and self.model.domain is not None

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Strongest first when the score is high, cheapest first otherwise."""
        prompt = ctx.request.prompt
        view = self.model.assess(prompt, self.params.fallback) if self.guarded else None
        p = view.routed_score if view is not None else self.model.score(prompt)
        strong = p >= self.threshold
        if strong:
            quality = ctx.qualities(candidates)
            scored = [(s, s.tier + quality[s.id] / 10, f"tier {s.tier}") for s in candidates]
        else:
            scored = [(s, -ctx.worst_cost(s), f"${ctx.worst_cost(s):.6f}") for s in candidates]
        ranked = ordered(scored, ctx)
        side = (
            f">= {self.threshold:.2f}: strongest" if strong else f"< {self.threshold:.2f}: cheapest"
        )
        if view is None or view.distance is None:
            return Ranking(ranked, f"learned p(strong)={p:.2f} {side} {ranked[0].model}")
        annotate_current(
            {ROUTE_OUT_OF_DOMAIN: view.out_of_domain, ROUTE_DOMAIN_DISTANCE: view.distance}
        )
        if not view.out_of_domain:
            return Ranking(
                ranked,
                f"learned p(strong)={p:.2f} {side} {ranked[0].model} "
                f"(domain distance {view.distance:.2f})",
            )
        fallback = self.params.fallback or (self.model.domain.fallback if self.model.domain else "")
        return Ranking(
            ranked,
            f"learned: out_of_domain: true, distance {view.distance:.2f} > 1 "
            f"(router p(strong)={view.score:.2f} not used); fallback {fallback}: "
            f"score {p:.2f} {side} {ranked[0].model}",
        )
