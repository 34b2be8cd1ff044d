"""Value objects of routing: what a node asks for, what the router answers, what happened.

All are frozen, slotted dataclasses: they are built on every decision, on the
hot path, and are never parsed from user files (policies are; see ``policy.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from agentmesh._slots import slot_setters
from agentmesh.models.spec import Capability

_NO_COUNTS: Mapping[str, int] = MappingProxyType({})
_NO_REASONS: Mapping[str, str] = MappingProxyType({})

__all__ = [
    "BudgetExceeded",
    "Candidate",
    "Exclusion",
    "NoRoute",
    "Outcome",
    "RouteDecision",
    "RouteRequest",
    "RoutingError",
]


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What a node needs from a model.

    Attributes:
        node: Name of the asking node (for traces and per-node state).
        role: The node's role (``planner``, ``executor``, ``judge``...).
        task: Task label (``math``, ``code``...); ``None`` lets a classifier decide.
        prompt: The prompt text, for classifiers and token estimates.
        prompt_tokens: Estimated prompt tokens; ``None`` estimates from ``prompt``.
        prompt_tokens_by_model: Exact prompt tokens for the models whose own
            tokenizer counted them (``Gateway.count_prompt_tokens``); these
            replace ``prompt_tokens`` in those models' costs and window checks.
        max_output_tokens: Output the call may produce; bounds the worst-case
            cost and must fit the context window with the prompt.
        capabilities: Capabilities the call needs (``json``, ``tools``...).
        remaining_budget_usd: Money the caller still has for this call and after.
        run_id: The workflow run, for per-run budgets.
        run_budget_usd: The run's own budget, replacing the router's per-run
            limit (reserved atomically in the routing state under ``run_id``).
        round: The step's round: 1 first, 2 for its redo after a judge's rejection...
        escalation: How many tiers above the cheapest acceptable one to start from.
        exclude: Model ids not to use (e.g. those that already failed this step).
        saturated: Models whose client-side rate limit is reached right now
            (the caller's limiter), with why; excluded as ``rate_limited_locally``.
    """

    node: str = "default"
    role: str = "executor"
    task: str | None = None
    prompt: str = ""
    prompt_tokens: int | None = None
    prompt_tokens_by_model: Mapping[str, int] = field(default_factory=lambda: _NO_COUNTS)
    max_output_tokens: int = 1024
    capabilities: frozenset[Capability] = frozenset()
    remaining_budget_usd: float | None = None
    run_id: str | None = None
    run_budget_usd: float | None = None
    round: int = 1
    escalation: int = 0
    exclude: frozenset[str] = frozenset()
    saturated: Mapping[str, str] = field(default_factory=lambda: _NO_REASONS)


class Candidate(NamedTuple):
    """A model the strategy ranked, with its score (higher is better) and why.

    A named tuple rather than a dataclass: a decision builds one per eligible
    model, and a named tuple is built in about half the time of a frozen one.
    """

    model: str
    score: float
    note: str = ""


class Exclusion(NamedTuple):
    """A model that could not be chosen, and why (``by`` names the filter or strategy)."""

    model: str
    why: str
    by: str


