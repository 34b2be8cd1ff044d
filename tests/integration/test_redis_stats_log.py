"""The Redis state's incremental statistics reads, on a real server.

A process keeps the view's statistics and each snapshot reads only the models
written since its previous one (the change log): these tests check that the
result is always what a full read (a fresh process) and the in-memory state
give, through other processes' writes, expiry, ``clear()`` and data of the
previous key layout, and that routers over both states decide alike.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from agentmesh.models.spec import ModelSpec
from agentmesh.routing import (
    BreakerState,
    InMemoryRoutingState,
    ModelStats,
    Policy,
    RedisRoutingState,
    Router,
    RouteRequest,
    RoutingState,
)
from agentmesh.testing import scripted_catalog, scripted_model
from agentmesh.testing.conformance import FakeClock
from tests.integration.test_redis_state import made, make

__all__ = ["made"]  # the fixture, imported for this module's tests


async def _full_read(
    made: list[RedisRoutingState], state: RedisRoutingState, models: list[str], clock: FakeClock
) -> dict[str, ModelStats]:
    """What a process that never read the view sees (a fresh state on the same keys)."""
    fresh = make(made, prefix=state.prefix, clock=clock)
    return dict((await fresh.snapshot(models)).stats)


async def test_other_processes_writes_are_read_incrementally_and_exactly(
    made: list[RedisRoutingState],
) -> None:
    """A random workload of several writers: every snapshot equals a full read and memory."""
    clock = FakeClock()
    reader = make(made, clock=clock, window=5)
    writers = [make(made, clock=clock, prefix=reader.prefix, window=5) for _ in range(2)]
    memory = InMemoryRoutingState(clock=clock, window=5)
    models = [f"m/{i}" for i in range(6)]
    rng = random.Random(7)
    for step in range(120):
        clock.now += rng.random() * 3
        for _ in range(rng.randint(0, 3)):
            model, writer = rng.choice(models), rng.choice([reader, *writers])
            error = rng.choice([None, None, None, "timeout"])
            latency = None if error else rng.uniform(5, 500)
            got = await writer.observe(model, latency_ms=latency, error=error)
            assert got == await memory.observe(model, latency_ms=latency, error=error)
        if step % 3 == 0:
            snap = await reader.snapshot(models)
            assert dict(snap.stats) == dict((await memory.snapshot(models)).stats)
    full = await _full_read(made, reader, models, clock)
    assert dict((await reader.snapshot(models)).stats) == full


async def test_a_snapshot_rereads_only_models_written_since_the_last(
    made: list[RedisRoutingState],
) -> None:
    state = make(made)
    await state.observe("a", latency_ms=10.0, error=None)
    await state.observe("b", latency_ms=20.0, error=None)
    await state.snapshot(["a", "b"])
    # Written behind the state's back (not logged): not read again, since "a" did not change.
    await state.client.hset(f"{state.prefix}stats", "a", "9 0 1.0 1.0 0  ")
    await state.observe("b", latency_ms=30.0, error=None)
    stats = (await state.snapshot(["a", "b"])).stats
    assert (stats["a"].calls, stats["b"].calls) == (1, 2)


async def test_concurrent_snapshots_and_observations_converge(
    made: list[RedisRoutingState],
) -> None:
    clock = FakeClock()
    reader = make(made, clock=clock)
    writer = make(made, clock=clock, prefix=reader.prefix)
    models = ["a", "b", "c"]
    jobs: list[Any] = []
    for i in range(60):
        jobs.append(writer.observe(models[i % 3], latency_ms=float(i), error=None))
        jobs.append(reader.snapshot(models))
    await asyncio.gather(*jobs)
    full = await _full_read(made, reader, models, clock)
    assert dict((await reader.snapshot(models)).stats) == full


async def test_expired_statistics_vanish_for_every_reader_and_restart_afresh(
    made: list[RedisRoutingState],
) -> None:
    clock = FakeClock()
    reader = make(made, clock=clock, stats_ttl_s=10.0)
    writer = make(made, clock=clock, prefix=reader.prefix, stats_ttl_s=10.0)
    await writer.observe("a", latency_ms=500.0, error=None)
    await writer.observe("b", latency_ms=100.0, error=None)
    assert set((await reader.snapshot(["a", "b"])).stats) == {"a", "b"}
    clock.now += 6.0
    await writer.observe("b", latency_ms=100.0, error=None)
    clock.now += 5.0  # "a" last called 11 s ago, "b" 5 s ago
    assert set((await reader.snapshot(["a", "b"])).stats) == {"b"}
    assert not await reader.client.hexists(f"{reader.prefix}stats", "a")
    fresh = await writer.observe("a", latency_ms=50.0, error=None)
    assert (fresh.calls, fresh.ewma_latency_ms, fresh.p95_latency_ms) == (1, 50.0, 50.0)
    assert (await reader.snapshot(["a"])).stats["a"] == fresh


async def test_a_model_expired_but_not_yet_swept_is_measured_afresh(
    made: list[RedisRoutingState],
) -> None:
    clock = FakeClock()
    state = make(made, clock=clock, stats_ttl_s=10.0)
    await state.observe("a", latency_ms=500.0, error=None)
    clock.now += 11.0
    again = await state.observe("a", latency_ms=None, error="timeout")
    assert (again.calls, again.errors, again.ewma_latency_ms) == (1, 1, None)
    clock.now += 5.0
    assert (await state.snapshot(["a"])).stats["a"] == again, "written again: not expired"


async def test_a_cleared_view_is_read_afresh(made: list[RedisRoutingState]) -> None:
    clock = FakeClock()
    reader = make(made, clock=clock)
    writer = make(made, clock=clock, prefix=reader.prefix)
    await writer.observe("a", latency_ms=10.0, error=None)
    await writer.observe("b", latency_ms=10.0, error=None)
    assert set((await reader.snapshot(["a", "b"])).stats) == {"a", "b"}
    await writer.clear()
    await writer.observe("b", latency_ms=99.0, error=None)
    stats = (await reader.snapshot(["a", "b"])).stats
    assert set(stats) == {"b"}
    assert stats["b"].ewma_latency_ms == 99.0


async def test_statistics_of_the_previous_layout_are_moved_on_first_read(
    made: list[RedisRoutingState],
) -> None:
    """``stats:<model>`` hashes (the previous layout) become fields, with their TTL."""
    clock = FakeClock()
    prefix = make(made).prefix
    client: Any = made[0].client
    old = {"calls": "3", "errors": "1", "ewma": "120.5", "p95": "200.0", "streak": "0",
           "streak_at": "", "last_error": "timeout: no answer"}  # fmt: skip
    await client.hset(f"{prefix}stats:a", mapping=old)
    await client.pexpire(f"{prefix}stats:a", 60_000)
    await client.rpush(f"{prefix}lat:a", "200.0", "100.0")
    await client.hset(f"{prefix}stats:other/catalog", mapping=old)  # no TTL, never read below
    state = make(made, prefix=prefix, clock=clock, window=5)
    stats = (await state.snapshot(["a", "b"])).stats
    assert stats["a"].calls == 3
    assert stats["a"].last_error == "timeout: no answer"
    assert stats["other/catalog"].p95_latency_ms == 200.0
    assert not await client.exists(f"{prefix}stats:a", f"{prefix}stats:other/catalog")
    expiry = await client.zscore(f"{prefix}stats_until", "a")
    assert clock.now + 59 < expiry <= clock.now + 60
    assert await client.zscore(f"{prefix}stats_until", "other/catalog") is None
    # Observations continue the old statistics and latency window.
    after = await state.observe("a", latency_ms=300.0, error=None)
    assert (after.calls, after.errors, after.p95_latency_ms) == (4, 1, 300.0)
    assert after.ewma_latency_ms == 120.5 + 0.2 * (300.0 - 120.5)
    # Other processes find the view migrated (one meta read, no scan) and agree.
    assert dict((await make(made, prefix=prefix, clock=clock).snapshot(["a"])).stats) == dict(
        (await state.snapshot(["a"])).stats
    )


def _catalog() -> list[ModelSpec]:
    def model(name: str, tier: int, price: float, tools: bool = True) -> ModelSpec:
        fields: dict[str, Any] = {"pricing": {"input": price, "output": price}}
        if not tools:
            fields["capabilities"] = ["json"]
        return scripted_model(name, tier=tier, fields=fields)

    return [
        model("fast-no-tools", 1, 1.0, tools=False),
        model("fast-b", 1, 2.0),
        model("fast-a", 1, 2.0),
        model("mid", 2, 1.0),
        model("slow", 3, 0.5),
        model("new-x", 2, 3.0),
        model("new-y", 1, 3.0),
    ]


async def _observe_all(state: RoutingState) -> None:
    latencies = {"fast-no-tools": [20.0], "fast-a": [50.0, 50.0], "fast-b": [50.0, 50.0],
                 "mid": [200.0, 900.0], "slow": [1500.0]}  # fmt: skip
    for model, values in latencies.items():
        for ms in values:
            await state.observe(model, latency_ms=ms, error=None)
    await state.observe("new-x", latency_ms=None, error="timeout")  # called, no latency


def _decision(decision: Any) -> dict[str, object]:
    view = decision.to_dict()
    del view["decision_id"]
    return view


POLICIES = [
    Policy(strategy="least_latency"),
    Policy(strategy="least_latency", params={"explore": False}),
    Policy(strategy="least_latency", params={"metric": "p95"}, require=frozenset({"tools"})),
    Policy(strategy="least_latency", params={"explore": False}, latency_slo_ms=800.0),
    Policy(strategy="cheapest", latency_slo_ms=100.0),
]


async def test_routers_over_redis_and_memory_decide_alike(made: list[RedisRoutingState]) -> None:
    """Same observations, same decisions: chosen, order, notes, exclusions, fallbacks.

    Covers the fastest model filtered out (capability, open breaker), models
    without observations or without latency, equal latencies (tie-break by
    cost, tier, id) and the latency SLO, before and after another process writes.
    """
    clock = FakeClock()
    redis_state = make(made, clock=clock)
    writer = make(made, clock=clock, prefix=redis_state.prefix)
    memory = InMemoryRoutingState(clock=clock)
    catalog = scripted_catalog(*_catalog())
    routers = [Router(catalog, state=redis_state), Router(catalog, state=memory)]
    request = RouteRequest(node="n", role="executor", prompt="hi")
    open_breaker = BreakerState("open", until=clock.now + 60, reason="failing")

    async def both_decide() -> None:
        for policy in POLICIES:
            got, want = [_decision(await r.route(request, policy)) for r in routers]
            assert got == want, policy

    for state in (redis_state, memory):
        await _observe_all(state)
    await both_decide()
    for state in (writer, memory):
        await state.set_breaker("fast-a", open_breaker)
        await state.observe("new-y", latency_ms=50.0, error=None)  # ties fast-b
        await state.observe("mid", latency_ms=10.0, error=None)
    await both_decide()


async def test_removals_reach_readers_without_a_full_read(made: list[RedisRoutingState]) -> None:
    clock = FakeClock()
    reader = make(made, clock=clock, stats_ttl_s=10.0)
    writer = make(made, clock=clock, prefix=reader.prefix, stats_ttl_s=10.0)
    await writer.observe("a", latency_ms=10.0, error=None)
    clock.now += 5.0
    await writer.observe("b", latency_ms=20.0, error=None)
    await reader.snapshot(["a", "b"])
    await reader.client.hset(f"{reader.prefix}stats", "b", "9 0 1.0 1.0 0  ")  # not logged
    clock.now += 6.0  # "a" expires, "b" does not
    await writer.snapshot(["a"])  # another process sweeps it
    stats = (await reader.snapshot(["a", "b"])).stats
    assert set(stats) == {"b"}
    assert stats["b"].calls == 1, "only the removal was read, not the whole hash"


async def test_a_reader_behind_forgotten_removals_reads_everything(
    made: list[RedisRoutingState],
) -> None:
    """Past the removals kept (1,024), a reader that missed some reads the whole hash."""
    clock = FakeClock()
    reader = make(made, clock=clock, stats_ttl_s=10.0)
    writer = make(made, clock=clock, prefix=reader.prefix, stats_ttl_s=10.0)
    doomed = [f"old/{i}" for i in range(1100)]
    for model in doomed:
        await writer.observe(model, latency_ms=1.0, error=None)
    clock.now += 5.0
    await writer.observe("kept", latency_ms=2.0, error=None)
    assert len((await reader.snapshot(["kept"])).stats) == 1101
    clock.now += 6.0
    await writer.snapshot(["kept"])  # removes 1,100: the oldest 76 removals are forgotten
    assert await reader.client.zcard(f"{reader.prefix}stats_gone") == 1024
    assert set((await reader.snapshot(["kept"])).stats) == {"kept"}
