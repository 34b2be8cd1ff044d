"""The gateway's HTTP transport: httpx's API over a pool that keeps up with many callers.

httpcore 1.0's pool (httpx's default transport) does not keep up with many
concurrent calls to one host. Each time a request arrives or a response is
released it walks every queued request against every connection, counts the
idle connections once per idle connection and polls the socket of each one.
Worse, an idle HTTP/1.1 connection it has just given to one request stays
*idle* until that request's task runs, so the next walk gives it to other
queued requests too. All but one of them get ``ConnectionNotAvailable`` and
queue again at the back. Profiled at 64 callers on the loopback stub
(``benchmarks/gateway_overhead.py``): 4.7 such retries and 6.7 walks per
request, 42 % of the wall time in the walk, and ~20 connections for 64 callers
(the reserved idle ones are reused instead of new ones opened). Callers that
keep losing the race make the p99: 408 ms against 138 ms over aiohttp's pool
in the same probe.

aiohttp's connector keeps idle connections in a queue per host and hands each
to one waiter. So when ``httpx-aiohttp`` is installed (the ``server`` extra
brings it), the pooled client sends through it (:func:`pooled_transport`).
Adapters still see an ``httpx.AsyncClient`` with httpx's timeouts, streams and
errors. Without it, or when the environment names a proxy (which httpx's own
transport honours and this one would not), httpx's transport is used. Its
limits then avoid httpcore's other trap: it closes idle connections whenever
the *total* exceeds ``max_keepalive_connections``, so the two are equal.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["PoolLimits", "pooled_transport"]


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """How many connections one pooled client keeps.

    Attributes:
        connections: Open connections in all (a call beyond it waits for one).
        per_host: Open connections to one host and port (aiohttp's pool only;
            httpx's pool has no such limit and uses ``connections``).
        keepalive_s: How long an idle connection is kept.
    """

    connections: int = 256
    per_host: int = 256
    keepalive_s: float = 5.0

    def __post_init__(self) -> None:
        if self.connections < 1 or self.per_host < 1:
            raise ValueError(f"pool limits must be at least 1: {self}")
        if self.keepalive_s < 0:
            raise ValueError(f"keepalive_s must be >= 0: {self}")

    def httpx_limits(self) -> httpx.Limits:
        """Httpx's limits: every open connection may stay alive (see the module doc)."""
        return httpx.Limits(
            max_connections=self.connections,
            max_keepalive_connections=self.connections,
            keepalive_expiry=self.keepalive_s,
        )


def pooled_transport(limits: PoolLimits | None = None) -> httpx.AsyncBaseTransport:
    """Aiohttp's pool behind httpx's API when ``httpx-aiohttp`` is installed, else httpx's."""
    limits = limits or PoolLimits()
    if not urllib.request.getproxies():
        try:
            return _aiohttp_transport(limits)
        except ImportError:
            pass
    return httpx.AsyncHTTPTransport(limits=limits.httpx_limits())


def _aiohttp_transport(limits: PoolLimits) -> httpx.AsyncBaseTransport:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    class _AiohttpTransport(AiohttpTransport):
        """``httpx-aiohttp``'s transport, with connection failures that are not timeouts.

        It maps every ``aiohttp.ClientConnectionError`` (refused, reset, the peer
        closing mid-answer) to ``httpx.ConnectTimeout``, which the gateway would
        report as a ``timeout``; here only real timeouts stay timeouts, the rest
        are ``ConnectError`` / ``ReadError`` (the gateway's ``unavailable``), as
        with httpx's own transport.
        """

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            with _not_timeouts(request, httpx.ConnectError):
                response = await super().handle_async_request(request)
            response.stream = _Stream(response.stream, request)
            return response

    transport = _AiohttpTransport(limits=limits.httpx_limits())

    def session() -> aiohttp.ClientSession:
        """Made on the first request, on the loop that sends it; its limits are ``limits``."""
        connector = aiohttp.TCPConnector(
            limit=limits.connections,
            limit_per_host=limits.per_host,
            keepalive_timeout=limits.keepalive_s,
            ssl=transport.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector)

    transport.client = session
    return transport


@contextmanager
def _not_timeouts(request: httpx.Request, instead: type[httpx.TransportError]) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        if isinstance(exc.__cause__, TimeoutError):
            raise
        raise instead(str(exc) or type(exc.__cause__).__name__, request=request) from exc


class _Stream(httpx.AsyncByteStream):
    """A response body whose connection failures are read errors, not timeouts."""

    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _not_timeouts(self._request, httpx.ReadError):
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        with _not_timeouts(self._request, httpx.ReadError):
            await self._stream.aclose()
