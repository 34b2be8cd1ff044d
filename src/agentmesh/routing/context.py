"""`RouteContext`: everything filters and strategies may read for one decision.

Built once per decision by the router from the request, the policy, the state
snapshot and the classifier's verdict; read-only afterwards, so filters and
strategies are plain functions of it (and easy to test on designed scenarios).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from agentmesh.models.spec import ModelSpec
from agentmesh.routing.classify import Classification
from agentmesh.routing.constraints import Constraints
from agentmesh.routing.matrix import RoutingMatrix
from agentmesh.routing.state import Snapshot
from agentmesh.routing.types import RouteRequest

__all__ = ["Costs", "PriceTable", "RouteContext"]


class PriceTable:
    """A catalog's prices as columns, built once per router (what every cost reads).

    Args:
        specs: The catalog's models, in catalog order.
    """

    __slots__ = ("_outputs", "caps", "ids", "index", "min_cap", "per_in", "per_out", "specs")

    _OUTPUT_COLUMNS = 32
    """Output-cost columns kept (one per ``max_output_tokens`` value seen; a few in practice)."""

    def __init__(self, specs: Sequence[ModelSpec]) -> None:
        self.specs = tuple(specs)
        self.ids = tuple(s.id for s in self.specs)
        self.index = {model: i for i, model in enumerate(self.ids)}
        self.per_in = [s.pricing.input / 1e6 for s in self.specs]
        self.per_out = [s.pricing.output / 1e6 for s in self.specs]
        self.caps = [s.max_output_tokens for s in self.specs]
        self.min_cap = min(self.caps, default=0)
        self._outputs: dict[int, list[float]] = {}

    def output_costs(self, wanted: int) -> list[float]:
        """USD of ``wanted`` output tokens (capped per model) on each model, kept per value."""
        column = self._outputs.get(wanted)
        if column is None:
            column = [
                (wanted if wanted < cap else cap) * o
                for cap, o in zip(self.caps, self.per_out, strict=True)
            ]
            if len(self._outputs) >= self._OUTPUT_COLUMNS:
                self._outputs.clear()
            self._outputs[wanted] = column
        return column


class Costs(Mapping[str, float]):
    """Worst-case USD cost of one call per model id, computed when first read.

    One model's cost is computed on its own (the reservation, a tie-break);
    :meth:`column` and :meth:`all` compute every model's at once, in one pass
    over the price columns, for the strategies and filters that read them all
    (``cheapest``, the budget filter); later reads use that pass. Past
    ``_SINGLE_READS`` one-model reads (a filter walking every model) the next
    read makes that pass too.

    Args:
        table: The catalog's price columns.
        tokens: The prompt's estimated tokens.
        wanted: The output tokens the call may produce (capped per model).
        exact: Exact prompt tokens for the models whose tokenizer counted them.
    """

    __slots__ = ("_all", "_exact", "_reads", "_table", "_tokens", "_values", "_wanted")

    _SINGLE_READS = 8

    def __init__(
        self, table: PriceTable, tokens: int, wanted: int, exact: Mapping[str, int]
    ) -> None:
        self._table = table
        self._tokens = tokens
        self._wanted = wanted
        self._exact = exact
        self._values: list[float] | None = None
        self._all: dict[str, float] | None = None
        self._reads = 0

    def _column(self) -> list[float]:
        if self._values is None:
            t, tokens, exact = self._table, self._tokens, self._exact
            outputs = t.output_costs(self._wanted)
            if exact:
                self._values = [
                    exact.get(m, tokens) * i + out
                    for m, i, out in zip(t.ids, t.per_in, outputs, strict=True)
                ]
            else:
                self._values = [tokens * i + out for i, out in zip(t.per_in, outputs, strict=True)]
        return self._values

    @property
    def table(self) -> PriceTable:
        """The catalog's price columns these costs are computed from."""
        return self._table

    def column(self, specs: Sequence[ModelSpec]) -> list[float]:
        """The costs of ``specs``, in their order (the whole catalog's: no lookups)."""
        if specs is self._table.specs:
            return self._column()
        costs = self.all()
        return [costs[s.id] for s in specs]

    def all(self) -> dict[str, float]:
        """Every model's cost by id, computed once."""
        if self._all is None:
            self._all = dict(zip(self._table.ids, self._column(), strict=True))
        return self._all

    def __getitem__(self, model: str) -> float:
        if self._all is not None:
            return self._all[model]
        t = self._table
        at = t.index[model]
        if self._values is not None:
            return self._values[at]
        self._reads += 1
        if self._reads > self._SINGLE_READS:
            return self._column()[at]
        wanted, cap = self._wanted, t.caps[at]
        tokens = self._exact.get(model, self._tokens) if self._exact else self._tokens
        return tokens * t.per_in[at] + (wanted if wanted < cap else cap) * t.per_out[at]

    def __contains__(self, model: object) -> bool:
        return model in self._table.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.ids)

    def __len__(self) -> int:
        return len(self._table.ids)


class RouteContext(NamedTuple):
    """One decision's inputs.

    A named tuple rather than a frozen dataclass: built on every decision, and a
    tuple's twelve fields are set in C (a frozen dataclass sets each through
    ``object.__setattr__``, the largest fixed cost of a small decision).

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

    def all_costs(self) -> Mapping[str, float]:
        """Every model's worst-case cost, computed at once (see :class:`Costs`)."""
        costs = self.costs
        return costs.all() if isinstance(costs, Costs) else costs

    def ids_of(self, specs: Sequence[ModelSpec]) -> Sequence[str]:
        """The ids of ``specs`` in order (the catalog's own, precomputed, for the whole catalog)."""
        costs = self.costs
        if isinstance(costs, Costs) and specs is costs.table.specs:
            return costs.table.ids
        return [s.id for s in specs]

    def cost_column(self, specs: Sequence[ModelSpec]) -> list[float]:
        """The worst-case costs of ``specs``, in their order, computed at once."""
        costs = self.costs
        if isinstance(costs, Costs):
            return costs.column(specs)
        return [costs[s.id] for s in specs]

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
