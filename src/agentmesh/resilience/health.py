"""Health probes: a cheap periodic call per opted-in catalog entry, feeding its circuit breaker.

A catalog entry's ``health: {interval_s: 30, prompt: ping}`` makes a
:class:`HealthProber` send that one-token request to the model every
``interval_s`` seconds, beside user traffic, through the same gateway and the
same breaker transitions as the resilient caller:

- a failing probe counts as a failure of the model (its streak in the routing
  state), so a dead model's breaker opens before users meet it;
- once an open breaker has cooled down, the probe takes the half-open permit,
  so a recovered model closes its breaker without waiting for a user's call;
- a probe's latency is not recorded (a one-token ping would flatter the
  model's latency statistics); its success does end a failure streak.

Each probe is traced as ``health {model}`` (``agentmesh.health.ok``) with its
``chat`` span inside. Long-running processes start one prober
(``async with HealthProber(caller):``); a CLI command making one call needs none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from agentmesh.models.errors import ModelError
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest
from agentmesh.resilience.background import BackgroundLoop
from agentmesh.resilience.caller import ResilientCaller
from agentmesh.tracing.controls import HEALTH_OK, health_span

__all__ = ["HealthProber"]


class HealthProber(BackgroundLoop):
    """Probes every catalog entry with ``health:`` on its own interval; share one per process.

    Args:
        caller: The caller whose gateway, router state and breaker the probes use.
        clock: Monotonic seconds (tests inject one).
        sleep: How to wait between rounds (tests inject one).
    """

    def __init__(
        self,
        caller: ResilientCaller,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.caller = caller
        self._clock = clock
        self._sleep = sleep
        self._due: dict[str, float] = {}

    def _probed(self) -> list[ModelSpec]:
        # Read each round: a reloaded catalog's entries are probed from then on.
        return [s for s in self.caller.router.catalog.specs if s.health is not None]

    async def probe(self, spec: ModelSpec) -> bool:
        """Probe ``spec`` once, feeding its breaker; whether it answered.

        An open breaker that has not cooled down is left alone (``False``).
        """
        caller, model = self.caller, spec.id
        breaker = caller.breaker
        admission = await breaker.admit(model)
        if not admission.allowed:
            return False
        assert spec.health is not None
        request = ModelRequest.of(
            spec.health.prompt,
            max_tokens=1,
            timeout=min(spec.timeout_s, spec.health.interval_s),
        )
        window = caller.resilience.breaker.window_s
        state = caller.router.state
        with health_span(model) as scope:
            try:
                await caller.gateway.invoke(model, request, attributes={"agentmesh.health": True})
            except ModelError as error:
                scope.set(HEALTH_OK, False)
                stats = await state.observe(
                    model, latency_ms=None, error=error.kind, failure_window_s=window
                )
                await breaker.on_failure(
                    model,
                    stats,
                    error.kind,
                    probe=admission.probe,
                    retry_after=getattr(error, "retry_after", None),
                )
                return False
            except BaseException:
                if admission.probe:
                    await asyncio.shield(breaker.reopen(model, "health probe abandoned"))
                raise
            scope.set(HEALTH_OK, True)
        await state.observe(model, latency_ms=None, error=None, failure_window_s=window)
        await breaker.on_success(model, probe=admission.probe)
        return True

    async def tick(self) -> float:
        """Probe every entry that is due; seconds until the next one is."""
        now = self._clock()
        specs = self._probed()
        for spec in specs:
            assert spec.health is not None
            if self._due.get(spec.id, now) <= now:
                self._due[spec.id] = now + spec.health.interval_s
                await self.probe(spec)
        upcoming = [self._due[s.id] for s in specs if s.id in self._due]
        return max(0.0, min(upcoming) - self._clock()) if upcoming else 60.0

    async def run(self) -> None:
        """Probe forever (until cancelled)."""
        while True:
            await self._sleep(await self.tick())
