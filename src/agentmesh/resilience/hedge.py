"""Delayed hedged requests: one step of the attempt routine, around the call itself.

A policy's ``hedge: {after_ms: N | p95, max_extra: 1}`` lets an attempt that
has not answered after the delay race the decision's next candidate: the first
good answer wins and the others are cancelled (their HTTP requests are closed
by the cancellation, so the provider stops generating). Every extra call's
worst case is reserved against the budgets before it starts; a cancelled
loser is charged what it is known to have cost, its prompt (the provider
received it; nothing of its answer came back).

``after_ms: p95`` waits for the first model's observed p95 latency, so only
the slowest twentieth of its calls are hedged (none until it has a p95).
Each race is traced as ``hedge {model}`` (delay, extra model, winner).
:func:`hedged` is the step itself (the caller's attempt, raced when slow);
:func:`race` the race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentmesh.models.controls import HedgePolicy
from agentmesh.models.errors import ModelError
from agentmesh.models.tokens import estimate_tokens
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.resilience.call import Attempt, Spend
from agentmesh.resilience.run import Run
from agentmesh.routing.router import Router
from agentmesh.routing.types import RouteDecision
from agentmesh.tracing import SpanScope
from agentmesh.tracing.controls import HEDGE_AFTER_MS, HEDGE_MODEL, HEDGE_WINNER, hedge_span

__all__ = ["Race", "Racer", "TryModel", "charge_cut", "hedge_delay_s", "hedged", "race"]

Served = ModelResponse | ModelError

TryModel = Callable[[Run, RouteDecision, str, ModelRequest, str, bool], Coroutine[Any, Any, Served]]
"""The caller's single attempt routine: ``(run, decision, model, request, why, probe)``."""


class Owned(Protocol):
    """Who owns a streamed call's output (the caller's run)."""

    owner: str | None


@dataclass(slots=True)
class Racer:
    """One call of a race: its model, the decision it is recorded on, its task."""

    model: str
    decision: RouteDecision
    task: asyncio.Task[Served]


@dataclass(slots=True)
class Race:
    """How a race ended.

    Attributes:
        served: The winner's answer, or the last error when every racer failed.
        winner: The racer that answered (the last to fail, when none did).
        cut: Racers cancelled because another won (still running then).
        hedged: Whether an extra call was started at all.
    """

    served: Served
    winner: Racer
    cut: list[Racer] = field(default_factory=list)
    hedged: bool = False


async def hedged(
    router: Router,
    try_model: TryModel,
    run: Run,
    decision: RouteDecision,
    model: str,
    request: ModelRequest,
    why: str,
    probe: bool,
) -> Served:
    """``try_model``, hedged when the policy says so (never a probe).

    A streamed call's race is won by the first model to send a token. Cut
    losers are charged (:func:`charge_cut`) and listed before the winner's
    attempt, which stays last.
    """
    policy = (run.call.routing or router.policy).hedge
    if policy is None or probe or run.committed:
        return await try_model(run, decision, model, request, why, probe)
    order = (decision.chosen, *decision.fallbacks)
    if not [m for m in order if m not in run.tried]:
        return await try_model(run, decision, model, request, why, probe)

    async def p95() -> float | None:
        stats = (await router.state.snapshot([model])).stats.get(model)
        return None if stats is None else stats.p95_latency_ms

    after_s = await hedge_delay_s(policy, p95)
    if after_s is None:
        return await try_model(run, decision, model, request, why, probe)

    async def start_extra() -> Racer | None:
        for extra in order:
            if extra in run.tried or len(run.tried) >= run.resilience.max_models:
                continue
            run.tried.add(extra)
            admission = await run.breaker.admit(extra)
            extra_decision = await router.hedge(decision, extra) if admission.allowed else None
            if extra_decision is None:
                continue
            built = run.call.build(router.catalog[extra])
            note = f"hedge after {after_s * 1000:.0f} ms without an answer from {model}"
            if run.streaming:
                note += " (streamed)"
            attempt = try_model(run, extra_decision, extra, built, note, admission.probe)
            return Racer(extra, extra_decision, asyncio.create_task(attempt))
        return None

    first = Racer(
        model,
        decision,
        asyncio.create_task(try_model(run, decision, model, request, why, probe)),
    )
    run.claimed = asyncio.Event() if run.streaming else None
    try:
        ended = await race(
            first, after_s, start_extra, policy, decision.request.node, run.claimed, run
        )
    finally:
        run.claimed = None
    at = len(run.attempts) - 1  # losers go before the winner's attempt, which stays last
    for loser in ended.cut:
        run.attempts.insert(at, await charge_cut(router, loser, ended.winner.model))
    return ended.served