@dataclass(frozen=True, slots=True, init=False)
class RouteDecision:
    """The router's answer, explainable on its own.

    Frozen; built on every route, so its ``__init__`` sets the twelve slots
    directly (``agentmesh._slots``).

    Attributes:
        chosen: Catalog id of the model to call.
        strategy: Name of the strategy that ranked the candidates.
        reason: One line on why ``chosen`` won.
        candidates: Every eligible model, best first, with scores (a lazy
            ``routing.ranked.Ranked`` from the built-in strategies: sorted and
            noted when read past the first, e.g. by a trace or ``route``).
        excluded: Every model that was not eligible, each with why.
        fallbacks: Model ids to try, in order, if ``chosen`` fails (listed on first read).
        selected: The models to call together (``consensus``); else ``(chosen,)``.
        task: The task label used (given or classified).
        request: The request this decision answers.
        reserved_usd: Worst-case cost reserved against budgets; settled by ``record``.
        budget_keys: The budget scopes the reservation was made in.
        decision_id: Unique id, for traces and for settling the reservation.
    """

    chosen: str
    strategy: str
    reason: str
    candidates: Sequence[Candidate]
    excluded: tuple[Exclusion, ...]
    fallbacks: Sequence[str]
    selected: tuple[str, ...]
    task: str | None
    request: RouteRequest
    reserved_usd: float = 0.0
    budget_keys: tuple[str, ...] = ()
    decision_id: str = ""

    def __init__(
        self,
        chosen: str,
        strategy: str,
        reason: str,
        candidates: Sequence[Candidate],
        excluded: tuple[Exclusion, ...],
        fallbacks: Sequence[str],
        selected: tuple[str, ...],
        task: str | None,
        request: RouteRequest,
        reserved_usd: float = 0.0,
        budget_keys: tuple[str, ...] = (),
        decision_id: str = "",
    ) -> None:
        (
            set_chosen,
            set_strategy,
            set_reason,
            set_candidates,
            set_excluded,
            set_fallbacks,
            set_selected,
            set_task,
            set_request,
            set_reserved,
            set_keys,
            set_id,
        ) = _DECISION_SETTERS
        set_chosen(self, chosen)
        set_strategy(self, strategy)
        set_reason(self, reason)
        set_candidates(self, candidates)
        set_excluded(self, excluded)
        set_fallbacks(self, fallbacks)
        set_selected(self, selected)
        set_task(self, task)
        set_request(self, request)
        set_reserved(self, reserved_usd)
        set_keys(self, budget_keys)
        set_id(self, decision_id)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (what the CLI's ``--json`` prints)."""
        return {
            "decision_id": self.decision_id,
            "chosen": self.chosen,
            "strategy": self.strategy,
            "reason": self.reason,
            "task": self.task,
            "selected": list(self.selected),
            "candidates": [
                {"model": c.model, "score": round(c.score, 6), "note": c.note}
                for c in self.candidates
            ],
            "excluded": [{"model": e.model, "why": e.why, "by": e.by} for e in self.excluded],
            "fallbacks": list(self.fallbacks),
            "reserved_usd": self.reserved_usd,
            "escalation": self.request.escalation,
            "attempt": self.request.round,  # the key predates the field's name
            "node": self.request.node,
            "role": self.request.role,
        }


_DECISION_SETTERS = slot_setters(RouteDecision)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened when a chosen model was called.

    Attributes:
        model: The model that was actually called (may be a fallback).
        latency_ms: Call latency; ``None`` if it never answered.
        error: ``kind`` of the :class:`~agentmesh.models.ModelError`, or ``None`` on success.
        input_tokens: Prompt tokens used.
        output_tokens: Completion tokens used.
        cost_usd: Actual cost, settled against the reservation.
        quality: A judge's score in [0, 1], if the answer was judged.
    """

    model: str
    latency_ms: float | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    quality: float | None = None

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.error is None


class RoutingError(Exception):
    """Base of routing failures."""


class NoRoute(RoutingError):
    """No model can serve the request; the message lists every exclusion."""

    def __init__(self, request: RouteRequest, excluded: tuple[Exclusion, ...]) -> None:
        self.request = request
        self.excluded = excluded
        lines = "; ".join(f"{e.model}: {e.why}" for e in excluded) or "the catalog is empty"
        super().__init__(f"no model can serve node {request.node!r} ({request.role}): {lines}")


def _usd(amount: float) -> str:
    """Dollars to six places, or three significant digits below a tenth of a cent."""
    amount = max(amount, 0.0)
    return f"${amount:.6f}" if amount == 0 or amount >= 1e-3 else f"${amount:.3g}"


class BudgetExceeded(NoRoute):
    """No eligible call's worst-case cost fits what is left of a budget.

    Attributes:
        scope: The budget (``run:<id>``, ``global`` or ``caller``).
        needed_usd: Worst-case cost of the cheapest call that was otherwise eligible.
        remaining_usd: What was left in that budget.
    """

    def __init__(
        self,
        request: RouteRequest,
        excluded: tuple[Exclusion, ...],
        *,
        scope: str,
        needed_usd: float,
        remaining_usd: float,
        limit_usd: float | None = None,
    ) -> None:
        super().__init__(request, excluded)
        self.scope = scope
        self.needed_usd = needed_usd
        self.remaining_usd = remaining_usd
        self.limit_usd = limit_usd
        of = ""
        if limit_usd is not None:
            of = f" of {_usd(limit_usd)} ({_usd(limit_usd - remaining_usd)} spent)"
        self.args = (
            f"budget {scope}{of} exceeded for node {request.node!r}: the cheapest call needs up "
            f"to {_usd(needed_usd)}, {_usd(remaining_usd)} is left",
        )

    @property
    def spent_usd(self) -> float | None:
        """What the budget had spent (or held) when the call was refused, when known."""
        return None if self.limit_usd is None else max(self.limit_usd - self.remaining_usd, 0.0)
