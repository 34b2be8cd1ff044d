"""`RoutingState`: everything the router remembers, behind one async contract.

The router itself is stateless; latency statistics, error counts, circuit
breakers, round-robin counters, budget spending and the routing matrix's
observations all live in a `RoutingState`. In one process that is
:class:`InMemoryRoutingState`; across processes it is a shared store (Redis),
which must pass the same conformance suite (``agentmesh.testing.conformance``).

A decision reads the state once (:meth:`RoutingState.snapshot`), so filters and
strategies run on a consistent view without further I/O.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

from agentmesh._slots import slot_setters

__all__ = [
    "BreakerState",
    "InMemoryRoutingState",
    "ModelStats",
    "QualityCell",
    "RoutingState",
    "Snapshot",
    "StateError",
]


class StateError(ValueError):
    """An unknown, invalid or unreachable routing state, or one that failed mid-call.

    A shared store's own errors (e.g. redis-py's) become this, naming the store
    and the operation, so everything above the state sees one error type.
    """


@dataclass(frozen=True, slots=True)
class ModelStats:
    """Observed behaviour of one model.

    Attributes:
        calls: Calls recorded.
        errors: Failed calls recorded.
        ewma_latency_ms: Exponentially weighted mean latency of successful calls.
        p95_latency_ms: 95th percentile latency over the recent window.
        consecutive_failures: Failures since the last success, within the
            failure window (a streak older than the window starts over).
        streak_started_at: Epoch seconds of the first failure of the current streak.
        last_error: ``kind`` of the last failure.
    """

    calls: int = 0
    errors: int = 0
    ewma_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    consecutive_failures: int = 0
    streak_started_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class BreakerState:
    """A model's circuit breaker as stored (the transitions live in ``resilience``).

    Attributes:
        state: ``closed`` (normal), ``open`` (no calls until ``until``),
            ``half_open`` (``probes`` more trial calls may go through).
        until: Open: when it may be probed. Half-open: when the probes taken
            expire (a probe that never reports back, e.g. a cancelled call,
            must not keep the breaker half-open forever).
        reason: Why it opened, for decisions and traces.
        probes: Trial calls still allowed while half-open.
    """

    state: Literal["closed", "open", "half_open"] = "closed"
    until: float = 0.0
    reason: str = ""
    probes: int = 0

    def blocks(self, now: float) -> bool:
        """True while the breaker forbids calls (open and cooling, or half-open without probes)."""
        if self.state == "open":
            return now < self.until
        return self.state == "half_open" and self.probes <= 0 and now < self.until


@dataclass(frozen=True, slots=True)
class QualityCell:
    """Observed quality of one model on one task: sum of scores and their count."""

    total: float = 0.0
    count: int = 0


@dataclass(frozen=True, slots=True, init=False)
class Snapshot:
    """A consistent view of the state for one decision.

    Attributes:
        stats: Observed behaviour, by model id (absent = never called).
        breakers: Breakers that are not closed, by model id.
        quality: Observed quality for the decision's task, by model id.
        spent: Money spent or reserved, by budget key.
        counter: Value of the decision's counter (round robin), if one was asked for.
        now: Epoch seconds when the snapshot was taken.
    """

    stats: Mapping[str, ModelStats] = field(default_factory=dict)
    breakers: Mapping[str, BreakerState] = field(default_factory=dict)
    quality: Mapping[str, QualityCell] = field(default_factory=dict)
    spent: Mapping[str, float] = field(default_factory=dict)
    counter: int | None = None
    now: float = 0.0

    def __init__(
        self,
        stats: Mapping[str, ModelStats] | None = None,
        breakers: Mapping[str, BreakerState] | None = None,
        quality: Mapping[str, QualityCell] | None = None,
        spent: Mapping[str, float] | None = None,
        counter: int | None = None,
        now: float = 0.0,
    ) -> None:
        """Missing mappings are empty (a new ``dict`` each, as the field defaults say)."""
        set_stats, set_breakers, set_quality, set_spent, set_counter, set_now = _SNAPSHOT_SETTERS
        set_stats(self, {} if stats is None else stats)
        set_breakers(self, {} if breakers is None else breakers)
        set_quality(self, {} if quality is None else quality)
        set_spent(self, {} if spent is None else spent)
        set_counter(self, counter)
        set_now(self, now)


_SNAPSHOT_SETTERS = slot_setters(Snapshot)  # one per decision: see agentmesh._slots


@runtime_checkable
class RoutingState(Protocol):
    """The router's memory. Every method is atomic with respect to the others."""

    async def snapshot(
        self,
        models: Sequence[str],
        *,
        task: str | None = None,
        budget_keys: Sequence[str] = (),
        counter: str | None = None,
    ) -> Snapshot:
        """Read what a decision needs; ``counter`` (if given) is incremented and returned."""
        ...

    async def observe(
        self,
        model: str,
        *,
        latency_ms: float | None,
        error: str | None,
        failure_window_s: float = 60.0,
    ) -> ModelStats:
        """Record one call's latency (successes) or error kind; return the new stats.

        A failure more than ``failure_window_s`` after the first failure of the
        current streak starts a new streak.
        """
        ...

    async def add_quality(self, task: str, model: str, total: float, count: int = 1) -> QualityCell:
        """Add ``count`` observations summing to ``total`` to the (task, model) cell."""
        ...

    async def quality_table(self) -> Mapping[str, Mapping[str, QualityCell]]:
        """Every observed cell, by task then model (to save the routing matrix)."""
        ...

    async def set_breaker(self, model: str, breaker: BreakerState) -> None:
        """Store a model's breaker state."""
        ...

    async def swap_breaker(self, model: str, expected: BreakerState, new: BreakerState) -> bool:
        """Store ``new`` only if the current breaker equals ``expected`` (compare and set).

        A model without a stored breaker is ``BreakerState()`` (closed).
        """
        ...

    async def reserve(
        self,
        limits: Sequence[tuple[str, float]],
        amount: float,
        *,
        hold: str | None = None,
        lease_s: float | None = None,
    ) -> str | None:
        """Add ``amount`` to every key, all or none, if each stays within its limit.

        With ``hold`` (an id unique to this reservation) the amount is *held*:
        it counts as spent until :meth:`settle` is called with the same ``hold``,
        or until ``lease_s`` seconds have passed (``None``: no expiry), so a
        process that dies between reserving and settling frees the money by
        itself. Without ``hold`` the amount is added to the keys' spending.

        Returns ``None`` on success, else the first key whose limit would be exceeded.
        """
        ...

    async def settle(
        self, keys: Sequence[str], reserved: float, actual: float, *, hold: str | None = None
    ) -> None:
        """Replace a reservation by the actual cost on every key.

        With ``hold``: release that hold (if its lease has not run out) and add
        ``actual``; ``reserved`` is not read. Without: subtract ``reserved`` and
        add ``actual`` (never below zero), e.g. ``reserved=0`` to add a cost.
        Settle each hold once.
        """
        ...

    async def forget_budgets(self, keys: Sequence[str]) -> None:
        """Drop the spending and holds of ``keys`` (a finished run's ``run:{id}``).

        A run's budget is needed only while it runs (a resumed run re-seeds it
        from its checkpoint), so the runner releases it at the run's end; the
        run TTL remains for runs that crashed before releasing.
        """
        ...


