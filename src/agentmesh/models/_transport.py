"""The gateway's HTTP transport: httpx's API over a pool that keeps up with many callers.

httpcore 1.0's pool (httpx's default transport) does not keep up with many
concurrent calls to one host. An idle HTTP/1.1 connection it assigns to a
request stays *idle* until that request's task has gone through the
connection's locks (anyio's, which yield to the loop even when free), so every
walk of its queue in the meantime (on each arrival and release) gives the same
connection to other requests too. All but one get ``ConnectionNotAvailable``
and walk again. Profiled at 64 callers on the loopback stub
(``benchmarks/gateway_overhead.py``): 4.7 such retries and 6.7 walks per
request, 42 % of the wall time in the walks (O(queued x connections), plus a
socket poll per idle connection). Callers that keep losing the race make the
p99. Admitting no more requests than connections does not help (measured:
the same calls/s and p99): the requests race for the *idle* ones, not for room.

So the pool must hand each idle connection to one request. Two transports do:

* :class:`GatedTransport`: httpx's own transport and httpcore's connections,
  under a pool of ours (a FIFO gate of permits per origin and in all; an
  admitted request takes an idle connection out of the pool, or opens one).
  Core dependencies only.
* aiohttp's connector (idle connections in a queue per host, each handed to
  one waiter) through ``httpx-aiohttp`` (:func:`aiohttp_transport`), faster
  still: aiohttp parses HTTP in C where httpcore runs h11 in Python.

:func:`pooled_transport` picks aiohttp's when ``httpx-aiohttp`` is installed
(the ``server`` extra brings it), else the gated one. Adapters see an
``httpx.AsyncClient`` with httpx's timeouts, streams and errors either way.
httpcore's pool, under either httpx transport, gets limits that avoid its
other trap: it closes idle connections whenever the *total* exceeds
``max_keepalive_connections``, so the two are equal.
"""

from __future__ import annotations

import asyncio
import urllib.request
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpcore
import httpx
from httpcore import AsyncConnectionInterface

__all__ = ["GatedTransport", "PoolLimits", "aiohttp_transport", "pooled_transport"]


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """How many connections one pooled client keeps.

    Attributes:
        connections: Open connections in all (a call beyond it waits for one).
        per_host: Open connections to one host and port (at most ``connections``).
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
    """Aiohttp's pool behind httpx's API when ``httpx-aiohttp`` is installed, else the gated one.

    Neither reads proxies from the environment: :func:`proxies_in_environment`
    says when the client must not be given one (httpx then mounts its own
    transports for ``HTTP(S)_PROXY`` / ``ALL_PROXY``, minus ``NO_PROXY``).
    """
    limits = limits or PoolLimits()
    try:
        return aiohttp_transport(limits)
    except ImportError:
        return GatedTransport(limits)


def proxies_in_environment() -> bool:
    """A proxy is set in the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``...)."""
    return bool(urllib.request.getproxies())


class GatedTransport(httpx.AsyncHTTPTransport):
    """Httpx's own transport over a pool that gives each idle connection to one request.

    httpcore's connection objects, sent on the way httpx sends them (so errors
    map the same), under a pool of ours: a FIFO gate per origin (``per_host``
    permits) and one for all origins (``connections``) admit the requests, and
    each admitted request takes an idle connection of its origin out of the
    pool (the most recently used one) or opens one. httpcore's pool leaves a
    connection it assigns idle until the request's task runs (see the module
    doc); here a connection is out of the pool from the moment it is taken, so
    no two requests get it and nobody walks anything. A request's connection
    and permits come back when its response is closed (a stream holds its
    connection until then), on any error and on cancellation. The pool
    belongs to an event loop, like its connections; waiting at a gate counts
    against httpx's ``pool`` timeout (``httpx.PoolTimeout``), as waiting in
    httpcore's queue did.

    Args:
        limits: The pool's size (default :class:`PoolLimits`).
        **options: For ``httpx.AsyncHTTPTransport`` (``verify``, ``proxy``...),
            except ``limits``.
    """

    def __init__(self, limits: PoolLimits | None = None, **options: Any) -> None:
        limits = limits or PoolLimits()
        super().__init__(limits=limits.httpx_limits(), **options)
        # httpx sends through ``_pool``; httpcore's pool still makes the connections.
        self._pool = _GatedPool(self._pool, limits)  # type: ignore[assignment]


class _Connections(Protocol):
    """What makes connections: httpcore's pool (``create_connection``), or a test double."""

    def create_connection(self, origin: httpcore.Origin) -> AsyncConnectionInterface: ...


