"""GatedTransport's pool over fake connections: order, exclusivity, and no permit ever leaked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpcore
import httpx
import pytest

from agentmesh.models._transport import GatedTransport, PoolLimits, _Gate, _GatedPool, _LoopPool

A = "http://a.test/v1/chat"
B = "http://b.test/v1/chat"


class FakeConnection:
    """An HTTP/1.1 connection double: new, idle, active or closed; one request at a time."""

    def __init__(self, fakes: FakeConnections, origin: httpcore.Origin) -> None:
        self._fakes = fakes
        self.origin = origin
        self.state = "new"
        self.expired = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        await asyncio.sleep(0)  # httpcore's connections yield (anyio's lock) before taking it
        if self.state not in ("new", "idle"):
            self._fakes.shared += 1
            raise httpcore.ConnectionNotAvailable()
        self.state = "active"
        path = request.url.target.decode()
        self._fakes.started.append(path)
        try:
            if "refuse" in path:
                raise httpcore.ConnectError("refused")
            if "hang" in path:
                await self._fakes.go.wait()
        except BaseException:
            self.state = "closed"
            raise
        return httpcore.Response(200, content=FakeBody(self, broken="broken" in path))

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin

    def is_available(self) -> bool:
        return self.state == "idle"

    def has_expired(self) -> bool:
        return self.expired

    def is_idle(self) -> bool:
        return self.state == "idle"

    def is_closed(self) -> bool:
        return self.state == "closed"

    async def aclose(self) -> None:
        self.state = "closed"


class FakeBody:
    """A body of one chunk (or a read error); closing it frees its connection, if read."""

    def __init__(self, connection: FakeConnection, *, broken: bool) -> None:
        self._connection = connection
        self._broken = broken
        self._read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.sleep(0)  # the answer comes over the network
        if self._broken:
            raise httpcore.ReadError("cut short")
        yield b"ok"
        self._read = True

    async def aclose(self) -> None:
        self._connection.state = "idle" if self._read else "closed"


class FakeConnections:
    """Makes fake connections, and counts what was asked of them."""

    def __init__(self) -> None:
        self.made: list[FakeConnection] = []
        self.started: list[str] = []
        self.shared = 0  # a request sent on a connection already in use
        self.go = asyncio.Event()  # lets the "hang" requests answer

    def create_connection(self, origin: httpcore.Origin) -> FakeConnection:
        connection = FakeConnection(self, origin)
        self.made.append(connection)
        return connection

    def open(self) -> list[FakeConnection]:
        return [c for c in self.made if c.state != "closed"]


def gated(limits: PoolLimits) -> tuple[httpx.AsyncClient, FakeConnections, _GatedPool]:
    transport = GatedTransport(limits)
    fakes = FakeConnections()
    pool = transport._pool = _GatedPool(fakes, limits)  # type: ignore[assignment]
    return httpx.AsyncClient(transport=transport), fakes, pool


def assert_all_back(pool: _GatedPool, limits: PoolLimits) -> None:
    """Every permit is free, nobody waits, and the count of open connections is right."""
    here: _LoopPool = pool.here()
    assert here._all._free == limits.connections
    assert not [w for w in here._all._waiters if not w.done()]
    for origin in here._origins.values():
        assert origin.gate._free == min(limits.per_host, limits.connections)
    idle = sum(len(origin.idle) for origin in here._origins.values())
    assert here._open == idle, "a connection counted as open is neither idle nor in use"


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never came to hold")


def waiting(pool: _GatedPool) -> int:
    here = pool.here()
    gates = [here._all, *(origin.gate for origin in here._origins.values())]
    return sum(1 for gate in gates for w in gate._waiters if not w.done())


async def test_requests_beyond_the_connections_wait_in_order_and_never_share_one() -> None:
    limits = PoolLimits(connections=2)
    client, fakes, pool = gated(limits)
    async with client:
        calls = [asyncio.create_task(client.get(f"{A}/hang/{i}")) for i in range(6)]
        await until(lambda: len(fakes.started) == 2 and waiting(pool) == 4)
        assert fakes.started == ["/v1/chat/hang/0", "/v1/chat/hang/1"]
        fakes.go.set()
        answers = await asyncio.gather(*calls)
    assert [a.text for a in answers] == ["ok"] * 6
    assert fakes.started == [f"/v1/chat/hang/{i}" for i in range(6)], "served out of order"
    assert fakes.shared == 0
    assert len(fakes.made) == 2, "the two connections were not reused"
    assert_all_back(pool, limits)


class FakeHttpcorePool(httpcore.AsyncConnectionPool):
    """httpcore's own pool over fake connections."""

    def __init__(self, fakes: FakeConnections, limits: PoolLimits) -> None:
        super().__init__(max_connections=limits.connections)
        self._fakes = fakes

    def create_connection(self, origin: httpcore.Origin) -> FakeConnection:  # type: ignore[override]
        return self._fakes.create_connection(origin)


@pytest.mark.parametrize("pool_of", ["gated", "httpcore"])
async def test_many_callers_never_get_a_connection_already_given_to_another(pool_of: str) -> None:
    limits = PoolLimits(connections=8)
    client, fakes, pool = gated(limits)
    if pool_of == "httpcore":  # the cause of #26: it gives one idle connection to several
        client._transport._pool = FakeHttpcorePool(fakes, limits)  # type: ignore[attr-defined]

    async def caller() -> None:
        for _ in range(4):
            assert (await client.get(A)).text == "ok"

    async with client:
        await asyncio.gather(*(caller() for _ in range(32)))
    assert len(fakes.started) == 32 * 4
    if pool_of == "httpcore":
        assert fakes.shared > 0, "httpcore's pool no longer hands a connection out twice"
    else:
        assert fakes.shared == 0
        assert_all_back(pool, limits)


