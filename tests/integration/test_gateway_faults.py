"""Gateway controls against the loopback fault server: hedging, redaction, health probes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from agentmesh.models import Catalog, Gateway, ModelRequest, ModelSpec
from agentmesh.resilience import Call, ResilientCaller
from agentmesh.routing import BudgetLimits, Policy, Router, RouteRequest
from agentmesh.testing.fault_server import FaultPlan, FaultServer

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _spec(server: FaultServer, name: str, tier: int, **fields: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": name,
            "provider": "openai",
            "model": name,
            "base_url": server.base_url(name),
            "tier": tier,
            "pricing": {"input": 1000.0, "output": 1000.0},
            **fields,
        }
    )


async def _until(condition: object, limit_s: float = 5.0) -> None:
    """Wait for the server to report ``condition()`` (polled), failing after ``limit_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "the server never saw it"
        await asyncio.sleep(0.02)


async def test_a_hedge_closes_the_losers_connection_and_charges_both(server) -> None:
    server.plan("slow", FaultPlan(mode="slow", delay_s=1.5, fail_rate=1.0))
    server.plan("fast", FaultPlan(reply="fast answer"))
    catalog = Catalog([_spec(server, "slow", 1), _spec(server, "fast", 2)])
    policy = Policy.from_mapping({"hedge": {"after_ms": 50, "max_extra": 1}})
    router = Router(catalog, policy=policy, budgets=BudgetLimits(run_usd=1.0))
    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(router, gateway)
        request = RouteRequest(prompt="hello", max_output_tokens=4, run_id="r")
        result = await caller.call(Call(request, ModelRequest.of("hello", max_tokens=4)))
        assert result.response.text == "fast answer"
        assert [(a.model, a.outcome) for a in result.attempts] == [
            ("slow", "cancelled"),
            ("fast", "ok"),
        ]
        # The slow request's connection was closed: its handler finds the client gone.
        await _until(lambda: server.abandoned["slow"] == 1)
    spent = (await router.state.snapshot((), budget_keys=["run:r"])).spent["run:r"]
    assert spent == pytest.approx(result.cost_usd)
    assert result.attempts[0].cost_usd > 0


async def test_planted_values_never_reach_the_servers_request_log(server) -> None:
    planted = [
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "+1 415-555-0142",
        "sk-live-0123456789abcdefXYZ",
    ]
    server.plan("ext", FaultPlan(reply="noted"))
    catalog = Catalog([_spec(server, "ext", 1, redact=True)])
    text = "Refund " + ", ".join(planted) + " please."
    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(Router(catalog), gateway)
        system = f"The customer is {planted[0]}."
        result = await caller.call(
            Call(RouteRequest(prompt=text), ModelRequest.of(text, system=system))
        )
    assert result.response.text == "noted"
    assert len(server.log) == 1
    body = server.log[0].body
    for value in planted:
        assert value not in body
    assert "<EMAIL_1>" in body  # the same address in both messages: one placeholder
    assert "<EMAIL_2>" not in body


async def test_health_probes_open_and_close_the_breaker_of_a_real_endpoint(server) -> None:
    from agentmesh.resilience import HealthProber, ResiliencePolicy

    now = [1000.0]
    server.plan("probed", FaultPlan(mode="error", status=503))
    catalog = Catalog([_spec(server, "probed", 1, health={"interval_s": 5})])
    policy = ResiliencePolicy(breaker={"failure_threshold": 2, "cooldown_s": 10})

    async def breaker() -> str:
        found = (await caller.router.state.snapshot(["probed"])).breakers.get("probed")
        return "closed" if found is None else found.state

    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(Router(catalog), gateway, policy, clock=lambda: now[0])
        prober = HealthProber(caller, clock=lambda: now[0])
        for _ in range(2):
            await prober.tick()
            now[0] += 5
        assert await breaker() == "open"
        server.plan("probed", FaultPlan())
        now[0] += 10
        await prober.tick()
        assert await breaker() == "closed"
    assert server.requests["probed"] == 3
    assert all(json.loads(r.body)["max_tokens"] == 1 for r in server.log)