class _GatedPool:
    """httpcore's request interface over the pools of each event loop (see GatedTransport)."""

    def __init__(self, connections: _Connections, limits: PoolLimits) -> None:
        self._connections = connections
        self._limits = limits
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )

    def here(self) -> _LoopPool:
        """The running loop's pool, made on first use."""
        loop = asyncio.get_running_loop()
        pool = self._loops.get(loop)
        if pool is None:
            pool = self._loops[loop] = _LoopPool(self._connections, self._limits)
        return pool

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send ``request`` on a connection of its own; the response gives it back when closed."""
        return await self.here().send(request)

    async def aclose(self) -> None:
        """Close the running loop's idle connections (those of ended loops died with them)."""
        pool = self._loops.pop(asyncio.get_running_loop(), None)
        self._loops.clear()
        if pool is not None:
            await pool.aclose()

    async def __aenter__(self) -> _GatedPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Origin:
    """One origin's gate and idle connections (the most recently used last)."""

    __slots__ = ("gate", "idle")

    def __init__(self, size: int) -> None:
        self.gate = _Gate(size)
        self.idle: deque[AsyncConnectionInterface] = deque()


class _LoopPool:
    """The connections and gates of one event loop."""

    def __init__(self, connections: _Connections, limits: PoolLimits) -> None:
        self._connections = connections
        self._all = _Gate(limits.connections)
        self._per_origin = min(limits.per_host, limits.connections)
        self._max = limits.connections
        self._origins: dict[tuple[bytes, bytes, int], _Origin] = {}
        self._open = 0  # connections made and not yet dropped: idle or in use
        self._closed = False  # once closed, connections given back are closed too

    async def send(self, request: httpcore.Request) -> httpcore.Response:
        """Admit ``request``, send it on a connection taken from the pool, tie both to its body."""
        url = request.url
        key = (url.scheme, url.host, url.port or 0)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(self._per_origin)
        await self._admit(origin, request)
        connection: AsyncConnectionInterface | None = None
        try:
            while True:
                connection = await self._take(origin, request.url.origin)
                try:
                    response = await connection.handle_async_request(request)
                except httpcore.ConnectionNotAvailable:  # it closed under us: another one
                    dead, connection = connection, None
                    await self._drop(dead)
                else:
                    break
        except BaseException:
            await self.give_back(origin, connection)
            raise
        body = _Body(response.stream, self, origin, connection)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=body,
            extensions=response.extensions,
        )

    async def _admit(self, origin: _Origin, request: httpcore.Request) -> None:
        """A permit of ``origin`` and of the pool, waited for in order."""
        if origin.gate.try_acquire():
            if self._all.try_acquire():
                return
            origin.gate.release()
        timeouts = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await origin.gate.acquire()
                try:
                    await self._all.acquire()
                except BaseException:
                    origin.gate.release()
                    raise
        except TimeoutError:
            raise httpcore.PoolTimeout("no connection free in time") from None

    async def _take(self, origin: _Origin, to: httpcore.Origin) -> AsyncConnectionInterface:
        """An idle connection of ``origin``'s, out of the pool, or a new one."""
        while origin.idle:
            connection = origin.idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await self._drop(connection)
        if self._open >= self._max:  # others' idle connections fill the pool: close one
            for other in self._origins.values():
                if other.idle:
                    await self._drop(other.idle.popleft())
                    break
        connection = self._connections.create_connection(to)
        self._open += 1
        return connection

    async def give_back(self, origin: _Origin, connection: AsyncConnectionInterface | None) -> None:
        """Return a request's connection (if reusable) and permits, then close what is not."""
        if connection is not None:
            if not self._closed and connection.is_idle() and not connection.is_closed():
                origin.idle.append(connection)
                connection = None
            else:
                self._open -= 1
        self._all.release()
        origin.gate.release()
        if connection is not None:
            await connection.aclose()

    async def _drop(self, connection: AsyncConnectionInterface) -> None:
        self._open -= 1
        await connection.aclose()

    async def aclose(self) -> None:
        """Close the idle connections, and those in use once given back."""
        self._closed = True
        for origin in self._origins.values():
            while origin.idle:
                await self._drop(origin.idle.pop())


class _Body:
    """A response body that gives its connection and permits back when closed or broken."""

    __slots__ = ("_connection", "_done", "_origin", "_pool", "_stream")

    def __init__(
        self,
        stream: Any,
        pool: _LoopPool,
        origin: _Origin,
        connection: AsyncConnectionInterface,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._origin = origin
        self._connection = connection
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the body (the connection is then idle or closed) and give it back, once."""
        if self._done:
            return
        self._done = True
        try:
            await self._stream.aclose()
        finally:
            await self._pool.give_back(self._origin, self._connection)


class _Gate:
    """A FIFO count of permits: a permit given back goes straight to the oldest waiter."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a permit if one is free (then nobody waits: permits go to waiters first)."""
        if self._free:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a permit, after every earlier waiter."""
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a permit, then cancelled
                self.release()
            raise

    def release(self) -> None:
        """Give a permit back: to the oldest waiter still waiting, else to the count."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


def aiohttp_transport(limits: PoolLimits) -> httpx.AsyncBaseTransport:
    """Aiohttp's pool sized by ``limits``, behind httpx's API.

    Raises:
        ImportError: ``httpx-aiohttp`` (the ``server`` extra) is not installed.
    """
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
