"""Conformance suite for :class:`~agentmesh.routing.RoutingState` implementations.

Every implementation (in memory, Redis, ...) must pass the same behaviour
checks. Subclass :class:`RoutingStateConformance` in a test module (its name
must start with ``Test``) and implement :meth:`make_state`; pytest (with
pytest-asyncio in auto mode) collects the inherited ``test_*`` methods::

    class TestInMemoryState(RoutingStateConformance):
        async def make_state(self, clock):
            return InMemoryRoutingState(clock=clock)

The suite uses plain ``assert`` and no pytest import, so it ships with the library.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable

from agentmesh.routing.state import BreakerState, RoutingState

__all__ = ["FakeClock", "RoutingStateConformance"]


class FakeClock:
    """A settable epoch-seconds clock."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        """The current time."""
        return self.now


class RoutingStateConformance(ABC):
    """Behaviour every `RoutingState` must show."""

    @abstractmethod
    async def make_state(self, clock: Callable[[], float]) -> RoutingState:
        """A fresh, empty state using ``clock`` for ``Snapshot.now`` and breaker times."""

    async def _state(self) -> tuple[RoutingState, FakeClock]:
        clock = FakeClock()
        return await self.make_state(clock), clock

    async def test_is_a_routing_state(self) -> None:
        """Implements the `RoutingState` protocol."""
        state, _ = await self._state()
        assert isinstance(state, RoutingState)

    async def test_empty_snapshot(self) -> None:
        """A fresh state knows nothing, spends nothing and reports the clock's time."""
        state, clock = await self._state()
        snap = await state.snapshot(["a", "b"], task="math", budget_keys=["global"])
        assert dict(snap.stats) == {}
        assert dict(snap.breakers) == {}
        assert dict(snap.quality) == {}
        assert dict(snap.spent) == {"global": 0.0}
        assert snap.counter is None
        assert snap.now == clock.now

    async def test_observe_counts_calls_errors_and_streaks(self) -> None:
        """Calls, errors and failure streaks are counted; a success ends a streak."""
        state, _ = await self._state()
        await state.observe("a", latency_ms=100.0, error=None)
        await state.observe("a", latency_ms=None, error="timeout")
        stats = await state.observe("a", latency_ms=None, error="rate_limited")
        assert (stats.calls, stats.errors, stats.consecutive_failures) == (3, 2, 2)
        assert stats.last_error == "rate_limited"
        stats = await state.observe("a", latency_ms=120.0, error=None)
        assert stats.consecutive_failures == 0
        snap = await state.snapshot(["a", "b"])
        assert snap.stats["a"].calls == 4
        assert "b" not in snap.stats

    async def test_latency_ewma_and_p95(self) -> None:
        """The EWMA moves toward new latencies; p95 is nearest-rank over the window."""
        state, _ = await self._state()
        first = await state.observe("a", latency_ms=100.0, error=None)
        assert first.ewma_latency_ms == 100.0
        second = await state.observe("a", latency_ms=200.0, error=None)
        assert second.ewma_latency_ms is not None
        assert 100.0 < second.ewma_latency_ms < 200.0
        for ms in range(1, 101):
            await state.observe("b", latency_ms=float(ms), error=None)
        p95 = (await state.snapshot(["b"])).stats["b"].p95_latency_ms
        assert p95 is not None
        assert 95.0 <= p95 <= 96.0

    async def test_failures_do_not_move_latency(self) -> None:
        """Failed calls leave latency statistics unchanged."""
        state, _ = await self._state()
        await state.observe("a", latency_ms=50.0, error=None)
        stats = await state.observe("a", latency_ms=None, error="unavailable")
        assert stats.ewma_latency_ms == 50.0

    async def test_quality_cells_accumulate_per_task(self) -> None:
        """Quality totals and counts accumulate per (task, model)."""
        state, _ = await self._state()
        await state.add_quality("math", "a", 0.5)
        cell = await state.add_quality("math", "a", 1.0)
        assert (cell.total, cell.count) == (1.5, 2)
        await state.add_quality("code", "a", 7.0, 10)
        snap = await state.snapshot(["a"], task="math")
        assert (snap.quality["a"].total, snap.quality["a"].count) == (1.5, 2)
        table = await state.quality_table()
        assert table["code"]["a"].count == 10
        assert dict((await state.snapshot(["a"], task="poetry")).quality) == {}

    async def test_counter_increments_once_per_snapshot_even_concurrently(self) -> None:
        """Each snapshot with a counter reads a distinct value, even concurrently."""
        state, _ = await self._state()
        snaps = await asyncio.gather(*(state.snapshot(["a"], counter="rr") for _ in range(50)))
        assert sorted(s.counter for s in snaps if s.counter is not None) == list(range(50))
        other = await state.snapshot(["a"], counter="other")
        assert other.counter == 0

    async def test_breakers_are_stored_and_closed_ones_forgotten(self) -> None:
        """Open breakers are returned as stored; closed ones are dropped."""
        state, clock = await self._state()
        opened = BreakerState("open", until=clock.now + 30, reason="5 failures")
        await state.set_breaker("a", opened)
        snap = await state.snapshot(["a", "b"])
        assert snap.breakers["a"] == opened
        assert snap.breakers["a"].blocks(snap.now)
        clock.now += 31
        assert not (await state.snapshot(["a"])).breakers["a"].blocks(clock.now)
        await state.set_breaker("a", BreakerState("closed"))
        assert dict((await state.snapshot(["a"])).breakers) == {}

    async def test_failure_streaks_restart_after_the_window(self) -> None:
        """A failure past the window after a streak's first failure starts a new streak."""
        state, clock = await self._state()
        first = await state.observe("a", latency_ms=None, error="timeout", failure_window_s=10)
        assert (first.consecutive_failures, first.streak_started_at) == (1, clock.now)
        clock.now += 5
        second = await state.observe("a", latency_ms=None, error="timeout", failure_window_s=10)
        assert second.consecutive_failures == 2
        clock.now += 6
        third = await state.observe("a", latency_ms=None, error="timeout", failure_window_s=10)
        assert (third.consecutive_failures, third.streak_started_at) == (1, clock.now)
        ok = await state.observe("a", latency_ms=1.0, error=None)
        assert (ok.consecutive_failures, ok.streak_started_at) == (0, None)

    async def test_swap_breaker_is_compare_and_set(self) -> None:
        """Only the caller that saw the current breaker may replace it."""
        state, clock = await self._state()
        closed = BreakerState()
        opened = BreakerState("open", until=clock.now + 10, reason="x")
        assert await state.swap_breaker("a", closed, opened)
        assert not await state.swap_breaker("a", closed, opened)
        probing = BreakerState("half_open", until=opened.until, reason="x", probes=1)
        assert await state.swap_breaker("a", opened, probing)
        taken = BreakerState("half_open", until=opened.until, reason="x", probes=0)
        results = await asyncio.gather(*(state.swap_breaker("a", probing, taken) for _ in range(5)))
        assert sum(results) == 1, "exactly one probe permit is granted"
        assert (await state.snapshot(["a"])).breakers["a"] == taken
        assert await state.swap_breaker("a", taken, closed)
        assert dict((await state.snapshot(["a"])).breakers) == {}

    async def test_reserve_within_limits_and_refuse_beyond(self) -> None:
        """Reservations succeed within every limit and name the limit they would exceed."""
        state, _ = await self._state()
        assert await state.reserve([("run:1", 1.0), ("global", 10.0)], 0.6) is None
        assert await state.reserve([("run:1", 1.0), ("global", 10.0)], 0.6) == "run:1"
        spent = (await state.snapshot([], budget_keys=["run:1", "global"])).spent
        assert spent == {"run:1": 0.6, "global": 0.6}

    async def test_reserve_is_all_or_nothing(self) -> None:
        """A refused reservation charges no key."""
        state, _ = await self._state()
        assert await state.reserve([("global", 1.0)], 0.9) is None
        assert await state.reserve([("run:2", 5.0), ("global", 1.0)], 0.5) == "global"
        spent = (await state.snapshot([], budget_keys=["run:2", "global"])).spent
        assert spent == {"run:2": 0.0, "global": 0.9}

    async def test_concurrent_reservations_never_overspend(self) -> None:
        """Concurrent reservations never push spending past a limit."""
        state, _ = await self._state()
        results = await asyncio.gather(*(state.reserve([("global", 1.0)], 0.1) for _ in range(40)))
        granted = sum(r is None for r in results)
        assert granted == 10
        spent = (await state.snapshot([], budget_keys=["global"])).spent["global"]
        assert abs(spent - 1.0) < 1e-9

    async def test_forgotten_budgets_start_over_and_others_stay(self) -> None:
        """Forgetting a run's budget drops its spending and holds, and nothing else."""
        state, _ = await self._state()
        limits = [("run:9", 1.0), ("global", 10.0)]
        assert await state.reserve(limits, 0.5) is None
        assert await state.reserve(limits, 0.25, hold="h1", lease_s=60.0) is None
        await state.forget_budgets(["run:9"])
        spent = (await state.snapshot([], budget_keys=["run:9", "global"])).spent
        assert spent == {"run:9": 0.0, "global": 0.75}
        assert await state.reserve([("run:9", 1.0)], 1.0) is None, "the full budget again"
        await state.forget_budgets([])

    async def test_settle_replaces_reservation_by_actual_cost(self) -> None:
        """Settling swaps the reserved amount for the actual cost, never below zero."""
        state, _ = await self._state()
        await state.reserve([("run:3", 1.0), ("global", 1.0)], 0.5)
        await state.settle(["run:3", "global"], 0.5, 0.125)
        spent = (await state.snapshot([], budget_keys=["run:3", "global"])).spent
        assert spent == {"run:3": 0.125, "global": 0.125}
        await state.settle(["run:3"], 0.0, 0.25)
        assert (await state.snapshot([], budget_keys=["run:3"])).spent["run:3"] == 0.375
        await state.settle(["run:3"], 5.0, 0.0)
        assert (await state.snapshot([], budget_keys=["run:3"])).spent["run:3"] == 0.0

    async def test_a_hold_counts_until_settled_then_the_actual_cost_does(self) -> None:
        """A held reservation is spending until settled; settling swaps it for the actual cost."""
        state, _ = await self._state()
        keys = [("run:h", 1.0), ("global", 1.0)]
        assert await state.reserve(keys, 0.75, hold="d-1", lease_s=60.0) is None
        assert await state.reserve(keys, 0.5, hold="d-2", lease_s=60.0) == "run:h"
        spent = (await state.snapshot([], budget_keys=["run:h", "global"])).spent
        assert spent == {"run:h": 0.75, "global": 0.75}
        await state.settle(["run:h", "global"], 0.75, 0.25, hold="d-1")
        spent = (await state.snapshot([], budget_keys=["run:h", "global"])).spent
        assert spent == {"run:h": 0.25, "global": 0.25}
        assert await state.reserve(keys, 0.5, hold="d-2", lease_s=60.0) is None

    async def test_an_unsettled_hold_lapses_after_its_lease(self) -> None:
        """A reservation whose process died (never settled) frees the budget after its lease."""
        state, clock = await self._state()
        assert await state.reserve([("global", 1.0)], 0.5, hold="a", lease_s=10.0) is None
        assert await state.reserve([("global", 1.0)], 0.5, hold="b", lease_s=30.0) is None
        assert await state.reserve([("global", 1.0)], 0.25, hold="c", lease_s=10.0) == "global"
        clock.now += 10.0
        assert (await state.snapshot([], budget_keys=["global"])).spent["global"] == 0.5
        assert await state.reserve([("global", 1.0)], 0.5, hold="c", lease_s=10.0) is None
        clock.now += 20.0
        assert (await state.snapshot([], budget_keys=["global"])).spent["global"] == 0.0

    async def test_settling_a_lapsed_hold_still_charges_the_actual_cost(self) -> None:
        """A call that outlived its lease is still paid for when it settles."""
        state, clock = await self._state()
        assert await state.reserve([("global", 1.0)], 0.5, hold="slow", lease_s=5.0) is None
        clock.now += 6.0
        await state.settle(["global"], 0.5, 0.125, hold="slow")
        assert (await state.snapshot([], budget_keys=["global"])).spent["global"] == 0.125

    async def test_a_hold_without_lease_never_lapses(self) -> None:
        """``lease_s=None`` holds until settled, however long that takes."""
        state, clock = await self._state()
        assert await state.reserve([("global", 1.0)], 0.5, hold="h") is None
        clock.now += 10 * 86_400.0
        assert (await state.snapshot([], budget_keys=["global"])).spent["global"] == 0.5
        await state.settle(["global"], 0.5, 0.5, hold="h")
        assert (await state.snapshot([], budget_keys=["global"])).spent["global"] == 0.5
