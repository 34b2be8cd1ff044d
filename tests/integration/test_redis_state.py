"""`RedisRoutingState` against the real local Redis: conformance, keys, TTLs, exactness.

Every test uses its own key prefix and deletes its keys afterwards, so runs
(and other users of the same server) never collide.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentmesh.cli import main
from agentmesh.routing import (
    BreakerState,
    InMemoryRoutingState,
    RedisRoutingState,
    RoutingState,
    StateError,
    open_state,
)
from agentmesh.testing.conformance import FakeClock, RoutingStateConformance
from tests.integration.conftest import free_port, require

REDIS_URL = os.environ.get("AGENTMESH_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_problem(url: str = REDIS_URL) -> str | None:
    """Why Redis at ``url`` cannot be used for tests, or ``None`` when it answers."""
    try:
        import redis
    except ImportError:
        return "the redis extra is not installed (pip install 'agentmesh[redis]')"
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"no Redis server at {url} ({exc}); start one, e.g. .ci/run does"
    finally:
        client.close()
    return None


def require_redis() -> None:
    problem = redis_problem()
    require(problem is None, problem or "")


def unique_prefix(tag: str = "t") -> str:
    return f"agentmesh-test:{tag}:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def made() -> AsyncIterator[list[RedisRoutingState]]:
    """States created by a test; their keys are deleted and clients closed afterwards."""
    require_redis()
    states: list[RedisRoutingState] = []
    yield states
    for state in states:
        await state.clear()
        await state.aclose()


def make(states: list[RedisRoutingState], **options: Any) -> RedisRoutingState:
    options.setdefault("prefix", unique_prefix())
    state = RedisRoutingState.from_url(REDIS_URL, **options)
    states.append(state)
    return state


class TestRedisRoutingState(RoutingStateConformance):
    @pytest.fixture(autouse=True)
    def _states(self, made: list[RedisRoutingState]) -> None:
        self.made = made

    async def make_state(self, clock: Callable[[], float]) -> RoutingState:
        return make(self.made, clock=clock)


async def _keys(state: RedisRoutingState) -> dict[str, int]:
    """Every key of the state's prefix with its TTL in ms (-1: none)."""
    found: dict[str, int] = {}
    async for key in state.client.scan_iter(match=f"{state.prefix}*"):
        found[key] = await state.client.pttl(key)
    return found


async def _use_everything(state: RoutingState) -> None:
    await state.observe("m/1", latency_ms=12.5, error=None)
    await state.observe("m/1", latency_ms=None, error="timeout")
    await state.add_quality("math", "m/1", 0.75)
    await state.set_breaker("m/1", BreakerState("open", until=10.0, reason="a|b"))
    await state.snapshot(["m/1"], counter="rr:node")
    assert await state.reserve([("run:r1", 1.0), ("global", 5.0)], 0.25) is None
    await state.settle(["run:r1", "global"], 0.25, 0.125)


async def test_keys_are_namespaced_and_expire_where_they_should(
    made: list[RedisRoutingState],
) -> None:
    clock = FakeClock()
    state = make(made, stats_ttl_s=3600, run_ttl_s=7200, counter_ttl_s=1800, clock=clock)
    other = make(made)
    await _use_everything(state)
    keys = await _keys(state)
    p = state.prefix
    assert set(keys) == {
        f"{p}stats",
        f"{p}stats_log",
        f"{p}stats_until",
        f"{p}stats_meta",
        f"{p}lat:m/1",
        f"{p}quality:math",
        f"{p}tasks",
        f"{p}breakers",
        f"{p}counter:rr:node",
        f"{p}budget:run:r1",
        f"{p}budget:global",
    }
    # A model's stats expire by the callers' clocks (the expiry index), its latencies by Redis.
    assert await state.client.zscore(f"{p}stats_until", "m/1") == clock.now + 3600
    assert 3_500_000 < keys[f"{p}lat:m/1"] <= 3_600_000
    assert 7_100_000 < keys[f"{p}budget:run:r1"] <= 7_200_000
    assert 1_700_000 < keys[f"{p}counter:rr:node"] <= 1_800_000
    never = ("budget:global", "breakers", "quality:math", "tasks")
    for durable in (*never, "stats", "stats_log", "stats_until", "stats_meta"):
        assert keys[f"{p}{durable}"] == -1, f"{durable} must not expire"
    # Another prefix is another routing view: it sees none of this.
    snap = await other.snapshot(["m/1"], task="math", budget_keys=["global"], counter="rr:node")
    assert (dict(snap.stats), dict(snap.breakers), dict(snap.quality)) == ({}, {}, {})
    assert (snap.spent["global"], snap.counter) == (0.0, 0)
    assert set(await _keys(other)) == {
        f"{other.prefix}counter:rr:node",
        f"{other.prefix}stats_meta",  # the view's epoch and layout, written by its first read
    }


