"""Circuit-breaker transitions over the shared routing state.

The breaker's *state* lives in :class:`~agentmesh.routing.RoutingState` (so all
processes sharing a store see one breaker per model, and the router's health
filter excludes open models, saying why); this module holds the *transitions*:

- closed -> open: ``failure_threshold`` consecutive failures within ``window_s``;
- open -> half-open: the first call after ``cooldown_s`` takes a probe permit;
- half-open -> closed on a probe's success, -> open again on its failure.

Every transition goes through ``swap_breaker`` (compare and set), so concurrent
callers never both take the last probe permit, and each transition is reported
once to the listeners (events for metrics and traces).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentmesh.resilience.policy import BreakerPolicy
from agentmesh.routing.state import BreakerState, ModelStats, RoutingState

__all__ = ["Admission", "BreakerEvent", "CircuitBreaker"]


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One breaker transition."""

    model: str
    old: str
    new: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a call to a model may go ahead, and whether it is a probe."""

    allowed: bool
    probe: bool = False
    why: str = ""


class CircuitBreaker:
    """Breaker transitions for every model, over one `RoutingState`.

    Args:
        state: Where breakers live (shared with the router).
        policy: Thresholds and timings.
        clock: Epoch-seconds clock (the state's, for consistent times).
        listeners: Called with each :class:`BreakerEvent` (metrics, traces, logs).
    """

    def __init__(
        self,
        state: RoutingState,
        policy: BreakerPolicy,
        clock: Callable[[], float],
        listeners: Sequence[Callable[[BreakerEvent], None]] = (),
    ) -> None:
        self.state = state
        self.policy = policy
        self.clock = clock
        self.listeners = tuple(listeners)

    def _emit(self, model: str, old: BreakerState, new: BreakerState) -> None:
        event = BreakerEvent(model, old.state, new.state, new.reason or old.reason, self.clock())
        for listener in self.listeners:
            listener(event)

    async def _current(self, model: str) -> BreakerState:
        snap = await self.state.snapshot([model])
        return snap.breakers.get(model, BreakerState())

    async def admit(self, model: str) -> Admission:
        """May ``model`` be called now? Takes a probe permit when half-open."""
        for _ in range(8):  # a lost compare-and-set means someone else moved: look again
            current = await self._current(model)
            now = self.clock()
            if current.state == "closed":
                return Admission(True)
            if current.state == "open" and now < current.until:
                return Admission(False, why=f"circuit open ({current.reason})")
            expiry = now + self.policy.cooldown_s
            if current.state == "open" or (current.probes <= 0 and now >= current.until):
                # Cooled down, or the probes taken never reported back: probe (again).
                probing = BreakerState(
                    "half_open",
                    until=expiry,
                    reason=current.reason,
                    probes=self.policy.half_open_probes - 1,
                )
                if await self.state.swap_breaker(model, current, probing):
                    if current.state == "open":
                        self._emit(model, current, probing)
                    return Admission(True, probe=True)
                continue
            if current.probes <= 0:
                return Admission(False, why="circuit half-open, probe in flight")
            taken = BreakerState(
                "half_open", until=expiry, reason=current.reason, probes=current.probes - 1
            )
            if await self.state.swap_breaker(model, current, taken):
                return Admission(True, probe=True)
        return Admission(False, why="circuit busy (contended)")

    async def is_closed(self, model: str) -> bool:
        """Whether ``model``'s breaker is closed (no probe permit is taken)."""
        return (await self._current(model)).state == "closed"

    async def on_success(self, model: str, *, probe: bool) -> None:
        """A call succeeded: if it was a probe, the half-open breaker closes.

        A success of a call admitted before the breaker opened changes nothing:
        only a probe's answer says the model has recovered.
        """
        if not probe:
            return
        current = await self._current(model)
        if current.state == "half_open" and await self.state.swap_breaker(
            model, current, BreakerState()
        ):
            self._emit(model, current, BreakerState(reason="probe succeeded"))

    async def reopen(self, model: str, reason: str, *, retry_after: float | None = None) -> None:
        """Put a half-open breaker back to open (its probe failed or was abandoned)."""
        current = await self._current(model)
        if current.state != "half_open":
            return
        cooldown = max(self.policy.cooldown_s, retry_after or 0.0)
        reopened = BreakerState("open", until=self.clock() + cooldown, reason=reason)
        if await self.state.swap_breaker(model, current, reopened):
            self._emit(model, current, reopened)

    async def on_failure(
        self,
        model: str,
        stats: ModelStats,
        kind: str,
        *,
        probe: bool,
        retry_after: float | None = None,
    ) -> None:
        """A call failed with ``kind``; ``stats`` are the model's stats after recording it.

        Record the failure with ``failure_window_s=policy.window_s`` so the
        streak in ``stats`` is counted over the breaker's window. Only a failed
        probe reopens a half-open breaker (a late failure of a call admitted
        earlier does not restart the cooldown). A provider's Retry-After
        lengthens the cooldown: probing sooner would only be refused again.
        """
        if kind not in self.policy.counts:
            return
        if probe:
            await self.reopen(model, f"probe failed: {kind}", retry_after=retry_after)
            return
        current = await self._current(model)
        threshold = self.policy.failure_threshold
        if current.state == "closed" and stats.consecutive_failures >= threshold:
            cooldown = max(self.policy.cooldown_s, retry_after or 0.0)
            opened = BreakerState(
                "open",
                until=self.clock() + cooldown,
                reason=f"{stats.consecutive_failures} consecutive failures, last {kind}",
            )
            if await self.state.swap_breaker(model, current, opened):
                self._emit(model, current, opened)
