from __future__ import annotations

from collections.abc import Callable

import pytest

from agentmesh.routing import InMemoryRoutingState, RoutingState
from agentmesh.testing.conformance import RoutingStateConformance


class TestInMemoryRoutingState(RoutingStateConformance):
    async def make_state(self, clock: Callable[[], float]) -> RoutingState:
        return InMemoryRoutingState(clock=clock)


def test_bad_ewma_alpha_is_rejected() -> None:
    with pytest.raises(ValueError, match="ewma_alpha"):
        InMemoryRoutingState(ewma_alpha=0)


async def test_window_bounds_the_p95() -> None:
    state = InMemoryRoutingState(window=10)
    for ms in [1000.0] * 10 + [10.0] * 10:
        await state.observe("a", latency_ms=ms, error=None)
    assert (await state.snapshot(["a"])).stats["a"].p95_latency_ms == 10.0


async def test_idle_run_budgets_are_forgotten_after_their_ttl() -> None:
    from agentmesh.testing.conformance import FakeClock

    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock, run_ttl_s=10.0)
    await state.reserve([("run:old", 1.0), ("global", 100.0)], 0.5)
    clock.now += 5.0
    await state.reserve([("run:recent", 1.0)], 0.25)
    clock.now += 6.0  # run:old idle 11 s, run:recent 6 s
    for _ in range(InMemoryRoutingState._SWEEP_EVERY):
        await state.settle(["global"], 0.0, 0.0)
    spent = (await state.snapshot([], budget_keys=["run:old", "run:recent", "global"])).spent
    assert spent == {"run:old": 0.0, "run:recent": 0.25, "global": 0.5}


def test_bad_run_ttl_is_rejected() -> None:
    with pytest.raises(ValueError, match="run_ttl_s"):
        InMemoryRoutingState(run_ttl_s=0)