async def test_ttls_can_be_disabled(made: list[RedisRoutingState]) -> None:
    state = make(made, stats_ttl_s=None, run_ttl_s=None, counter_ttl_s=None)
    await _use_everything(state)
    assert set((await _keys(state)).values()) == {-1}


async def test_clear_deletes_only_its_own_prefix(made: list[RedisRoutingState]) -> None:
    mine, theirs = make(made), make(made)
    await _use_everything(mine)
    await _use_everything(theirs)
    assert await mine.clear() == 11
    assert await _keys(mine) == {}
    assert len(await _keys(theirs)) == 11


async def test_same_results_as_in_memory_bit_for_bit(made: list[RedisRoutingState]) -> None:
    """A random workload gives exactly the in-memory state's numbers (floats included)."""
    clock = FakeClock()
    redis_state = make(made, clock=clock, window=7)
    memory = InMemoryRoutingState(clock=clock, window=7)
    rng = random.Random(11)
    models, keys = ["a", "b", "c"], ["run:x", "global"]
    for _ in range(300):
        op = rng.random()
        model = rng.choice(models)
        clock.now += rng.random() * 20
        if op < 0.5:
            error = rng.choice([None, None, "timeout", "rate_limited"])
            latency = None if error else rng.uniform(1, 900)
            got = await redis_state.observe(model, latency_ms=latency, error=error)
            want = await memory.observe(model, latency_ms=latency, error=error)
            assert got == want
        elif op < 0.65:
            score, n = rng.random(), rng.randint(1, 3)
            got_cell = await redis_state.add_quality("math", model, score, n)
            assert got_cell == await memory.add_quality("math", model, score, n)
        elif op < 0.85:
            limits = [("run:x", 3.3), ("global", 7.1)]
            amount = rng.uniform(0.01, 0.9)
            got_key = await redis_state.reserve(limits, amount)
            assert got_key == await memory.reserve(limits, amount)
            if got_key is None:
                actual = amount * rng.random()
                await redis_state.settle(keys, amount, actual)
                await memory.settle(keys, amount, actual)
        else:
            got_snap = await redis_state.snapshot(models, task="math", budget_keys=keys)
            want_snap = await memory.snapshot(models, task="math", budget_keys=keys)
            assert got_snap == want_snap
    assert await redis_state.quality_table() == await memory.quality_table()


async def test_breaker_reasons_with_separators_round_trip(made: list[RedisRoutingState]) -> None:
    state = make(made)
    odd = BreakerState("half_open", until=1e9 + 0.1, reason="x|y: 3 failures|z", probes=2)
    assert await state.swap_breaker("a", BreakerState(), odd)
    assert (await state.snapshot(["a"])).breakers["a"] == odd
    assert await state.swap_breaker("a", odd, BreakerState())
    # A closed expectation other than the default never matches (nothing closed is stored).
    assert not await state.swap_breaker("a", BreakerState("closed", reason="x"), odd)


async def test_a_snapshot_is_one_round_trip(made: list[RedisRoutingState]) -> None:
    state = make(made)
    await _use_everything(state)
    await state.snapshot(["m/1", "m/2"], task="math", budget_keys=["global"], counter="rr")
    sent: list[Any] = []
    real = state.client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(args[0])
        return await real(*args, **kwargs)

    state.client.execute_command = counting  # type: ignore[method-assign]
    snap = await state.snapshot(
        ["m/1", "m/2"], task="math", budget_keys=["run:r1", "global"], counter="rr"
    )
    assert sent == ["EVALSHA"]
    assert snap.counter == 1
    assert snap.stats["m/1"].calls == 2
    assert snap.spent == {"run:r1": 0.125, "global": 0.125}


async def test_scripts_are_reloaded_after_a_script_flush(made: list[RedisRoutingState]) -> None:
    state = make(made)
    assert await state.reserve([("global", 1.0)], 0.5) is None
    await state.client.script_flush()
    assert await state.reserve([("global", 1.0)], 0.5) is None
    assert await state.reserve([("global", 1.0)], 0.5) == "global"


async def test_clients_without_decoded_responses_work(made: list[RedisRoutingState]) -> None:
    from redis.asyncio import Redis

    raw = Redis.from_url(REDIS_URL)  # bytes replies
    state = RedisRoutingState(raw, prefix=unique_prefix("raw"), owns_client=True)
    made.append(state)
    await _use_everything(state)
    snap = await state.snapshot(["m/1"], task="math", budget_keys=["global"], counter="rr:node")
    assert snap.stats["m/1"].last_error == "timeout"
    assert snap.breakers["m/1"].reason == "a|b"
    assert snap.quality["m/1"].total == 0.75
    assert snap.counter == 1
    assert (await state.quality_table())["math"]["m/1"].count == 1


