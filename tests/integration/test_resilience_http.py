"""The resilience stack over real HTTP: a loopback server injects faults, the
`openai` adapter talks to it, the ResilientCaller retries and falls back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from agentmesh.models import Catalog, Gateway, ModelRequest, ModelSpec
from agentmesh.resilience import (
    Call,
    CallFailed,
    ResiliencePolicy,
    ResilientCaller,
    RetryPolicy,
)
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing.fault_server import FaultPlan, FaultServer

pytestmark = pytest.mark.integration

FAST = ResiliencePolicy(retry=RetryPolicy(max_attempts=3, base_s=0.01, cap_s=0.05))


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def spec(server: FaultServer, name: str, tier: int, timeout_s: float = 5.0) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": name,
            "provider": "openai",
            "model": name,
            "base_url": server.base_url(name),
            "tier": tier,
            "pricing": {"input": tier, "output": tier},
            "timeout_s": timeout_s,
        }
    )


@pytest.fixture
async def call(server: FaultServer) -> AsyncIterator[object]:
    gateways: list[Gateway] = []

    async def run(primary: FaultPlan, timeout_s: float = 5.0, policy: ResiliencePolicy = FAST):
        tag = f"t{len(gateways)}-{id(primary) % 10_000}"
        server.plan(f"{tag}-p", primary)
        server.plan(f"{tag}-b", FaultPlan(reply="from backup"))
        catalog = Catalog([spec(server, f"{tag}-p", 1, timeout_s), spec(server, f"{tag}-b", 2)])
        gateway = Gateway(catalog, environ={})
        gateways.append(gateway)
        caller = ResilientCaller(Router(catalog), gateway, policy)
        request = ModelRequest.of("hi", timeout=timeout_s)
        return await caller.call(
            Call(RouteRequest(prompt="hi"), request, Policy(strategy="cheapest"))
        ), tag

    yield run
    for gateway in gateways:
        await gateway.aclose()


async def test_429_with_retry_after_is_retried_on_the_same_model(call, server) -> None:
    result, tag = await call(
        FaultPlan(mode="rate_limit", retry_after=0.05, fail_first=1, fail_rate=0)
    )
    assert [(a.model, a.error_type or a.outcome) for a in result.attempts] == [
        (f"{tag}-p", "rate_limited"),
        (f"{tag}-p", "ok"),
    ]
    assert result.attempts[1].waited_s >= 0.05, "Retry-After is a floor on the wait"
    assert server.requests[f"{tag}-b"] == 0


async def test_500s_retry_then_fall_back(call, server) -> None:
    result, tag = await call(FaultPlan(mode="error", status=500))
    kinds = [(a.model, a.error_type or a.outcome) for a in result.attempts]
    assert kinds == [(f"{tag}-p", "unavailable")] * 3 + [(f"{tag}-b", "ok")]
    assert result.response.text == "from backup"
    assert result.attempts[-1].reason == f"fallback after unavailable on {tag}-p"
    assert server.requests[f"{tag}-p"] == 3


async def test_slow_response_past_the_timeout_falls_back(call) -> None:
    result, tag = await call(
        FaultPlan(mode="slow", delay_s=2.0),
        timeout_s=0.3,
        policy=ResiliencePolicy(retry=RetryPolicy(max_attempts=1)),
    )
    assert [(a.model, a.error_type or a.outcome) for a in result.attempts] == [
        (f"{tag}-p", "timeout"),
        (f"{tag}-b", "ok"),
    ]


async def test_dropped_connection_is_unavailable_and_falls_back(call) -> None:
    result, tag = await call(FaultPlan(mode="drop"))
    assert result.attempts[0].error_type == "unavailable"
    assert result.model == f"{tag}-b"


async def test_malformed_json_is_retried(call) -> None:
    result, tag = await call(FaultPlan(mode="malformed", fail_first=1, fail_rate=0))
    assert [a.error_type or a.outcome for a in result.attempts] == ["malformed_response", "ok"]
    assert result.model == f"{tag}-p"


async def test_401_fails_fast_without_fallback(call, server) -> None:
    with pytest.raises(CallFailed) as info:
        await call(FaultPlan(mode="error", status=401))
    assert info.value.kind == "auth_error"
    assert len(info.value.attempts) == 1
