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
