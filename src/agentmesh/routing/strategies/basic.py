"""Strategies that rank on catalog facts and observed statistics.

``round_robin`` (weighted), ``least_latency`` (EWMA or p95), ``cheapest``,
``quality_per_cost`` (routing matrix) and ``budget`` (downgrade as budgets run out).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from operator import attrgetter, neg
from typing import Annotated, Literal

from pydantic import Field

from agentmesh.models.spec import ModelSpec
from agentmesh.routing.context import RouteContext
from agentmesh.routing.ranked import Ranked
from agentmesh.routing.state import ModelStats
from agentmesh.routing.strategies.base import (
    Ranking,
    Strategy,
    StrategyParams,
    by_quality,
)
from agentmesh.routing.types import Exclusion, RouteRequest

__all__ = [
    "BudgetStrategy",
    "CheapestStrategy",
    "LeastLatencyStrategy",
    "QualityPerCostStrategy",
    "RoundRobinStrategy",
]


class RoundRobinParams(StrategyParams):
    """Weights by model id (default 1 each); ``key`` separates rotations (default: per node)."""

    weights: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    key: str | None = None


class RoundRobinStrategy(Strategy[RoundRobinParams]):
    """Weighted round robin over the eligible models, with a counter kept in the state.

    Turn ``n`` picks the model whose share of the cumulative weights covers
    ``n mod total``; the others follow in rotation order as fallbacks.
    """

    name = "round_robin"
    needs_stats = False
    Params = RoundRobinParams

    def counter_key(self, request: RouteRequest) -> str | None:
        """One rotation per policy key, else per node."""
        return f"rr:{self.params.key or request.node}"

    def __init__(self, params: RoundRobinParams) -> None:
        super().__init__(params)
        # The last candidate set seen, by identity (the router passes the catalog's
        # own tuple when no filter excluded anything): its id order and cumulative
        # weights, so a turn costs one bisect instead of a sort.
        self._index: tuple[Sequence[ModelSpec], list[ModelSpec], list[float]] | None = None

    def _rotation_index(
        self, candidates: Sequence[ModelSpec]
    ) -> tuple[list[ModelSpec], list[float]]:
        index = self._index
        if index is not None and index[0] is candidates:
            return index[1], index[2]
        specs = sorted(candidates, key=lambda s: s.id)
        weights = self.params.weights
        cumulative = list(accumulate(weights.get(s.id, 1.0) for s in specs))
        if isinstance(candidates, tuple):  # immutable: safe to keep
            self._index = (candidates, specs, cumulative)
        return specs, cumulative

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Pick the model whose turn it is."""
        specs, cumulative = self._rotation_index(candidates)
        turn = ctx.snapshot.counter or 0
        point = float(turn) % cumulative[-1]
        start = min(bisect_right(cumulative, point), len(specs) - 1)
        rotation = specs[start:] + specs[:start]
        weights = self.params.weights

        def note(spec: ModelSpec, _: float) -> str:
            return f"weight {weights.get(spec.id, 1.0):g}"

        ranked = Ranked(rotation, range(len(rotation), 0, -1), ctx.costs, note, in_order=True)
        return Ranking(ranked, f"weighted round robin turn {turn}: {rotation[0].id}")


class LeastLatencyParams(StrategyParams):
    """``metric``: ``ewma`` or ``p95``; ``explore``: try never-observed models first."""

    metric: Literal["ewma", "p95"] = "ewma"
    explore: bool = True


_LATENCY: dict[str, Callable[[ModelStats], float | None]] = {
    "ewma": attrgetter("ewma_latency_ms"),
    "p95": attrgetter("p95_latency_ms"),
}
"""How each ``metric`` reads a model's latency (C-level getters: read per candidate)."""


def _latency_of(
    stats: Mapping[str, ModelStats], pick: Callable[[ModelStats], float | None], model: str
) -> float | None:
    """``model``'s latency by ``pick``, ``None`` when it has none observed."""
    seen = stats.get(model)
    return None if seen is None else pick(seen)


