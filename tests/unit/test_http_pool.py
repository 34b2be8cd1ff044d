"""The pooled client's transport and limits: what is chosen, and the sizes it is given."""

from __future__ import annotations

import sys

import httpcore
import httpx
import pytest

from agentmesh.models._http import PoolLimits, default_http_client
from agentmesh.models._transport import GatedTransport, pooled_transport


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)


async def test_the_default_client_sends_over_aiohttps_pool_with_the_limits_set() -> None:
    aiohttp = pytest.importorskip("aiohttp", reason="the server extra brings aiohttp")
    pytest.importorskip("httpx_aiohttp", reason="the server extra brings httpx-aiohttp")
    client = default_http_client(PoolLimits(connections=8, per_host=4, keepalive_s=2.5))
    transport = client._transport
    from httpx_aiohttp import AiohttpTransport

    assert isinstance(transport, AiohttpTransport)
    assert callable(transport.client), "the session is made on the loop of the first request"
    session = transport.get_client()
    try:
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert (connector.limit, connector.limit_per_host) == (8, 4)
        assert connector._keepalive_timeout == 2.5
    finally:
        await session.close()
        await client.aclose()


def test_the_default_limits_keep_every_connection_alive() -> None:
    limits = PoolLimits().httpx_limits()
    # httpcore closes idle connections whenever the total exceeds the keep-alive count.
    assert limits.max_keepalive_connections == limits.max_connections == 256


async def test_httpx_own_transport_gated_without_httpx_aiohttp_with_the_same_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)  # import fails
    transport = pooled_transport(PoolLimits(connections=8, per_host=4))
    assert type(transport) is GatedTransport
    gates = transport._pool.here()
    assert (gates._max, gates._per_origin) == (8, 4)
    connections = transport._pool._connections  # httpcore's pool makes the connections
    assert isinstance(connections, httpcore.AsyncConnectionPool)
    assert (connections._max_connections, connections._max_keepalive_connections) == (8, 8)
    await transport.aclose()


@pytest.mark.parametrize(
    "fields", [{"connections": 0}, {"per_host": 0}, {"keepalive_s": -1.0}], ids=str
)
def test_limits_out_of_range_are_refused_naming_the_field(fields: dict[str, float]) -> None:
    name = next(iter(fields))
    with pytest.raises(ValueError, match=name if name == "keepalive_s" else "at least 1"):
        PoolLimits(**fields)  # type: ignore[arg-type]


def test_a_gateway_takes_a_client_or_a_pool_size_not_both() -> None:
    from agentmesh.models import Catalog, Gateway

    with pytest.raises(ValueError, match=r"either http .* or pool"):
        Gateway(Catalog([]), http=httpx.AsyncClient(), pool=PoolLimits())