class InMemoryRoutingState:
    """`RoutingState` in this process's memory, safe across threads.

    Args:
        ewma_alpha: Weight of the newest latency in the moving average.
        window: Latencies kept per model for the p95.
        clock: Epoch-seconds clock (injectable for tests).
        run_ttl_s: A ``run:{id}`` budget is forgotten this long after its last
            write (as in Redis), so a long-lived process does not keep the
            spending of runs that crashed before releasing it (a finished run
            releases its own: :meth:`forget_budgets`); ``None`` keeps them.
    """

    _SWEEP_EVERY = 1024
    """Budget writes between two sweeps of stale run budgets."""

    def __init__(
        self,
        *,
        ewma_alpha: float = 0.2,
        window: int = 100,
        clock: Callable[[], float] = time.time,
        run_ttl_s: float | None = 7 * 86_400.0,
    ) -> None:
        if not 0 < ewma_alpha <= 1:
            raise ValueError(f"ewma_alpha must be in (0, 1], got {ewma_alpha}")
        if run_ttl_s is not None and not run_ttl_s > 0:
            raise ValueError(f"run_ttl_s must be > 0 (or None), got {run_ttl_s}")
        self._alpha = ewma_alpha
        self._window = window
        self._clock = clock
        self._run_ttl = run_ttl_s
        self._written: dict[str, float] = {}  # run budget key -> last write
        self._writes = 0
        self._lock = threading.Lock()
        self._stats: dict[str, ModelStats] = {}
        self._latencies: dict[str, deque[float]] = {}
        self._breakers: dict[str, BreakerState] = {}
        self._quality: dict[str, dict[str, QualityCell]] = {}
        self._spent: dict[str, float] = {}
        # budget key -> hold id -> (amount, expiry in epoch seconds or None)
        self._holds: dict[str, dict[str, tuple[float, float | None]]] = {}
        self._counters: dict[str, int] = {}

    async def snapshot(
        self,
        models: Sequence[str],
        *,
        task: str | None = None,
        budget_keys: Sequence[str] = (),
        counter: str | None = None,
    ) -> Snapshot:
        """Read what a decision needs in one step."""
        # Values are immutable, so shallow copies (made in C) are a consistent view;
        # entries for models outside ``models`` are harmless extras.
        with self._lock:
            stats = self._stats.copy() if models else {}
            breakers = self._breakers.copy() if self._breakers else {}
            quality = self._quality.get(task, {}).copy() if task is not None else {}
            now = self._clock()
            spent = {k: self._spending(k, now) for k in budget_keys} if budget_keys else {}
            count = None
            if counter is not None:
                count = self._counters.get(counter, 0)
                self._counters[counter] = count + 1
            return Snapshot(stats, breakers, quality, spent, count, now)

    def _touch(self, keys: Iterable[str], now: float) -> None:
        """Note a write to run budgets; now and then forget those idle past the TTL (lock held)."""
        if self._run_ttl is None:
            return
        for key in keys:
            if key.startswith("run:"):
                self._written[key] = now
        self._writes += 1
        if self._writes % self._SWEEP_EVERY:
            return
        stale = [k for k, at in self._written.items() if now - at > self._run_ttl]
        for key in stale:
            del self._written[key]
            self._spent.pop(key, None)
            self._holds.pop(key, None)

    def _spending(self, key: str, now: float) -> float:
        """Settled spending plus live holds of ``key``; expired holds are dropped (lock held)."""
        spent = self._spent.get(key, 0.0)
        holds = self._holds.get(key)
        if holds:
            for hold, (amount, expires) in list(holds.items()):
                if expires is not None and expires <= now:
                    del holds[hold]
                else:
                    spent += amount
            if not holds:
                del self._holds[key]
        return spent

    async def observe(
        self,
        model: str,
        *,
        latency_ms: float | None,
        error: str | None,
        failure_window_s: float = 60.0,
    ) -> ModelStats:
        """Update counts, the failure streak, the latency EWMA and the p95 window."""
        with self._lock:
            old = self._stats.get(model, ModelStats())
            if error is not None:
                now = self._clock()
                started = old.streak_started_at
                fresh = started is None or now - started > failure_window_s
                new = replace(
                    old,
                    calls=old.calls + 1,
                    errors=old.errors + 1,
                    consecutive_failures=1 if fresh else old.consecutive_failures + 1,
                    streak_started_at=now if fresh else started,
                    last_error=error,
                )
            else:
                ewma, p95 = old.ewma_latency_ms, old.p95_latency_ms
                if latency_ms is not None:
                    window = self._latencies.setdefault(model, deque(maxlen=self._window))
                    window.append(latency_ms)
                    ewma = latency_ms if ewma is None else ewma + self._alpha * (latency_ms - ewma)
                    ordered = sorted(window)
                    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
                new = replace(
                    old,
                    calls=old.calls + 1,
                    consecutive_failures=0,
                    streak_started_at=None,
                    ewma_latency_ms=ewma,
                    p95_latency_ms=p95,
                )
            self._stats[model] = new
            return new

    async def add_quality(self, task: str, model: str, total: float, count: int = 1) -> QualityCell:
        """Accumulate quality observations."""
        with self._lock:
            cells = self._quality.setdefault(task, {})
            old = cells.get(model, QualityCell())
            cells[model] = new = QualityCell(old.total + total, old.count + count)
            return new

    async def quality_table(self) -> Mapping[str, Mapping[str, QualityCell]]:
        """A copy of every observed cell."""
        with self._lock:
            return {task: dict(cells) for task, cells in self._quality.items()}

    async def set_breaker(self, model: str, breaker: BreakerState) -> None:
        """Store (or, when closed, forget) a breaker."""
        with self._lock:
            if breaker.state == "closed":
                self._breakers.pop(model, None)
            else:
                self._breakers[model] = breaker

    async def swap_breaker(self, model: str, expected: BreakerState, new: BreakerState) -> bool:
        """Compare and set under the lock."""
        with self._lock:
            if self._breakers.get(model, BreakerState()) != expected:
                return False
            if new.state == "closed":
                self._breakers.pop(model, None)
            else:
                self._breakers[model] = new
            return True

    async def reserve(
        self,
        limits: Sequence[tuple[str, float]],
        amount: float,
        *,
        hold: str | None = None,
        lease_s: float | None = None,
    ) -> str | None:
        """All-or-nothing reservation against every limit (held under ``hold`` if given)."""
        with self._lock:
            now = self._clock()
            for key, limit in limits:
                if self._spending(key, now) + amount > limit + 1e-12:
                    return key
            expires = None if lease_s is None else now + lease_s
            self._touch((key for key, _ in limits), now)
            for key, _ in limits:
                if hold is None:
                    self._spent[key] = self._spent.get(key, 0.0) + amount
                else:
                    self._holds.setdefault(key, {})[hold] = (amount, expires)
            return None

    async def forget_budgets(self, keys: Sequence[str]) -> None:
        """Forget the keys' spending, holds and last-write times."""
        with self._lock:
            for key in keys:
                self._spent.pop(key, None)
                self._holds.pop(key, None)
                self._written.pop(key, None)

    async def settle(
        self, keys: Sequence[str], reserved: float, actual: float, *, hold: str | None = None
    ) -> None:
        """Swap the reserved amount (or the hold) for the actual cost."""
        with self._lock:
            self._touch(keys, self._clock())
            for key in keys:
                if hold is None:
                    self._spent[key] = max(0.0, self._spent.get(key, 0.0) - reserved + actual)
                    continue
                holds = self._holds.get(key)
                if holds is not None and holds.pop(hold, None) is not None and not holds:
                    del self._holds[key]
                self._spent[key] = self._spent.get(key, 0.0) + actual
