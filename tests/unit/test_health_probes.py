"""Health probes feeding the circuit breaker (issue: gateway controls, 5)."""

from __future__ import annotations

from typing import Any

from agentmesh.models import Gateway, ModelRequest, ModelResponse
from agentmesh.models.errors import Unavailable
from agentmesh.resilience import ResiliencePolicy, ResilientCaller
from agentmesh.resilience.health import HealthProber
from agentmesh.routing import Router
from agentmesh.testing import scripted_catalog, scripted_model

POLICY = ResiliencePolicy(breaker={"failure_threshold": 2, "cooldown_s": 10})


class Switchable(Gateway):
    """A real gateway over the scripted pool whose model can be switched off."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.down = False
        self.calls = 0

    async def invoke(self, model_id: str, request: ModelRequest, **kw: Any) -> ModelResponse:
        self.calls += 1
        if self.down:
            raise Unavailable("switched off", model_id=model_id)
        return await super().invoke(model_id, request, **kw)


def _setup(**health: Any) -> tuple[HealthProber, Switchable, ResilientCaller, list[float]]:
    now = [1000.0]
    spec = scripted_model("m", fields={"health": {"interval_s": 30, **health}})
    catalog = scripted_catalog(spec, scripted_model("quiet"))
    gateway = Switchable(catalog)
    caller = ResilientCaller(Router(catalog), gateway, POLICY, clock=lambda: now[0])
    return HealthProber(caller, clock=lambda: now[0]), gateway, caller, now


async def _breaker(caller: ResilientCaller) -> str:
    snapshot = await caller.router.state.snapshot(["m"])
    found = snapshot.breakers.get("m")
    return "closed" if found is None else found.state


async def test_a_dead_model_opens_its_breaker_before_any_user_call() -> None:
    prober, gateway, caller, now = _setup()
    gateway.down = True
    assert await prober.tick() == 30  # probed at once, next in one interval
    assert await _breaker(caller) == "closed"  # one failure: below the threshold
    now[0] += 30
    await prober.tick()
    assert await _breaker(caller) == "open"
    assert gateway.calls == 2  # only "m" asked for probes


async def test_a_recovered_model_closes_its_breaker_without_user_traffic() -> None:
    prober, gateway, caller, now = _setup()
    gateway.down = True
    for _ in range(2):
        await prober.tick()
        now[0] += 30
    assert await _breaker(caller) == "open"
    gateway.down = False
    now[0] += 10  # past the cooldown: the probe takes the half-open permit
    await prober.tick()
    assert await _breaker(caller) == "closed"


async def test_probes_follow_each_entrys_interval() -> None:
    prober, gateway, _, now = _setup()
    await prober.tick()
    now[0] += 29
    assert await prober.tick() == 1
    assert gateway.calls == 1
    now[0] += 1
    await prober.tick()
    assert gateway.calls == 2


async def test_a_probe_does_not_flatter_the_latency_statistics() -> None:
    prober, _, caller, _ = _setup()
    await prober.tick()
    stats = (await caller.router.state.snapshot(["m"])).stats.get("m")
    assert stats is None or stats.p95_latency_ms is None
