"""The gateway's HTTP clients across event loops, against a loopback server.

Each event loop gets its own pooled client (connections cannot outlive or
change loops), so one gateway serves ``asyncio.run`` twice, sync calls then
async ones, and any mix of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agentmesh.integrations import RoutedChatModel
from agentmesh.models import Catalog, Gateway, ModelRequest, ModelSpec
from agentmesh.resilience import ResilientCaller
from agentmesh.routing import Router
from agentmesh.testing.fault_server import FaultPlan, FaultServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        # Answers after 50 ms, as a model does: the client then waits on its socket,
        # which is where a connection opened on another loop fails.
        running.plan("loops", FaultPlan(reply="pong", delay_s=0.05))
        yield running


def catalog(server: FaultServer) -> Catalog:
    spec = {
        "id": "loops",
        "provider": "openai",
        "model": "loops",
        "base_url": server.base_url("loops"),
        "tier": 1,
        "pricing": {"input": 1.0, "output": 1.0},
        "timeout_s": 10.0,
    }
    return Catalog([ModelSpec.model_validate(spec)])


async def ask(gateway: Gateway) -> str:
    return (await gateway.invoke("loops", ModelRequest.of("hi"))).text


def test_one_gateway_serves_asyncio_run_twice(server: FaultServer) -> None:
    gateway = Gateway(catalog(server), environ={})
    assert asyncio.run(ask(gateway)) == "pong"
    assert asyncio.run(ask(gateway)) == "pong", "not 'Event loop is closed'"
    assert asyncio.run(ask(gateway)) == "pong"


def test_sync_invoke_then_asyncio_run_ainvoke_through_a_routed_chat_model(
    server: FaultServer,
) -> None:
    cat = catalog(server)
    model = RoutedChatModel(caller=ResilientCaller(Router(cat), Gateway(cat, environ={})))
    try:
        assert model.invoke("hi").content == "pong"
        assert asyncio.run(model.ainvoke("hi")).content == "pong", "not 'bound to another loop'"
        assert model.invoke("hi").content == "pong", "the sync loop's client still works"
        assert asyncio.run(model.ainvoke("hi")).content == "pong"
    finally:
        model.close()


def test_a_mix_of_loops_sync_calls_and_aclose_on_one_gateway(server: FaultServer) -> None:
    gateway = Gateway(catalog(server), environ={})
    assert asyncio.run(ask(gateway)) == "pong"
    assert asyncio.run(ask(gateway)) == "pong"

    loop = asyncio.new_event_loop()  # a loop closed without shutting down its generators
    try:
        assert loop.run_until_complete(ask(gateway)) == "pong"
    finally:
        loop.close()
    assert asyncio.run(ask(gateway)) == "pong"

    async def then_close() -> str:
        try:
            return await ask(gateway)
        finally:
            await gateway.aclose()

    assert asyncio.run(then_close()) == "pong"
    assert asyncio.run(ask(gateway)) == "pong", "usable again after aclose"
