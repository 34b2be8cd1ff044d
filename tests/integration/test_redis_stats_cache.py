"""The Redis state's bounded statistics cache, on a real server."""

from __future__ import annotations

import pytest

from agentmesh.routing import RedisRoutingState
from agentmesh.routing.stores import redis_options
from agentmesh.testing.conformance import FakeClock
from tests.integration.test_redis_state import made, make

__all__ = ["made"]  # the fixture, imported for this module's tests


async def test_statistics_are_reused_only_while_fresh(made: list[RedisRoutingState]) -> None:
    clock = FakeClock()
    reader = make(made, clock=clock, stats_cache_s=5.0)
    writer = make(made, clock=clock, prefix=reader.prefix)  # another process
    await writer.observe("a", latency_ms=100.0, error=None)
    first = await reader.snapshot(["a", "b"])
    assert first.stats["a"].ewma_latency_ms == 100.0
    await writer.observe("a", latency_ms=300.0, error=None)
    clock.now += 4.0
    cached = await reader.snapshot(["a", "b"])
    assert cached.stats["a"].ewma_latency_ms == 100.0, "within 5 s: the cached read"
    clock.now += 1.5
    fresh = await reader.snapshot(["a", "b"])
    assert fresh.stats["a"].ewma_latency_ms == pytest.approx(140.0), "past 5 s: read again"


async def test_own_observations_and_other_models_are_never_stale(
    made: list[RedisRoutingState],
) -> None:
    clock = FakeClock()
    state = make(made, clock=clock, stats_cache_s=60.0)
    await state.observe("a", latency_ms=100.0, error=None)
    await state.snapshot(["a"])
    await state.observe("a", latency_ms=200.0, error=None)
    assert (await state.snapshot(["a"])).stats["a"].ewma_latency_ms == pytest.approx(120.0)
    await state.observe("b", latency_ms=50.0, error=None)
    await state.snapshot(["a"])
    both = await state.snapshot(["a", "b"])
    assert set(both.stats) == {"a", "b"}, "every model of the view, b written since the read"


async def test_the_cache_is_off_by_default_and_set_by_url() -> None:
    _, options = redis_options("redis://127.0.0.1:6379/0?stats_cache_s=0.25")
    assert options == {"stats_cache_s": 0.25}
    with pytest.raises(ValueError, match="stats_cache_s must be >= 0"):
        RedisRoutingState.from_url("redis://127.0.0.1:6379/0", stats_cache_s=-1.0)
