"""The gateway's pooled client against a loopback server, on each transport.

Concurrent calls to one host open at most one connection each and reuse them;
the limits cap what is open; every transport failure maps to the same error
kind over aiohttp's pool, httpx's own gated and httpx's own alone.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Iterator

import httpx
import pytest

from agentmesh.models import Catalog, Gateway, ModelRequest, ModelSpec
from agentmesh.models._http import PoolLimits, default_http_client
from agentmesh.models._transport import GatedTransport
from agentmesh.models.errors import (
    MalformedResponse,
    ModelError,
    RateLimited,
    Timeout,
    Unavailable,
)
from agentmesh.testing import openai_completion
from agentmesh.testing.fault_server import FaultPlan, FaultServer
from tests.integration.conftest import free_port, require

pytestmark = pytest.mark.integration

Factory = Callable[[PoolLimits], httpx.AsyncClient]


def _aiohttp(limits: PoolLimits) -> httpx.AsyncClient:
    from httpx_aiohttp import AiohttpTransport

    client = default_http_client(limits)
    assert isinstance(client._transport, AiohttpTransport)
    return client


def _gated(limits: PoolLimits) -> httpx.AsyncClient:
    transport = GatedTransport(limits)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(120.0, connect=5.0))


def _httpcore(limits: PoolLimits) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(limits=limits.httpx_limits())
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(120.0, connect=5.0))


def _require_aiohttp() -> None:
    require(
        importlib.util.find_spec("httpx_aiohttp") is not None,
        "httpx-aiohttp is not installed (the server extra)",
    )


@pytest.fixture(params=[_aiohttp, _gated, _httpcore], ids=["aiohttp", "gated", "httpcore"])
def factory(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Factory:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    if request.param is _aiohttp:
        _require_aiohttp()
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


def _spec(base_url: str, name: str, timeout_s: float = 10.0) -> ModelSpec:
    return ModelSpec(id=name, provider="openai", model=name, base_url=base_url, timeout_s=timeout_s)


async def _calls(gateway: Gateway, name: str, count: int) -> list[str]:
    answers = await asyncio.gather(
        *(gateway.invoke(name, ModelRequest.of("hi", max_tokens=4)) for _ in range(count))
    )
    return [answer.text for answer in answers]


async def test_concurrent_calls_open_at_most_one_connection_each_and_reuse_them(
    factory: Factory, server: FaultServer
) -> None:
    # Each answer takes 50 ms, so the 16 calls are in flight together.
    server.plan("busy", FaultPlan(reply="pong", delay_s=0.05))
    catalog = Catalog([_spec(server.base_url("busy"), "busy")])
    async with factory(PoolLimits()) as http, Gateway(catalog, http=http) as gateway:
        assert await _calls(gateway, "busy", 16) == ["pong"] * 16
        first = server.connections
        assert 1 <= first <= 16
        assert await _calls(gateway, "busy", 16) == ["pong"] * 16
        assert server.connections <= 16, "the second round did not reuse the first's connections"


async def test_the_limits_cap_the_open_connections_and_every_call_is_served(
    factory: Factory, server: FaultServer
) -> None:
    server.plan("busy", FaultPlan(reply="pong", delay_s=0.02))
    catalog = Catalog([_spec(server.base_url("busy"), "busy")])
    async with (
        factory(PoolLimits(connections=2, per_host=2)) as http,
        Gateway(catalog, http=http) as gateway,
    ):
        assert await _calls(gateway, "busy", 8) == ["pong"] * 8
    assert server.connections <= 2


@pytest.mark.parametrize("make", [_aiohttp, _gated], ids=["aiohttp", "gated"])
async def test_the_per_host_limit(server: FaultServer, make: Factory) -> None:
    if make is _aiohttp:
        _require_aiohttp()
    server.plan("busy", FaultPlan(reply="pong", delay_s=0.02))
    catalog = Catalog([_spec(server.base_url("busy"), "busy")])
    async with make(PoolLimits(per_host=3)) as http, Gateway(catalog, http=http) as gateway:
        assert await _calls(gateway, "busy", 9) == ["pong"] * 9
    assert server.connections <= 3


FAULTS: dict[str, tuple[FaultPlan | None, type[ModelError]]] = {
    "refused": (None, Unavailable),
    "dropped": (FaultPlan(mode="drop"), Unavailable),
    "overloaded": (FaultPlan(mode="error", status=503), Unavailable),
    "limited": (FaultPlan(mode="rate_limit", retry_after=7), RateLimited),
    "broken": (FaultPlan(mode="malformed"), MalformedResponse),
    "slow": (FaultPlan(mode="slow", delay_s=3.0), Timeout),
}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_faults_map_to_the_same_kinds_on_either_transport(
    factory: Factory, server: FaultServer, fault: str
) -> None:
    plan, kind = FAULTS[fault]
    if plan is None:
        base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    else:
        server.plan(fault, plan)
        base_url = server.base_url(fault)
    catalog = Catalog([_spec(base_url, fault, timeout_s=0.5)])
    async with factory(PoolLimits()) as http, Gateway(catalog, http=http) as gateway:
        with pytest.raises(ModelError) as raised:
            await gateway.invoke(fault, ModelRequest.of("hi", max_tokens=4))
    assert type(raised.value) is kind, raised.value
    if kind is RateLimited:
        assert raised.value.retry_after == 7


async def test_a_gateways_own_pool_is_sized_by_pool(server: FaultServer) -> None:
    server.plan("busy", FaultPlan(reply="pong", delay_s=0.02))
    catalog = Catalog([_spec(server.base_url("busy"), "busy")])
    async with Gateway(catalog, pool=PoolLimits(connections=2, per_host=2)) as gateway:
        assert await _calls(gateway, "busy", 8) == ["pong"] * 8
    assert server.connections <= 2


async def test_a_proxy_in_the_environment_carries_the_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``HTTP_PROXY`` is honoured: the call reaches the model through the proxy."""
    seen: list[str] = []
    reply = openai_completion("pong", model="far").content

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        seen.append(lines[0])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(reply)}\r\n\r\n".encode()
            + reply
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    catalog = Catalog([_spec("http://models.example.test/v1", "far")])
    try:
        async with Gateway(catalog) as gateway:
            answer = await gateway.invoke("far", ModelRequest.of("hi", max_tokens=4))
    finally:
        server.close()
        await server.wait_closed()
    assert answer.text == "pong"
    assert seen == ["POST http://models.example.test/v1/chat/completions HTTP/1.1"]