async def test_open_state_opens_redis_with_url_options() -> None:
    require_redis()
    prefix = unique_prefix("url")
    async with open_state(f"{REDIS_URL}?prefix={prefix}&run_ttl_s=60&window=5") as state:
        assert isinstance(state, RedisRoutingState)
        assert state.prefix == prefix
        assert await state.reserve([("run:q", 1.0)], 0.5) is None
        assert 0 < await state.client.pttl(f"{prefix}budget:run:q") <= 60_000
        await state.clear()


async def test_open_state_names_an_unreachable_server() -> None:
    require_redis()  # the extra is installed; the port below has no server
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(StateError, match="cannot reach Redis") as caught:
        async with open_state(url):
            pass
    assert "secret" not in str(caught.value)


def test_cli_commands_share_one_view_through_redis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Separate CLI invocations (fresh routers) continue one round robin and one history."""
    require_redis()
    catalog = tmp_path / "models.yaml"
    catalog.write_text(
        "models:\n"
        + "".join(
            f"  - {{id: {m}, provider: scripted, model: {m}, behavior: {{reply: ok}}}}\n"
            for m in ("a", "b")
        )
    )
    prefix = unique_prefix("cli")
    url = f"{REDIS_URL}?prefix={prefix}"

    def chosen(state: str) -> str:
        code = main(["route", "--models", str(catalog), "--prompt", "hi", "--strategy",
                     "round_robin", "--state", state, "--json"])  # fmt: skip
        assert code == 0
        return str(json.loads(capsys.readouterr().out)["chosen"])

    assert chosen("memory") == chosen("memory"), "each process alone starts over"
    assert {chosen(url), chosen(url)} == {"a", "b"}, "a shared counter moves on"
    code = main(["ask", "--models", str(catalog), "--prompt", "hi", "--state", url, "--json"])
    assert code == 0
    served = json.loads(capsys.readouterr().out)["model"]

    async def recorded() -> int:
        state = RedisRoutingState.from_url(REDIS_URL, prefix=prefix)
        try:
            return (await state.snapshot([served])).stats[served].calls
        finally:
            await state.clear()
            await state.aclose()

    assert asyncio.run(recorded()) == 1


async def test_hold_hashes_live_as_long_as_their_longest_lease(
    made: list[RedisRoutingState],
) -> None:
    state = make(made)
    key = f"{state.prefix}hold:global"
    assert await state.reserve([("global", 9.0)], 1.0, hold="a", lease_s=5.0) is None
    assert 0 < await state.client.pttl(key) <= 5_000
    assert await state.reserve([("global", 9.0)], 1.0, hold="b", lease_s=60.0) is None
    assert 55_000 < await state.client.pttl(key) <= 60_000
    assert await state.reserve([("global", 9.0)], 1.0, hold="c", lease_s=1.0) is None
    assert 55_000 < await state.client.pttl(key) <= 60_000, "a short lease never shortens it"
    assert await state.reserve([("global", 9.0)], 1.0, hold="d") is None
    assert await state.client.pttl(key) == -1, "a hold without lease keeps the hash"
    for hold in "abcd":
        await state.settle(["global"], 1.0, 0.5, hold=hold)
    assert not await state.client.exists(key), "settled holds leave nothing behind"
    assert (await state.snapshot([], budget_keys=["global"])).spent["global"] == 2.0


def _reserve_and_hang(prefix: str, ready: Any) -> None:
    """Child process: route one call under a global budget, then hang before settling."""
    from agentmesh.routing import BudgetLimits, Router, RouteRequest
    from agentmesh.testing import scripted_catalog, scripted_model

    async def main() -> None:
        state = RedisRoutingState.from_url(REDIS_URL, prefix=prefix)
        model = scripted_model("m", fields={"pricing": {"input": 1.0, "output": 1.0}})
        router = Router(
            scripted_catalog(model),
            state=state,
            budgets=BudgetLimits(global_usd=1.0, lease_s=30.0),
        )
        decision = await router.route(RouteRequest(node="n", role="executor", prompt="hi"))
        ready.send(decision.reserved_usd)
        await asyncio.Event().wait()  # the call that never returns: killed here

    asyncio.run(main())


async def test_a_killed_process_reservation_frees_the_budget_after_its_lease(
    made: list[RedisRoutingState],
) -> None:
    import multiprocessing
    import signal
    import time

    require_redis()
    prefix = unique_prefix("kill")
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    child = context.Process(target=_reserve_and_hang, args=(prefix, there))
    child.start()
    try:
        assert here.poll(60), "the child never routed"
        reserved = here.recv()
    finally:
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(10)
    assert child.exitcode == -signal.SIGKILL
    assert reserved > 0
    now = make(made, prefix=prefix, clock=time.time)
    spent = (await now.snapshot([], budget_keys=["global"])).spent["global"]
    assert spent == pytest.approx(reserved), "the dead process's reservation still counts"
    later = make(made, prefix=prefix, clock=lambda: time.time() + 31.0)
    assert (await later.snapshot([], budget_keys=["global"])).spent["global"] == 0.0
    assert await later.reserve([("global", 1.0)], 1.0, hold="next", lease_s=30.0) is None
