"""The values of one resilient call: what is asked (:class:`Call`) and what happened.

A :class:`Call` is everything a node, judge, merge, classifier or chat model
asks of the :class:`~agentmesh.resilience.ResilientCaller`: the route request
(node, role, task, needs, budget scope), the model request or a builder that
renders it for whichever model is tried, the routing and resilience policies,
span attributes, and whether an empty answer is acceptable. The caller answers
with a :class:`CallResult` (or raises :class:`CallFailed`), both listing every
:class:`Attempt`; their :class:`Spend` is one type everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from agentmesh.models.errors import ModelError
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.resilience.policy import ResiliencePolicy
from agentmesh.routing.policy import Policy
from agentmesh.routing.types import BudgetExceeded, RouteDecision, RouteRequest, RoutingError

__all__ = [
    "Attempt",
    "Billed",
    "Call",
    "CallFailed",
    "CallResult",
    "RequestBuilder",
    "Spend",
]

RequestBuilder = Callable[[ModelSpec], ModelRequest]
"""Builds the request for the model about to be called (e.g. renders its prompt variant)."""

_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens and money of one or more calls: the one usage type of records.

    Attributes:
        input_tokens: Prompt tokens billed.
        output_tokens: Completion tokens billed.
        cost_usd: Cost billed, from the catalog's pricing.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @classmethod
    def of(cls, response: ModelResponse) -> Spend:
        """What ``response`` was billed."""
        return cls(response.usage.input_tokens, response.usage.output_tokens, response.cost_usd)

    @classmethod
    def total(cls, spends: Iterable[Spend]) -> Spend:
        """The sum of ``spends``."""
        i = o = 0
        c = 0.0
        for s in spends:
            i += s.input_tokens
            o += s.output_tokens
            c += s.cost_usd
        return cls(i, o, c)

    def to_dict(self) -> dict[str, Any]:
        """The three fields, as ``--json`` prints them."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }


@dataclass(frozen=True, slots=True)
class Call:
    """One model call as a node asks for it; frozen, built once per call.

    Attributes:
        route: What the router needs to choose (node, role, task, prompt,
            capabilities, run budget, escalation, exclusions).
        request: The model request, or a function of the model's spec called
            once per model actually tried, so a fallback to another family gets
            its own prompt variant (see ``RenderedPrompt.to_request``).
        routing: Routing policy; ``None`` uses the router's default.
        resilience: Resilience policy; ``None`` uses the caller's default. Its
            breaker and retry-budget settings apply to this call.
        attributes: Set on every ``chat`` span of the call.
        allow_empty: Accept an answer with no text and no tool call; otherwise
            it is a ``malformed_response`` that is retried or falls back.
    """

    route: RouteRequest
    request: ModelRequest | RequestBuilder
    routing: Policy | None = None
    resilience: ResiliencePolicy | None = None
    attributes: Mapping[str, Any] = field(default_factory=lambda: _NO_ATTRIBUTES)
    allow_empty: bool = True

    def build(self, spec: ModelSpec) -> ModelRequest:
        """The model request for ``spec``."""
        request = self.request
        return request if isinstance(request, ModelRequest) else request(spec)


class Billed:
    """Mixin: ``input_tokens``, ``output_tokens`` and ``cost_usd`` of a record's ``spend``."""

    __slots__ = ()
    spend: Spend

    @property
    def input_tokens(self) -> int:
        """Prompt tokens billed."""
        return self.spend.input_tokens

    @property
    def output_tokens(self) -> int:
        """Completion tokens billed."""
        return self.spend.output_tokens

    @property
    def cost_usd(self) -> float:
        """Cost billed."""
        return self.spend.cost_usd


AttemptOutcome = Literal["ok", "error", "skipped", "cancelled"]


