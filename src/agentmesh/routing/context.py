"""`RouteContext`: everything filters and strategies may read for one decision.

Built once per decision by the router from the request, the policy, the state
snapshot and the classifier's verdict; read-only afterwards, so filters and
strategies are plain functions of it (and easy to test on designed scenarios).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agentmesh.models.spec import ModelSpec
from agentmesh.routing.classify import Classification
from agentmesh.routing.constraints import Constraints
from agentmesh.routing.matrix import RoutingMatrix
from agentmesh.routing.state import Snapshot
from agentmesh.routing.types import RouteRequest

__all__ = ["RouteContext"]


@dataclass(frozen=True, slots=True)
class RouteContext:
    """One decision's inputs.

    Attributes:
        request: What the node asked for.
        constraints: Policy and request bounds merged.
        snapshot: The routing state as read for this decision.
        matrix: How quality is estimated.
        task: The task label (given, or classified when the decision needs one).
        classification: The classifier's verdict, when one was made.
        prompt_tokens: Estimated prompt tokens.
        budgets: ``state key -> limit`` of the budgets that apply.
        costs: Worst-case USD cost of this call per model id, computed once.
        overflowing: Ids of the models whose context window cannot hold the call.
        tightest: The tightest budget ``(scope, USD left)``, or ``None``; see :meth:`remaining`.
        min_catalog_tier: Lowest tier in the catalog (escalation counts from it).
    """

    request: RouteRequest
    constraints: Constraints
    snapshot: Snapshot
    matrix: RoutingMatrix
    task: str | None
    classification: Classification | None
    prompt_tokens: int
    budgets: Mapping[str, float]
    costs: Mapping[str, float]
    overflowing: frozenset[str] = frozenset()
    tightest: tuple[str, float] | None = None
    min_catalog_tier: int = 1

    def quality(self, spec: ModelSpec) -> float:
        """Quality estimate of ``spec`` for this decision's task."""
        return self.matrix.estimate(spec, self.task, self.snapshot.quality.get(spec.id))

    def qualities(self, specs: Iterable[ModelSpec]) -> dict[str, float]:
        """Quality estimates of several models at once, by id."""
        cells, estimate, task = self.snapshot.quality, self.matrix.estimate, self.task
        return {s.id: estimate(s, task, cells.get(s.id)) for s in specs}

    def prompt_tokens_for(self, spec: ModelSpec) -> int:
        """The prompt's tokens on ``spec``: its own tokenizer's count, else the estimate."""
        return self.request.prompt_tokens_by_model.get(spec.id, self.prompt_tokens)

    def output_tokens(self, spec: ModelSpec) -> int:
        """Output tokens this call may produce on ``spec``."""
        return min(self.request.max_output_tokens, spec.max_output_tokens)

    def worst_cost(self, spec: ModelSpec) -> float:
        """USD cost of the call if it uses all its output tokens."""
        found = self.costs.get(spec.id)
        if found is None:
            return spec.cost(self.prompt_tokens_for(spec), self.output_tokens(spec))
        return found

    def remaining(self) -> tuple[str, float] | None:
        """The tightest budget: ``(scope, USD left)``, or ``None`` when unlimited."""
        return self.tightest

    @staticmethod
    def tightest_budget(
        budgets: Mapping[str, float], spent: Mapping[str, float], caller: float | None
    ) -> tuple[str, float] | None:
        """The budget with the least left: ``(scope, USD left)``, or ``None`` when unlimited."""
        left = [(limit - spent.get(key, 0.0), key) for key, limit in budgets.items()]
        if caller is not None:
            left.append((caller, "caller"))
        if not left:
            return None
        amount, scope = min(left)
        return scope, amount

    def budget_used(self) -> tuple[str, float] | None:
        """The most consumed budget: ``(scope, fraction used)``, or ``None``."""
        used = [
            (self.snapshot.spent.get(key, 0.0) / limit if limit > 0 else 1.0, key)
            for key, limit in self.budgets.items()
        ]
        if not used:
            return None
        fraction, scope = max(used)
        return scope, fraction