class LeastLatencyStrategy(Strategy[LeastLatencyParams]):
    """Lowest observed latency (EWMA or sliding-window p95) from recorded outcomes."""

    name = "least_latency"
    Params = LeastLatencyParams

    def __init__(self, params: LeastLatencyParams) -> None:
        super().__init__(params)
        self._pick = _LATENCY[params.metric]
        self._unseen = 1.0 if params.explore else -1e12

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Fastest first; unobserved models first too when exploring (else last)."""
        metric, pick, unseen = self.params.metric, self._pick, self._unseen
        stats = ctx.snapshot.stats
        scores = [
            unseen if seen is None or (value := pick(seen)) is None else -value
            for seen in map(stats.get, ctx.ids_of(candidates))
        ]

        def note(spec: ModelSpec, _: float) -> str:
            value = _latency_of(stats, pick, spec.id)
            return "no latency observed yet" if value is None else f"{metric} {value:.1f} ms"

        ranked = Ranked(candidates, scores, ctx.costs, note)
        first = ranked.model(0)
        value = _latency_of(stats, pick, first)
        if value is None:
            reason = f"{first} has no latency observed yet: explored first"
        else:
            reason = f"lowest {metric} latency: {first} at {value:.1f} ms"
        return Ranking(ranked, reason)


class CheapestStrategy(Strategy[StrategyParams]):
    """Cheapest worst-case cost among the eligible models (the quality floor is a filter)."""

    name = "cheapest"
    needs_stats = False

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Lowest worst-case cost first."""
        scores = list(map(neg, ctx.cost_column(candidates)))
        ranked = Ranked(candidates, scores, ctx.costs, _cost_note)
        floor = ctx.constraints.quality_floor
        above = f" above quality floor {floor:.2f}" if floor is not None else ""
        best = ranked.model(0)
        cost = ctx.costs[best]
        return Ranking(ranked, f"cheapest capable{above}: {best} (${cost:.6f} worst case)")


def _cost_note(spec: ModelSpec, score: float) -> str:
    return f"${-score:.6f} worst case"


class QualityPerCostParams(StrategyParams):
    """``epsilon_usd`` keeps free models comparable (quality / (cost + epsilon))."""

    epsilon_usd: Annotated[float, Field(gt=0)] = 1e-6


class QualityPerCostStrategy(Strategy[QualityPerCostParams]):
    """Most estimated quality per dollar, from the routing matrix."""

    name = "quality_per_cost"
    needs_stats = False
    Params = QualityPerCostParams
    needs_task = True

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Highest quality / worst-case cost first."""
        eps = self.params.epsilon_usd
        quality, costs = ctx.qualities(candidates), ctx.all_costs()
        scores = [quality[s.id] / (costs[s.id] + eps) for s in candidates]

        def note(spec: ModelSpec, _: float) -> str:
            return f"quality {quality[spec.id]:.2f} at ${costs[spec.id]:.6f}"

        ranked = Ranked(candidates, scores, costs, note)
        task = ctx.task or "any task"
        return Ranking(
            ranked, f"best quality per dollar for {task}: {ranked[0].model} ({ranked[0].note})"
        )


class BudgetStep(StrategyParams):
    """Past ``used`` (a fraction of a budget), only tiers up to ``max_tier``."""

    used: Annotated[float, Field(ge=0, le=1)]
    max_tier: Annotated[int, Field(ge=1)]


class BudgetParams(StrategyParams):
    """Downgrade steps, checked from the highest ``used`` down."""

    steps: tuple[BudgetStep, ...] = (
        BudgetStep(used=0.5, max_tier=2),
        BudgetStep(used=0.8, max_tier=1),
    )


class BudgetStrategy(Strategy[BudgetParams]):
    """Best quality the budget allows, downgrading tiers as a budget is consumed.

    With no budget configured it behaves like "best quality". When a step caps
    the tier below every candidate, the cheapest tier present is kept, so the
    strategy downgrades but never refuses on its own (the budget filter does).
    """

    name = "budget"
    needs_stats = False
    Params = BudgetParams
    needs_task = True

    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Cap the tier by consumption, then rank by quality."""
        used = ctx.budget_used()
        cap: int | None = None
        if used is not None:
            for step in sorted(self.params.steps, key=lambda s: -s.used):
                if used[1] >= step.used:
                    cap = max(step.max_tier, min(s.tier for s in candidates))
                    break
        allowed = [s for s in candidates if cap is None or s.tier <= cap]
        excluded = tuple(
            Exclusion(
                s.id, f"budget {used[0]} {used[1]:.0%} used: tier {s.tier} above {cap}", self.name
            )
            for s in candidates
            if used is not None and cap is not None and s.tier > cap
        )
        ranked = by_quality(allowed, ctx)
        if used is None:
            reason = f"no budget set: best quality {ranked[0].model}"
        elif cap is None:
            reason = f"budget {used[0]} {used[1]:.0%} used: best quality {ranked[0].model}"
        else:
            reason = f"budget {used[0]} {used[1]:.0%} used: tiers <= {cap}, best {ranked[0].model}"
        return Ranking(ranked, reason, excluded)