@dataclass(frozen=True, slots=True)
class Attempt(Billed):
    """One try of one model (or one skip), and why it happened.

    Attributes:
        model: Catalog id.
        outcome: ``ok``, ``error``, ``skipped`` (not called: circuit open...), or
            ``cancelled`` (a hedge race's loser, cut off when another answered).
        reason: Why this attempt was made (``primary``, ``retry 1 after
            rate_limited``, ``fallback after unavailable on m1``...).
        decision_id: The routing decision it belongs to.
        error_type: ``ModelError.kind`` on error.
        message: The error message, or why it was skipped.
        latency_ms: Call latency (``None`` when skipped or no answer came).
        ttft_ms: Time to the first token (equal to the latency when not streamed).
        spend: Tokens and cost billed (an empty answer is billed though rejected).
        waited_s: Backoff slept before this attempt (and any wait for the
            local rate limiter).
        cached: Served from the response cache: no model was called, nothing billed.
    """

    model: str
    outcome: AttemptOutcome
    reason: str
    decision_id: str
    error_type: str | None = None
    message: str = ""
    latency_ms: float | None = None
    ttft_ms: float | None = None
    spend: Spend = Spend()
    waited_s: float = 0.0
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``attempts`` of ``--json`` step records)."""
        return {
            "model": self.model,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "message": self.message,
            "latency_ms": _ms(self.latency_ms),
            "ttft_ms": _ms(self.ttft_ms),
            **self.spend.to_dict(),
            "reason": self.reason,
            "waited_s": round(self.waited_s, 4),
            "cached": self.cached,
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@dataclass(frozen=True, slots=True)
class CallResult:
    """A call that was served, with the evidence of how.

    Attributes:
        response: The answer of the model that served (the winner, for a consensus).
        decision: The routing decision under which it was chosen.
        attempts: Every attempt, in order, the successful one last (for a
            consensus, every member's attempts).
        escalation_level: The request's escalation level.
        degraded: A lower tier than the policy asked for served the call.
        degraded_reason: Why, when degraded.
        members: For a ``consensus`` decision, every member's answer in the
            decision's order (the winner among them); else empty.
        agreement: For a consensus, the share of members that gave the winning answer.
    """

    response: ModelResponse
    decision: RouteDecision
    attempts: tuple[Attempt, ...]
    escalation_level: int = 0
    degraded: bool = False
    degraded_reason: str = ""
    members: tuple[ModelResponse, ...] = ()
    agreement: float | None = None

    @property
    def model(self) -> str:
        """The model that served."""
        return self.response.model_id

    @property
    def spend(self) -> Spend:
        """Tokens and cost of every attempt together."""
        return Spend.total(a.spend for a in self.attempts)

    @property
    def cached(self) -> bool:
        """The answer came from the response cache (the serving attempt was a hit)."""
        return bool(self.attempts) and self.attempts[-1].cached and not self.members

    @property
    def cost_usd(self) -> float:
        """Cost of every attempt together."""
        return self.spend.cost_usd

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (what ``agentmesh ask --json`` prints)."""
        r = self.response
        out: dict[str, Any] = {
            "model": r.model_id,
            "served_model": r.served_model,
            "text": r.text,
            "input_tokens": r.usage.input_tokens,
            "output_tokens": r.usage.output_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": round(r.latency_ms, 2),
            "ttft_ms": round(r.ttft_ms, 2),
            "escalation_level": self.escalation_level,
            "degraded": self.degraded,
            "degraded_reason": self.degraded_reason,
            "simulated": r.simulated,
            "cached": self.cached,
            "decision": {
                "strategy": self.decision.strategy,
                "chosen": self.decision.chosen,
                "reason": self.decision.reason,
                "fallbacks": list(self.decision.fallbacks),
            },
            "attempts": [a.to_dict() for a in self.attempts],
        }
        if self.members:
            out["consensus"] = {
                "members": [{"model": m.model_id, "text": m.text} for m in self.members],
                "agreement": self.agreement,
            }
        return out


class CallFailed(Exception):
    """No model served the call; carries every attempt and the last error.

    Attributes:
        error: The last model error (or the routing error when nothing was callable).
        attempts: Every attempt made.
    """

    def __init__(self, error: ModelError | RoutingError, attempts: Sequence[Attempt]) -> None:
        self.error = error
        self.attempts = tuple(attempts)
        tried = ", ".join(f"{a.model} ({a.error_type or a.outcome})" for a in self.attempts)
        super().__init__(f"{error}" + (f"; tried: {tried}" if tried else ""))

    @property
    def kind(self) -> str:
        """``ModelError.kind`` of the last error, or ``no_route`` / ``budget_exceeded``."""
        if isinstance(self.error, ModelError):
            return self.error.kind
        return "budget_exceeded" if isinstance(self.error, BudgetExceeded) else "no_route"

    @property
    def spend(self) -> Spend:
        """Tokens and cost of every attempt (failed calls may still be billed)."""
        return Spend.total(a.spend for a in self.attempts)
