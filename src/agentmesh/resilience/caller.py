"""`ResilientCaller`: the one path from a node to a model.

``call(Call)`` and ``stream(Call)`` share a single attempt routine: route →
build the request for the model about to be tried (its prompt variant) →
breaker admission → gateway call → check the answer → ``router.record`` →
retry (full-jitter backoff, Retry-After, retry budget, deadline) / fall back
to the decision's next model / look for a larger window / fail fast, per
error kind. When every capable model is down a policy may accept a lower tier
(``degraded`` on the result). A ``consensus`` decision calls each selected
model and answers with the most common reply.

Streaming differs in one place only: the model is called with
``Gateway.stream`` and its text is forwarded as it arrives. Until the first
token a failure is retried or falls back like any other; once text has been
sent it cannot be taken back, so a failure then ends the call.

The steps live beside this module: the run's bookkeeping in
:mod:`~agentmesh.resilience.run`, the streaming entry point's queue plumbing
in :mod:`~agentmesh.resilience.streaming`, the hedge race in
:mod:`~agentmesh.resilience.hedge`, the consensus path in
:mod:`~agentmesh.resilience.consensus`; the cache, limit and redaction steps
in their own modules.

Nothing else reads or writes routing state for a call: the router learns
outcomes through :meth:`Router.record`, judges' scores through
:meth:`Router.score`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from agentmesh.models.errors import BadRequest, MalformedResponse, ModelError, RateLimited, Timeout
from agentmesh.models.gateway import Gateway, cut_usage
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.resilience.breaker import BreakerEvent, CircuitBreaker
from agentmesh.resilience.cache import CacheStep, ResponseCache
from agentmesh.resilience.call import Attempt, Call, CallFailed, CallResult, Spend
from agentmesh.resilience.consensus import consensus
from agentmesh.resilience.hedge import hedged
from agentmesh.resilience.limiter import LimitStep, RateLimiter
from agentmesh.resilience.policy import BreakerPolicy, ResiliencePolicy, RetryBudgetPolicy
from agentmesh.resilience.redaction import RedactionError, RedactStep
from agentmesh.resilience.retry import RetryBudget, backoff_delay
from agentmesh.resilience.run import Invoke, Run, Sleep, empty, outcome
from agentmesh.resilience.semantic import SemanticStep
from agentmesh.resilience.streaming import FirstToken, Streamed, charge_cut_stream, stream_call
from agentmesh.routing.filters import LocalRateLimitFilter
from agentmesh.routing.policy import Policy
from agentmesh.routing.router import Router
from agentmesh.routing.types import NoRoute, RouteDecision, RouteRequest
from agentmesh.tracing import attempt_attributes, record_breaker_transition, record_fallback

__all__ = ["FirstToken", "ResilientCaller", "Streamed"]


def _trace_transition(event: BreakerEvent) -> None:
    record_breaker_transition(event.model, event.old, event.new)


class ResilientCaller:
    """Routes and calls models, surviving failures; share one per process.

    Args:
        router: The shared router (its state holds the breakers).
        gateway: Calls the models.
        resilience: Default resilience policy (a call may bring its own).
        clock: Epoch-seconds clock for breakers (default: the wall clock).
        sleep: How to wait between retries (tests inject a fake).
        rng: Random source of the jitter.
        breaker_listeners: Called with each breaker transition.
        cache: The response cache; with one, deterministic calls are cached
            unless a policy or entry says ``cache: false``. Without one, calls
            whose policy or entry says ``cache: true`` use a cache in memory.
        limiter: Enforces the catalog entries' ``limits`` (shared through Redis
            with :func:`~agentmesh.resilience.limiter.open_limiter`); without
            one, a catalog with limits gets one in this process's memory.
    """

    def __init__(
        self,
        router: Router,
        gateway: Gateway,
        resilience: ResiliencePolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        breaker_listeners: Sequence[Callable[[BreakerEvent], None]] = (),
        cache: ResponseCache | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.router = router
        self.gateway = gateway
        self.resilience = resilience or ResiliencePolicy()
        self._clock = clock
        self._listeners = (_trace_transition, *breaker_listeners)
        self._breakers: dict[BreakerPolicy, CircuitBreaker] = {}
        self._retry_budgets: dict[RetryBudgetPolicy, RetryBudget] = {}
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._cache = CacheStep(cache)
        self._semantic = SemanticStep(gateway)
        self._limits = LimitStep(limiter, sleep)
        self._redact = RedactStep()

    @property
    def cache(self) -> ResponseCache | None:
        """The response cache given (``None``: only what policies ask for, in memory)."""
        return self._cache.cache

    @property
    def limiter(self) -> RateLimiter | None:
        """The rate limiter (made in memory when a catalog entry with ``limits`` needs one)."""
        return self._limits.limiter

    @property
    def breaker(self) -> CircuitBreaker:
        """The breaker transitions of the default policy."""
        return self.breaker_for(self.resilience)

    @property
    def retry_budget(self) -> RetryBudget:
        """The retry budget of the default policy."""
        return self.retry_budget_for(self.resilience)

    def breaker_for(self, policy: ResiliencePolicy) -> CircuitBreaker:
        """The breaker transitions under ``policy``'s thresholds (one per distinct setting).

        Every breaker works on the same per-model state in the router's store;
        only the thresholds and timings differ.
        """
        found = self._breakers.get(policy.breaker)
        if found is None:
            found = CircuitBreaker(self.router.state, policy.breaker, self._clock, self._listeners)
            self._breakers[policy.breaker] = found
        return found

    def retry_budget_for(self, policy: ResiliencePolicy) -> RetryBudget:
        """The retry token buckets under ``policy``'s budget (one per distinct setting)."""
        found = self._retry_budgets.get(policy.retry_budget)
        if found is None:
            found = self._retry_budgets[policy.retry_budget] = RetryBudget(policy.retry_budget)
        return found

    # --- the two entry points ---------------------------------------------------------

    async def call(self, call: Call) -> CallResult:
        """Serve ``call`` with a routed model, surviving what can be survived.

        Raises:
            CallFailed: No model served it; the error lists every attempt.
        """
        return await self._run(self._start(call, self._invoke))

    def stream(
        self, call: Call, *, on_first_token: FirstToken | None = None
    ) -> AsyncIterator[Streamed]:
        """Serve ``call``, yielding the answer's text as it arrives, then the result.

        Each item is a text delta (``str``) until the last, the
        :class:`CallResult`. Deltas come from the model being streamed; if it
        fails before its first token, the next attempt (retry or fallback) is
        streamed instead. A consensus decision yields its winner as one delta.
        A consumer that stops reading cancels the call.

        Args:
            call: What to serve.
            on_first_token: Called with the model id and attempt number (as on
                its ``chat`` span) of the attempt whose text is streamed, just
                before its first delta is yielded (never for an answer without text).

        Raises:
            CallFailed: No model served it, or the streaming model failed mid-answer.
        """
        return stream_call(self.gateway, call, self._start, self._run, on_first_token)

    # --- one call -----------------------------------------------------------------------

    def _start(self, call: Call, invoke: Invoke) -> Run:
        policy = call.resilience or self.resilience
        deadline = None
        if policy.deadline_s is not None:
            deadline = asyncio.get_running_loop().time() + policy.deadline_s
        return Run(
            call,
            policy,
            invoke,
            self.breaker_for(policy),
            self.retry_budget_for(policy),
            deadline,
        )

    async def _invoke(
        self, run: Run, model: str, request: ModelRequest, attributes: Mapping[str, Any]
    ) -> ModelResponse:
        return await self.gateway.invoke(model, request, attributes=attributes)

    async def _run(self, run: Run) -> CallResult:
        try:
            async with asyncio.timeout_at(run.deadline):
                return await self._serve(run)
        except TimeoutError:
            error = Timeout(f"deadline of {run.resilience.deadline_s:g} s reached", model_id=None)
            raise CallFailed(error, run.attempts) from None

    async def _serve(self, run: Run) -> CallResult:
        request = run.call.route
        routing, degraded_reason = run.call.routing, ""
        route_request = await self._limits.mark_saturated(self.router.catalog.specs, request)
        while True:
            try:
                decision = await self.router.route(route_request, routing)
            except NoRoute as exc:
                if route_request.saturated and any(e.by == LIMITED for e in exc.excluded):
                    # Only saturated models fit: choose among them, and wait at admission.
                    route_request = replace(route_request, saturated=MappingProxyType({}))
                    continue
                if degraded_reason or not self._may_degrade(run, exc):
                    raise CallFailed(run.last_error or exc, run.attempts) from None
                degraded_reason = self._degradation(exc)
                route_request, routing = self._degraded(run, request, routing)
                continue
            try:
                if len(decision.selected) > 1:
                    result: CallResult | str = await self._consensus(run, decision)
                else:
                    result = await self._walk(run, decision, degraded_reason)
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
                and run.resilience.degrade.allow
                and len(run.tried) < run.resilience.max_models
            ):
                degraded_reason = "every model of the decision failed"
                route_request, routing = self._degraded(run, request, routing)
                continue
            raise CallFailed(run.last_error or NoRoute(request, ()), run.attempts)

    def _smaller(self, run: Run) -> set[str]:
        """Models whose window is not larger than the largest that overflowed."""
        catalog = self.router.catalog
        overflowed = [
            catalog[a.model].context_window
            for a in run.attempts
            if a.error_type == "context_overflow"
        ]
        limit = max(overflowed, default=0)
        return {s.id for s in catalog.specs if s.context_window <= limit}

    @staticmethod
    def _may_degrade(run: Run, exc: NoRoute) -> bool:
        down = {"health", "exclude"}
        return run.resilience.degrade.allow and any(e.by in down for e in exc.excluded)

    @staticmethod
    def _degradation(exc: NoRoute) -> str:
        down = [f"{e.model}: {e.why}" for e in exc.excluded if e.by in ("health", "exclude")]
        return "every capable model is down (" + "; ".join(down[:4]) + ")"

    def _degraded(
        self, run: Run, request: RouteRequest, routing: Policy | None
    ) -> tuple[RouteRequest, Policy]:
        base = routing or self.router.policy
        relaxed = base.model_copy(
            update={"min_tier": run.resilience.degrade.min_tier, "quality_floor": None}
        )
        lowered = replace(request, escalation=0, exclude=frozenset(run.tried))
        return lowered, relaxed

    async def _walk(
        self, run: Run, decision: RouteDecision, degraded_reason: str
    ) -> CallResult | str:
        """Try the decision's models in order; a result, or why the walk stopped."""
        previous: str | None = None
        previous_model: str | None = None
        for model in (decision.chosen, *decision.fallbacks):
            if model in run.tried:
                continue
            if len(run.tried) >= run.resilience.max_models:
                break
            run.tried.add(model)
            admission = await run.breaker.admit(model)
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
            if run.streaming:
                why += " (streamed)"
            if admission.probe:
                why += " (half-open probe)"
            built = run.call.build(self.router.catalog[model])
            # the hedge step: the attempt, raced by the next candidate when slow (hedge.py)
            served = await hedged(
                self.router, self._try_model, run, decision, model, built, why, admission.probe
            )
            if isinstance(served, ModelResponse):
                return CallResult(
                    served,
                    decision,
                    tuple(run.attempts),
                    decision.request.escalation,
                    bool(degraded_reason),
                    degraded_reason,
                )
            action = run.resilience.action(served.kind)
            if action == "fail" or run.committed:
                raise CallFailed(served, run.attempts)
            if action == "larger_context":
                return "larger_context"
            previous, previous_model = f"{served.kind} on {model}", model
        return "exhausted"

    async def _consensus(self, run: Run, decision: RouteDecision) -> CallResult | str:
        """The consensus path (:func:`~agentmesh.resilience.consensus.consensus`)."""
        return await consensus(run, decision, self._walk)

    # --- the single attempt routine -----------------------------------------------------

    async def _try_model(
        self,
        run: Run,
        decision: RouteDecision,
        model: str,
        request: ModelRequest,
        why: str,
        probe: bool,
    ) -> ModelResponse | ModelError:
        """Call one model, retrying what may be retried; the response or the last error.

        The gateway controls are steps of this routine, in order: a cache
        lookup, exact then semantic (a hit ends it at no cost), redaction of what the model may
        receive, and for each attempt the rate limiter's admission, the call,
        the record; the answer (restored from placeholders when asked) is
        stored in the cache once it is known to be good.
        """
        spec = self.router.catalog[model]
        policy = run.call.routing or self.router.policy
        lookup = None if probe else self._cache.plan(policy, spec, request)
        try:
            sent, redaction = self._redact.apply(policy, spec, request)
        except RedactionError as exc:
            run.last_error = BadRequest(str(exc), model_id=model)
            return run.last_error
        node = decision.request.node
        semantic = None if probe else self._semantic.plan(policy, spec, request, node)
        if lookup is not None or semantic is not None:
            hit = await self._cache.lookup(lookup, model, node) if lookup is not None else None
            if hit is None and semantic is not None:  # after the exact cache, never before
                hit = await self._semantic.lookup(semantic, model, node)
            if hit is not None:
                await self.router.release(decision)
                run.attempts.append(
                    Attempt(
                        model,
                        "ok",
                        f"{why} (cache hit)",
                        decision.decision_id,
                        latency_ms=hit.latency_ms,
                        ttft_ms=hit.ttft_ms,
                        cached=True,
                    )
                )
                return hit
        retry = run.resilience.retry
        window = run.resilience.breaker.window_s
        waited = 0.0
        reason = why
        for number in range(retry.max_attempts):
            traced = {
                **run.call.attributes,
                **attempt_attributes(
                    attempt=len(run.attempts) + 1,
                    fallback=model != decision.chosen,
                    escalation=decision.request.escalation,
                    node=decision.request.node,
                    decision_id=decision.decision_id,
                    run_id=decision.request.run_id,
                ),
            }
            billed = Spend()
            latency: float | None = None
            permit, queued = await self._limits.admit(spec, decision.request, request.max_tokens)
            waited += queued
            if permit is None:
                return self._still_full(run, decision, model, reason, waited)
            try:
                try:
                    response = await run.invoke(run, model, sent, traced)
                finally:
                    await self._limits.release(permit)
                billed, latency = Spend.of(response), response.latency_ms
                if not run.call.allow_empty and empty(response):
                    raise MalformedResponse("empty reply: no text and no tool call", model_id=model)
            except ModelError as error:
                run.last_error = error
                if run.owner == model and run.streamed and billed == Spend():
                    # failed mid-answer: billed what it streamed (no usage came)
                    billed = Spend(*cut_usage(spec, sent, "".join(run.streamed)))
                stats = await self.router.record(
                    decision, outcome(model, billed, error=error.kind), failure_window_s=window
                )
                run.attempts.append(
                    Attempt(
                        model,
                        "error",
                        reason,
                        decision.decision_id,
                        error_type=error.kind,
                        message=str(error),
                        latency_ms=latency,
                        spend=billed,
                        waited_s=waited,
                    )
                )
                run.retry_budget.on_failure(model)
                retry_after = getattr(error, "retry_after", None)
                await self._limits.block(model, retry_after)
                await run.breaker.on_failure(
                    model,
                    stats,
                    error.kind,
                    probe=probe,
                    retry_after=retry_after,
                )
                delay = (
                    None
                    if run.committed
                    else await self._retry_delay(run, model, error, number, probe)
                )
                if delay is None:
                    return error
                await self._sleep(delay)
                if not await run.breaker.is_closed(model):
                    return error  # it opened while we slept: fall back instead
                waited = delay
                reason = f"retry {number + 1} after {error.kind}"
                continue
            except BaseException:
                if probe:  # cancelled (deadline) or crashed: the probe will never report back
                    await asyncio.shield(run.breaker.reopen(model, "probe abandoned"))
                if run.owner == model and run.streamed:  # cut off mid-answer: charge its text
                    charge = charge_cut_stream(
                        self.router, run, decision, model, sent, reason, waited
                    )
                    await asyncio.shield(charge)
                raise
            await self.router.record(
                decision,
                outcome(model, billed, latency_ms=response.latency_ms),
                failure_window_s=window,
            )
            run.retry_budget.on_success(model)
            await run.breaker.on_success(model, probe=probe)
            run.attempts.append(
                Attempt(
                    model,
                    "ok",
                    reason,
                    decision.decision_id,
                    latency_ms=response.latency_ms,
                    ttft_ms=response.ttft_ms,
                    spend=billed,
                    waited_s=waited,
                )
            )
            response = self._redact.restore(policy, response, redaction)
            if lookup is not None:
                await self._cache.store(lookup, response, allow_empty=run.call.allow_empty)
            if semantic is not None:
                self._semantic.store(semantic, response, allow_empty=run.call.allow_empty)
            return response
        raise AssertionError("unreachable: the loop returns")  # pragma: no cover

    @staticmethod
    def _still_full(
        run: Run, decision: RouteDecision, model: str, why: str, waited: float
    ) -> ModelError:
        """A model whose local limit stayed full for ``max_wait``: skipped, as on a 429.

        Never counted against the model's breaker or statistics: it was not called.
        """
        message = f"rate_limited_locally: still full after max_wait {waited:.2f} s"
        run.last_error = RateLimited(message, model_id=model)
        run.attempts.append(
            Attempt(
                model,
                "skipped",
                why,
                decision.decision_id,
                error_type="rate_limited",
                message=message,
                waited_s=waited,
            )
        )
        return run.last_error

    async def _retry_delay(
        self, run: Run, model: str, error: ModelError, number: int, probe: bool
    ) -> float | None:
        """Seconds to wait before retrying ``model``, or ``None`` to move on."""
        retry = run.resilience.retry
        last = number + 1 >= retry.max_attempts
        if run.resilience.action(error.kind) != "retry" or probe or last:
            return None
        if not run.retry_budget.allows_retry(model):
            return None
        if not await run.breaker.is_closed(model):
            return None
        delay = backoff_delay(retry, number, self._rng, getattr(error, "retry_after", None))
        if delay is None:
            return None
        if run.deadline is not None and asyncio.get_running_loop().time() + delay >= run.deadline:
            return None
        return delay


LIMITED = LocalRateLimitFilter.name
