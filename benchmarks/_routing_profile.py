"""Where the microseconds of one 10-candidate ``Router.route()`` go, measured in the run.

``routing_overhead.py`` prints this as its ``profile`` section. For each target
strategy (``cheapest``, ``least_latency``, ``round_robin``) on the same 10-model
catalog, state, request and policy the benchmark times, each step of
``Router._decide`` is called alone, in the order the router calls it, on the
inputs one real decision gives it:

``span_check``
    ``RouteCall.wanted()``: False here (no tracer or meter provider), so no span.
``policy``
    ``Router._compiled(policy)``: the strategy, bounds and filters prepared once per policy.
``budget_keys``
    ``BudgetLimits.keys(run_id, run_budget_usd)`` (none apply here).
``snapshot``
    ``strategy.counter_key(request)`` and ``await state.snapshot(...)`` as the
    router asks it (statistics only for ``least_latency``; ``round_robin``'s counter).
``context``
    ``Router._context(...)``: the prompt's token estimate (from the router's
    cache: the benchmark routes one prompt), the context-window bounds, the
    budgets left, the lazy ``Costs``, the ``RouteContext`` tuple.
``filters``
    ``Router._eligible(ctx, filters)``: ``active()`` of each filter the policy
    may activate (none is: every model is eligible).
``rank``
    ``await strategy.rank(eligible, ctx)`` on a fresh context each call (a
    context caches its cost column): scores, the lazy ``Ranked``, the reason.
``decision``
    the chosen model, ``Router._next_id()`` and ``Router._decision(...)``: the
    ``RouteDecision`` and its lazy ``Fallbacks``.

``route_us`` is a whole ``await router.route(request, policy)`` timed the same way
(in batches, so it is a little below the benchmark's per-call median, which also
pays a ``perf_counter_ns`` pair per call); ``other_us = route_us - parts_sum_us``
is what no part holds: the ``route()`` and ``_decide`` frames and awaits, argument
passing, the classification test. ``details`` (not in the sum):
``token_estimate_cached`` (inside ``context``) and ``token_estimate_new_prompt``,
what ``estimate_tokens`` costs on a prompt the cache does not hold.

How: each part is called ``BATCH`` times in a row between two
``perf_counter_ns()`` reads, ``REPEATS`` times, gc disabled; a part's figure is the
median batch's time per call minus the same loop calling a no-op with the same
argument (the loop's own cost, ``harness_ns``). Every call reads one argument
from a list prepared before the batch (the fresh contexts of ``rank``).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from _routing_fixtures import SyntheticModel
from agentmesh.models.tokens import estimate_tokens
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.routing.ranked import first_model
from agentmesh.tracing import RouteCall

__all__ = ["BATCH", "REPEATS", "profile_decisions"]

BATCH = 200
"""Calls per timed batch."""
REPEATS = 31
"""Batches per part; the median batch is reported."""

SyncPart = Callable[[Any], object]
AsyncPart = Callable[[Any], Awaitable[object]]


def _noop(_: Any) -> None:
    return None


async def _anoop(_: Any) -> None:
    return None


def _median_ns(batches: Sequence[int]) -> float:
    return statistics.median(batches) / BATCH


def _time_sync(part: SyncPart, inputs: Callable[[], list[Any]]) -> float:
    """Median nanoseconds per call of ``part`` over ``REPEATS`` batches (harness included)."""
    clock, batches = time.perf_counter_ns, []
    for _ in range(REPEATS):
        args = inputs()
        gc.disable()
        start = clock()
        for arg in args:
            part(arg)
        batches.append(clock() - start)
        gc.enable()
    return _median_ns(batches)


async def _time_async(part: AsyncPart, inputs: Callable[[], list[Any]]) -> float:
    """As :func:`_time_sync`, awaiting each call."""
    clock, batches = time.perf_counter_ns, []
    for _ in range(REPEATS):
        args = inputs()
        gc.disable()
        start = clock()
        for arg in args:
            await part(arg)
        batches.append(clock() - start)
        gc.enable()
    return _median_ns(batches)


def _same(value: Any) -> Callable[[], list[Any]]:
    return lambda: [value] * BATCH


async def profile_one(router: Router, policy: Policy, request: RouteRequest) -> dict[str, Any]:
    """The parts of ``router.route(request, policy)``, each timed alone, in microseconds."""
    compiled = router._compiled(policy)
    strategy, constraints, filters = compiled.strategy, compiled.constraints, compiled.filters
    state = router.state
    limits = router.budgets.keys(request.run_id, request.run_budget_usd)
    reads_stats = strategy.needs_stats or constraints.latency_slo_ms is not None
    ids = router._ids if reads_stats else ()
    counter = strategy.counter_key(request)

    def snapshot(_: Any) -> Awaitable[object]:
        counter = strategy.counter_key(request)
        return state.snapshot(ids, task=None, budget_keys=(), counter=counter)

    snap = await state.snapshot(ids, task=None, budget_keys=(), counter=counter)

    def context(_: Any) -> Any:
        return router._context(request, constraints, snap, None, None, limits)

    ctx = context(None)
    eligible, excluded = router._eligible(ctx, filters)
    ranking = await strategy.rank(eligible, ctx)

    def fresh_contexts() -> list[Any]:
        return [context(None) for _ in range(BATCH)]

    def decision(_: Any) -> object:
        ranked = ranking.ranked
        first = first_model(ranked)
        selected = ranking.selected or (first,)
        return router._decision(
            ctx, strategy, ranking, ranked, selected, first, [], 0.0, (), router._next_id()
        )

    sync_parts: dict[str, tuple[SyncPart, Callable[[], list[Any]]]] = {
        "span_check": (lambda _: RouteCall.wanted(), _same(None)),
        "policy": (lambda _: router._compiled(policy), _same(None)),
        "budget_keys": (
            lambda _: router.budgets.keys(request.run_id, request.run_budget_usd),
            _same(None),
        ),
    }
    harness = _time_sync(_noop, _same(None))
    aharness = await _time_async(_anoop, _same(None))
    parts: dict[str, float] = {}
    for name, (part, inputs) in sync_parts.items():
        parts[name] = _time_sync(part, inputs) - harness
    parts["snapshot"] = await _time_async(snapshot, _same(None)) - aharness
    parts["context"] = _time_sync(context, _same(None)) - harness
    parts["filters"] = _time_sync(lambda c: router._eligible(c, filters), _same(ctx)) - harness
    parts["rank"] = (
        await _time_async(lambda c: strategy.rank(eligible, c), fresh_contexts) - aharness
    )
    parts["decision"] = _time_sync(decision, _same(None)) - harness
    route = await _time_async(lambda _: router.route(request, policy), _same(None)) - aharness
    prompt = request.prompt
    details = {
        "token_estimate_cached": _time_sync(lambda p: router._estimate(p), _same(prompt)) - harness,
        "token_estimate_new_prompt": _time_sync(estimate_tokens, _same(prompt)) - harness,
    }
    total = sum(parts.values())
    return {
        "route_us": round(route / 1000, 2),
        "parts_us": {name: round(ns / 1000, 2) for name, ns in parts.items()},
        "parts_sum_us": round(total / 1000, 2),
        "other_us": round((route - total) / 1000, 2),
        "details_us": {name: round(ns / 1000, 2) for name, ns in details.items()},
        "harness_ns": {"sync": round(harness, 1), "async": round(aharness, 1)},
        "eligible": len(eligible),
        "excluded": len(excluded),
    }


async def profile_decisions(
    router: Router,
    models: Sequence[SyntheticModel],
    policies: dict[str, Policy],
    request: RouteRequest,
) -> dict[str, Any]:
    """:func:`profile_one` for each of ``policies`` on ``router`` (over ``models``)."""
    out: dict[str, Any] = {
        "candidates": len(models),
        "method": f"each part called {BATCH} times per batch, {REPEATS} batches, median "
        "batch per call minus the same loop calling a no-op; see _routing_profile.py",
    }
    for name, policy in policies.items():
        for _ in range(BATCH):  # warm the policy, the caches and the counter
            await router.route(request, policy)
        out[name] = await profile_one(router, policy, request)
    return out