async def hedge_delay_s(
    policy: HedgePolicy, p95_ms: Callable[[], Awaitable[float | None]]
) -> float | None:
    """Seconds before the first extra call, or ``None`` when there is nothing to wait on."""
    if policy.after_ms == "p95":
        observed = await p95_ms()
        return None if observed is None else observed / 1000
    return policy.after_ms / 1000


async def race(
    first: Racer,
    after_s: float,
    start_extra: Callable[[], Awaitable[Racer | None]],
    policy: HedgePolicy,
    node: str | None,
    answered: asyncio.Event | None = None,
    stream: Owned | None = None,
) -> Race:
    """Run ``first``, racing it with an extra call each ``after_s`` it has not answered.

    At most ``policy.max_extra`` extra calls; the first good answer wins and
    the others are cancelled. ``start_extra`` returns ``None`` when no other
    candidate may start (none left, circuit open, budget refused); the race
    then goes on with what runs. For a stream, ``answered`` is set when a
    racer sends the first token and ``stream.owner`` names it: that racer wins
    at once (the others are cut) and the race returns when its stream ends.
    """
    racers = [first]
    try:
        return await _run(racers, after_s, start_extra, policy, node, answered, stream)
    finally:  # cancelled from outside (a deadline): no racer outlives the race
        await _cancel([r for r in racers if not r.task.done()])


async def _run(
    racers: list[Racer],
    after_s: float,
    start_extra: Callable[[], Awaitable[Racer | None]],
    policy: HedgePolicy,
    node: str | None,
    answered: asyncio.Event | None,
    stream: Owned | None,
) -> Race:
    first = last = racers[0]
    pending: set[asyncio.Future[Served]] = {first.task}
    extras = 0
    token = None if answered is None else asyncio.ensure_future(answered.wait())
    try:
        with hedge_span(first.model, node) as scope:
            scope.set(HEDGE_AFTER_MS, round(after_s * 1000, 3))
            while pending:
                watched: set[asyncio.Future[Any]] = set(pending)
                if token is not None:
                    watched.add(token)
                done, _ = await asyncio.wait(
                    watched,
                    timeout=after_s if extras < policy.max_extra else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if token is not None and token in done and stream is not None:
                    owner = next(r for r in racers if r.model == stream.owner)
                    return await _won(owner, racers, scope)
                if not done:  # no answer in time: start an extra racer
                    extras += 1
                    extra = await start_extra()
                    if extra is None:
                        extras = policy.max_extra  # nothing else can start: wait for what runs
                        continue
                    scope.set(HEDGE_MODEL, extra.model)
                    racers.append(extra)
                    pending.add(extra.task)
                    continue
                pending -= done
                for racer in racers:
                    if racer.task in done:
                        last = racer
                        if isinstance(racer.task.result(), ModelResponse):
                            return await _won(racer, racers, scope)
            scope.set(HEDGE_WINNER, "")
        return Race(last.task.result(), last, [], len(racers) > 1)
    finally:
        if token is not None:
            token.cancel()


async def _won(winner: Racer, racers: list[Racer], scope: SpanScope) -> Race:
    """``winner`` answered first: cut the others, then its whole answer (a stream's end)."""
    cut = [r for r in racers if r is not winner and not r.task.done()]
    await _cancel(cut)
    scope.set(HEDGE_WINNER, winner.model)
    return Race(await winner.task, winner, cut, len(racers) > 1)


async def _cancel(racers: list[Racer]) -> None:
    """Cancel ``racers`` and wait until they have unwound (their connections closed)."""
    for racer in racers:
        racer.task.cancel()
    await asyncio.gather(*(r.task for r in racers), return_exceptions=True)


async def charge_cut(router: Router, loser: Racer, winner: str) -> Attempt:
    """A loser, cancelled: charge its prompt (the provider got it) and say so in an attempt."""
    spec = router.catalog[loser.model]
    route = loser.decision.request
    tokens = route.prompt_tokens_by_model.get(loser.model, route.prompt_tokens)
    if tokens is None:
        tokens = estimate_tokens(route.prompt)
    spend = Spend(tokens, 0, spec.cost(tokens, 0))
    await router.settle_cut(loser.decision, spend.cost_usd)
    return Attempt(
        loser.model,
        "cancelled",
        f"hedge race lost to {winner}",
        loser.decision.decision_id,
        message="cancelled: another model answered first (its prompt is charged)",
        spend=spend,
    )
