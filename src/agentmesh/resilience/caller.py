"""`ResilientCaller`: one routed model call with the whole resilience stack.

``call(route_request, model_request)`` routes, then walks the decision's
order (chosen model, then fallbacks): for each model it asks the circuit
breaker for admission, calls it through the gateway, retries retryable errors
with full-jitter backoff (honouring Retry-After, within the retry budget and
the deadline), and applies the policy's action per error kind: retry, fall
back, look for a larger context window, or fail fast. When every capable model
is down, a policy may accept a lower tier (``degraded`` on the result).

Every attempt is recorded on the result (or on :class:`CallFailed`) with the
model, outcome, error kind, latency, tokens, cost and *why* it was made.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from agentmesh.models.errors import ModelError, Timeout
from agentmesh.models.gateway import Gateway
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.resilience.breaker import BreakerEvent, CircuitBreaker
from agentmesh.resilience.policy import ResiliencePolicy
from agentmesh.resilience.retry import RetryBudget, backoff_delay
from agentmesh.routing.policy import Policy
from agentmesh.routing.router import Router
from agentmesh.routing.types import NoRoute, Outcome, RouteDecision, RouteRequest, RoutingError
from agentmesh.tracing import attempt_attributes, record_breaker_transition, record_fallback

__all__ = ["Attempt", "CallFailed", "CallResult", "RequestBuilder", "ResilientCaller"]

Sleep = Callable[[float], Awaitable[None]]
RequestBuilder = Callable[[ModelSpec], ModelRequest]
"""Builds the request for the model about to be called (e.g. renders its prompt variant)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one model (or one skip), and why it happened.

    Attributes:
        model: Catalog id.
        outcome: ``ok``, ``error``, or ``skipped`` (not called: circuit open...).
        error_type: ``ModelError.kind`` on error.
        message: The error message, or why it was skipped.
        latency_ms: Call latency (``None`` when skipped or no answer came).
        input_tokens: Prompt tokens billed.
        output_tokens: Completion tokens billed.
        cost_usd: Cost billed.
        reason: Why this attempt was made (``primary``, ``retry 1 after
            rate_limited``, ``fallback after unavailable on m1``...).
        decision_id: The routing decision it belongs to.
        waited_s: Backoff slept before this attempt.
    """

    model: str
    outcome: Literal["ok", "error", "skipped"]
    reason: str
    decision_id: str
    error_type: str | None = None
    message: str = ""
    latency_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    waited_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "model": self.model,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "message": self.message,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "reason": self.reason,
            "waited_s": round(self.waited_s, 4),
        }


@dataclass(frozen=True, slots=True)
class CallResult:
    """A call that was served, with the evidence of how.

    Attributes:
        response: The answer of the model that served.
        decision: The routing decision under which it was chosen.
        attempts: Every attempt, in order, the successful one last.
        escalation_level: The request's escalation level.
        degraded: A lower tier than the policy asked for served the call.
        degraded_reason: Why, when degraded.
    """

    response: ModelResponse
    decision: RouteDecision
    attempts: tuple[Attempt, ...]
    escalation_level: int = 0
    degraded: bool = False
    degraded_reason: str = ""

    @property
    def model(self) -> str:
        """The model that served."""
        return self.response.model_id

    @property
    def cost_usd(self) -> float:
        """Cost of every attempt together."""
        return sum(a.cost_usd for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (what ``agentmesh ask --json`` prints)."""
        r = self.response
        return {
            "model": r.model_id,
            "served_model": r.served_model,
            "text": r.text,
            "input_tokens": r.usage.input_tokens,
            "output_tokens": r.usage.output_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": round(r.latency_ms, 2),
            "escalation_level": self.escalation_level,
            "degraded": self.degraded,
            "degraded_reason": self.degraded_reason,
            "simulated": r.simulated,
            "decision": {
                "strategy": self.decision.strategy,
                "chosen": self.decision.chosen,
                "reason": self.decision.reason,
                "fallbacks": list(self.decision.fallbacks),
            },
            "attempts": [a.to_dict() for a in self.attempts],
        }


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
        return "budget_exceeded" if type(self.error).__name__ == "BudgetExceeded" else "no_route"


def _trace_transition(event: BreakerEvent) -> None:
    record_breaker_transition(event.model, event.old, event.new)


@dataclass(slots=True)
class _Run:
    """Mutable bookkeeping of one call (private to the caller)."""

    policy: ResiliencePolicy
    deadline: float | None
    attempts: list[Attempt]
    tried: set[str]
    attributes: Mapping[str, Any]
    last_error: ModelError | None = None