async def test_a_streamed_response_holds_its_connection_until_it_is_closed() -> None:
    limits = PoolLimits(connections=1)
    client, fakes, pool = gated(limits)
    async with client:
        async with client.stream("GET", f"{A}/stream") as response:
            second = asyncio.create_task(client.get(f"{A}/second"))
            await until(lambda: waiting(pool) == 1)
            assert fakes.started == ["/v1/chat/stream"]
            assert [chunk async for chunk in response.aiter_bytes()] == [b"ok"]
        assert (await second).text == "ok"
    assert len(fakes.made) == 1
    assert_all_back(pool, limits)


async def test_permits_come_back_on_errors_and_broken_connections_are_dropped() -> None:
    limits = PoolLimits(connections=2)
    client, fakes, pool = gated(limits)
    async with client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{A}/refuse")
        with pytest.raises(httpx.ReadError):
            await client.get(f"{A}/broken")
        async with client.stream("GET", f"{A}/unread"):
            pass  # closed before its body was read: the connection cannot be reused
        assert_all_back(pool, limits)
        assert fakes.open() == []
        answers = await asyncio.gather(client.get(A), client.get(A))
    assert [a.text for a in answers] == ["ok", "ok"]
    assert_all_back(pool, limits)


@pytest.mark.parametrize("where", ["at the gate", "in flight"])
async def test_a_cancelled_request_leaks_no_permit(where: str) -> None:
    limits = PoolLimits(connections=1)
    client, fakes, pool = gated(limits)
    async with client:
        first = asyncio.create_task(client.get(f"{A}/hang/first"))
        await until(lambda: len(fakes.started) == 1)
        second = asyncio.create_task(client.get(f"{A}/hang/second"))
        await until(lambda: waiting(pool) == 1)
        if where == "at the gate":
            second.cancel()
        elif where == "in flight":
            first.cancel()
        fakes.go.set()
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert [isinstance(r, asyncio.CancelledError) for r in results] == [
            where == "in flight",
            where != "in flight",
        ]
        assert_all_back(pool, limits)
        assert (await client.get(A)).text == "ok"
    assert fakes.shared == 0
    assert_all_back(pool, limits)


async def test_a_waiter_cancelled_once_handed_a_permit_passes_it_on() -> None:
    gate = _Gate(1)
    await gate.acquire()
    second = asyncio.create_task(gate.acquire())
    third = asyncio.create_task(gate.acquire())
    await until(lambda: len(gate._waiters) == 2)
    gate.release()  # the permit is the second's now, but its task has not run yet
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    await third  # it got the permit the second could not use
    gate.release()
    assert gate._free == 1


async def test_waiting_past_the_pool_timeout_is_a_pool_timeout() -> None:
    limits = PoolLimits(connections=1)
    client, _, pool = gated(limits)
    async with client:
        async with client.stream("GET", f"{A}/held"):
            with pytest.raises(httpx.PoolTimeout):
                await client.get(A, timeout=httpx.Timeout(5.0, pool=0.0))
        assert_all_back(pool, limits)
        assert (await client.get(A)).text == "ok"


async def test_the_per_host_limit_holds_one_origin_back_not_another() -> None:
    limits = PoolLimits(connections=4, per_host=1)
    client, fakes, pool = gated(limits)
    async with client:
        calls = [asyncio.create_task(client.get(url)) for url in (f"{A}/hang", f"{A}/2", B)]
        await until(lambda: len(fakes.started) == 2 and waiting(pool) == 1)
        assert fakes.started == ["/v1/chat/hang", "/v1/chat"], "b.test waited for a.test"
        fakes.go.set()
        await asyncio.gather(*calls)
    assert_all_back(pool, limits)


async def test_an_idle_connection_of_another_origin_makes_room_for_a_new_one() -> None:
    limits = PoolLimits(connections=1)
    client, fakes, pool = gated(limits)
    async with client:
        assert (await client.get(A)).text == "ok"
        assert (await client.get(B)).text == "ok"
        assert [c.origin.host for c in fakes.open()] == [b"b.test"]
    assert_all_back(pool, limits)


async def test_an_expired_idle_connection_is_closed_and_replaced() -> None:
    limits = PoolLimits()
    client, fakes, pool = gated(limits)
    async with client:
        await client.get(A)
        fakes.made[0].expired = True  # keep-alive ran out, or the server closed it
        await client.get(A)
        assert [c.state for c in fakes.made] == ["closed", "idle"]
    assert_all_back(pool, limits)


async def test_closing_the_transport_closes_the_connections_idle_and_in_use() -> None:
    limits = PoolLimits()
    client, fakes, pool = gated(limits)
    async with client.stream("GET", f"{A}/held") as response:
        await client.get(A)  # on a second connection, idle after
        await client.aclose()
        assert [c.state for c in fakes.made] == ["active", "closed"]
        await response.aread()
    assert [c.state for c in fakes.made] == ["closed", "closed"]
    assert_all_back(pool, limits)


def test_each_event_loop_has_its_own_pool() -> None:
    limits = PoolLimits(connections=1)
    transport = GatedTransport(limits)
    fakes = FakeConnections()
    pool = transport._pool = _GatedPool(fakes, limits)  # type: ignore[assignment]
    client = httpx.AsyncClient(transport=transport)

    async def call() -> _LoopPool:
        assert (await client.get(A)).text == "ok"
        return pool.here()

    run: Callable[[], Awaitable[_LoopPool]] = call
    first, second = asyncio.run(run()), asyncio.run(run())
    assert first is not second
    assert len(fakes.made) == 2, "a connection of an ended loop was reused"