class ResilientCaller:
    """Routes and calls models, surviving failures; share one per process.

    Args:
        router: The shared router (its state holds the breakers).
        gateway: Calls the models.
        policy: Default resilience policy (calls may pass their own).
        clock: Epoch-seconds clock for breakers (default: the state's wall clock).
        sleep: How to wait between retries (tests inject a fake).
        rng: Random source of the jitter.
        breaker_listeners: Called with each breaker transition.
    """

    def __init__(
        self,
        router: Router,
        gateway: Gateway,
        policy: ResiliencePolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        breaker_listeners: Sequence[Callable[[BreakerEvent], None]] = (),
    ) -> None:
        self.router = router
        self.gateway = gateway
        self.policy = policy or ResiliencePolicy()
        listeners = (_trace_transition, *breaker_listeners)
        self.breaker = CircuitBreaker(router.state, self.policy.breaker, clock, listeners)
        self.retry_budget = RetryBudget(self.policy.retry_budget)
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def call(
        self,
        request: RouteRequest,
        model_request: ModelRequest | RequestBuilder,
        routing: Policy | None = None,
        *,
        policy: ResiliencePolicy | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> CallResult:
        """Serve ``model_request`` with a model routed for ``request``.

        ``model_request`` may be a function of the model's spec, called once per
        model actually tried: a fallback to another family gets its own prompt
        variant (see ``RenderedPrompt.to_request``).

        Raises:
            CallFailed: No model served it; the error lists every attempt.
        """
        pol = policy or self.policy
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pol.deadline_s if pol.deadline_s is not None else None
        run = _Run(pol, deadline, [], set(), attributes or {})
        try:
            async with asyncio.timeout_at(deadline):
                return await self._serve(run, request, model_request, routing)
        except TimeoutError:
            error = Timeout(f"deadline of {pol.deadline_s:g} s reached", model_id=None)
            raise CallFailed(error, run.attempts) from None

    async def _serve(
        self,
        run: _Run,
        request: RouteRequest,
        model_request: ModelRequest | RequestBuilder,
        routing: Policy | None,
    ) -> CallResult:
        route_request, degraded_reason = request, ""
        while True:
            try:
                decision = await self.router.route(route_request, routing)
            except NoRoute as exc:
                if degraded_reason or not self._may_degrade(run, exc):
                    raise CallFailed(run.last_error or exc, run.attempts) from None
                degraded_reason = self._degradation(exc)
                route_request, routing = self._degraded(run, request, routing)
                continue
            try:
                result = await self._walk(run, decision, model_request, degraded_reason)
            except BaseException:  # cancelled mid-call (deadline) or crashed: may be billed
                self.router.abandon(decision)
                raise
            if isinstance(result, CallResult):
                return result
            if result == "larger_context":
                route_request = replace(
                    route_request, exclude=frozenset(run.tried) | self._smaller(run)
                )
                continue
            await self.router.release(decision)
            if (
                not degraded_reason
                and run.policy.degrade.allow
                and len(run.tried) < run.policy.max_models
            ):
                degraded_reason = "every model of the decision failed"
                route_request, routing = self._degraded(run, request, routing)
                continue
            raise CallFailed(run.last_error or NoRoute(request, ()), run.attempts)

    def _smaller(self, run: _Run) -> set[str]:
        """Models whose window is not larger than the largest that overflowed."""
        catalog = self.router.catalog
        overflowed = [
            catalog[a.model].context_window
            for a in run.attempts
            if a.error_type == "context_overflow"
        ]
        limit = max(overflowed, default=0)
        return {s.id for s in catalog.specs if s.context_window <= limit}

    def _may_degrade(self, run: _Run, exc: NoRoute) -> bool:
        down = {"health", "exclude"}
        return run.policy.degrade.allow and any(e.by in down for e in exc.excluded)

    @staticmethod
    def _degradation(exc: NoRoute) -> str:
        down = [f"{e.model}: {e.why}" for e in exc.excluded if e.by in ("health", "exclude")]
        return "every capable model is down (" + "; ".join(down[:4]) + ")"

    def _degraded(
        self, run: _Run, request: RouteRequest, routing: Policy | None
    ) -> tuple[RouteRequest, Policy]:
        base = routing or self.router.policy
        relaxed = base.model_copy(update={"min_tier": None, "quality_floor": None})
        lowered = replace(
            request,
            min_tier=run.policy.degrade.min_tier,
            quality_floor=None,
            escalation=0,
            exclude=frozenset(run.tried),
        )
        return lowered, relaxed

    async def _walk(
        self,
        run: _Run,
        decision: RouteDecision,
        model_request: ModelRequest | RequestBuilder,
        degraded_reason: str,
    ) -> CallResult | str:
        """Try the decision's models in order; a result, or why the walk stopped."""
        previous: str | None = None
        previous_model: str | None = None
        for model in (decision.chosen, *decision.fallbacks):
            if model in run.tried:
                continue
            if len(run.tried) >= run.policy.max_models:
                break
            run.tried.add(model)
            admission = await self.breaker.admit(model)
            if not admission.allowed:
                run.attempts.append(
                    Attempt(
                        model, "skipped", admission.why, decision.decision_id, message=admission.why
                    )
                )
                continue
            why = "primary" if previous is None else f"fallback after {previous}"
            if previous_model is not None and run.last_error is not None:
                record_fallback(
                    previous_model, model, run.last_error.kind, node=decision.request.node
                )
            if degraded_reason:
                why = f"degraded: {degraded_reason}; {why}"
            if admission.probe:
                why += " (half-open probe)"
            built = (
                model_request
                if isinstance(model_request, ModelRequest)
                else model_request(self.router.catalog[model])
            )
            served = await self._try_model(run, decision, model, built, why, admission.probe)
            if isinstance(served, ModelResponse):
                return CallResult(
                    served,
                    decision,
                    tuple(run.attempts),
                    decision.request.escalation,
                    bool(degraded_reason),
                    degraded_reason,
                )
            action = run.policy.action(served.kind)
            if action == "fail":
                raise CallFailed(served, run.attempts)
            if action == "larger_context":
                return "larger_context"
            previous, previous_model = f"{served.kind} on {model}", model
        return "exhausted"

    async def _try_model(
        self,
        run: _Run,
        decision: RouteDecision,
        model: str,
        model_request: ModelRequest,
        why: str,
        probe: bool,
    ) -> ModelResponse | ModelError:
        """Call one model, retrying what may be retried; the response or the last error."""
        retry = run.policy.retry
        waited = 0.0
        reason = why
        for number in range(retry.max_attempts):
            traced = {
                **run.attributes,
                **attempt_attributes(
                    attempt=len(run.attempts) + 1,
                    fallback=model != decision.chosen,
                    escalation=decision.request.escalation,
                    node=decision.request.node,
                    decision_id=decision.decision_id,
                    run_id=decision.request.run_id,
                ),
            }
            try:
                response = await self.gateway.invoke(model, model_request, attributes=traced)
            except ModelError as error:
                run.last_error = error
                stats = await self.router.record(
                    decision,
                    Outcome(model, error=error.kind),
                    failure_window_s=run.policy.breaker.window_s,
                )
                run.attempts.append(
                    Attempt(
                        model,
                        "error",
                        reason,
                        decision.decision_id,
                        error_type=error.kind,
                        message=str(error),
                        waited_s=waited,
                    )
                )
                self.retry_budget.on_failure(model)
                await self.breaker.on_failure(
                    model,
                    stats,
                    error.kind,
                    probe=probe,
                    retry_after=getattr(error, "retry_after", None),
                )
                delay = await self._retry_delay(run, model, error, number, probe)
                if delay is None:
                    return error
                await self._sleep(delay)
                if not await self.breaker.is_closed(model):
                    return error  # it opened while we slept: fall back instead
                waited = delay
                reason = f"retry {number + 1} after {error.kind}"
                continue
            except BaseException:
                if probe:  # cancelled (deadline) or crashed: the probe will never report back
                    await asyncio.shield(self.breaker.reopen(model, "probe abandoned"))
                raise
            await self.router.record(
                decision,
                Outcome(
                    model,
                    latency_ms=response.latency_ms,
                    input_tokens=response.usage.input_tokens,
                    output_tokens=response.usage.output_tokens,
                    cost_usd=response.cost_usd,
                ),
                failure_window_s=run.policy.breaker.window_s,
            )
            self.retry_budget.on_success(model)
            await self.breaker.on_success(model, probe=probe)
            run.attempts.append(
                Attempt(
                    model,
                    "ok",
                    reason,
                    decision.decision_id,
                    latency_ms=response.latency_ms,
                    input_tokens=response.usage.input_tokens,
                    output_tokens=response.usage.output_tokens,
                    cost_usd=response.cost_usd,
                    waited_s=waited,
                )
            )
            return response
        raise AssertionError("unreachable: the loop returns")  # pragma: no cover

    async def _retry_delay(
        self, run: _Run, model: str, error: ModelError, number: int, probe: bool
    ) -> float | None:
        """Seconds to wait before retrying ``model``, or ``None`` to move on."""
        retry = run.policy.retry
        if run.policy.action(error.kind) != "retry" or probe or number + 1 >= retry.max_attempts:
            return None
        if not self.retry_budget.allows_retry(model):
            return None
        if not await self.breaker.is_closed(model):
            return None
        delay = backoff_delay(retry, number, self._rng, getattr(error, "retry_after", None))
        if delay is None:
            return None
        if run.deadline is not None and asyncio.get_running_loop().time() + delay >= run.deadline:
            return None
        return delay
