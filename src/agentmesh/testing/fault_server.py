"""A loopback OpenAI-compatible server that injects faults, for tests and benchmarks.

It answers ``POST /<name>/v1/chat/completions`` on 127.0.0.1, one
:class:`FaultPlan` per ``<name>``, so each catalog entry can point at its own
misbehaving "provider"::

    with FaultServer() as server:
        server.plan("primary", FaultPlan(mode="error", status=503, fail_rate=0.3, seed=1))
        server.plan("backup", FaultPlan())
        spec_base_url = server.base_url("primary")

Modes: ``ok``, ``error`` (an HTTP status with an OpenAI-style error body),
``rate_limit`` (429 with Retry-After), ``slow`` (answers after ``delay_s``),
``drop`` (closes the connection without answering), ``malformed`` (200 with a
body that is not JSON). ``fail_rate`` (seeded) and ``fail_first`` decide which
requests misbehave; the others answer normally. Plans can be swapped while
the server runs (an outage mid-run). Pure stdlib asyncio, in its own thread;
it only ever binds 127.0.0.1.

Every request is kept in :attr:`FaultServer.log` (endpoint, arrival time on
the server's monotonic clock, body), so tests can check what reached the
"provider": how many calls in any window, that none was lost or doubled,
that nothing redacted was sent. A client that hangs up while its answer is
delayed (a cancelled hedge) is counted in :attr:`FaultServer.abandoned`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

__all__ = ["FaultPlan", "FaultServer", "Received"]

Mode = Literal["ok", "error", "rate_limit", "slow", "drop", "malformed"]


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """How one named endpoint behaves.

    Attributes:
        mode: The fault to inject (``ok`` injects none).
        status: HTTP status for ``error``.
        retry_after: Retry-After header value (seconds) for ``rate_limit``.
        delay_s: Delay before answering, for ``slow`` (and added to every answer).
        fail_rate: Share of requests that get the fault (1.0 = all), seeded.
        fail_first: The first N requests get the fault regardless of ``fail_rate``.
        seed: Seed of the ``fail_rate`` draws.
        reply: Text of normal answers.
        headers: Extra headers of faulty answers (e.g. ``x-ratelimit-reset-requests``).
    """

    mode: Mode = "ok"
    status: int = 500
    retry_after: float | None = 1.0
    delay_s: float = 0.0
    fail_rate: float = 1.0
    fail_first: int = 0
    seed: int = 0
    reply: str = "ok"
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server saw it.

    Attributes:
        endpoint: The endpoint name (first path segment).
        at: Arrival time, ``time.monotonic()`` of the server's process.
        body: The request body, decoded as UTF-8.
    """

    endpoint: str
    at: float
    body: str


def _response(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    reason = {200: "OK", 429: "Too Many Requests"}.get(status, "Error")
    lines = [f"HTTP/1.1 {status} {reason}", f"content-length: {len(body)}"]
    lines.append("content-type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _completion(text: str, model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-fault",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
    ).encode()


class _Endpoint:
    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.random = random.Random(plan.seed)
        self.count = 0

    def faulty(self) -> bool:
        self.count += 1
        plan = self.plan
        if plan.mode == "ok":
            return False
        return self.count <= plan.fail_first or self.random.random() < plan.fail_rate


class FaultServer:
    """The server; use it as a context manager (``with FaultServer() as s``).

    Attributes:
        requests: Requests received, by endpoint name.
        faults: Faults injected, by endpoint name.
        connections: TCP connections accepted.
        log: Every request received, in arrival order.
        abandoned: Delayed answers whose client had hung up, by endpoint name.
    """

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.abandoned: Counter[str] = Counter()
        self.log: list[Received] = []
        self.connections = 0

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._port

    def base_url(self, name: str) -> str:
        """The ``base_url`` for a catalog entry served by endpoint ``name``."""
        return f"http://127.0.0.1:{self._port}/{name}/v1"

    def plan(self, name: str, plan: FaultPlan) -> None:
        """Set (or replace, while running) the behaviour of endpoint ``name``."""
        with self._lock:
            self._endpoints[name] = _Endpoint(plan)

    def _decide(self, name: str, body: bytes) -> tuple[FaultPlan, bool]:
        with self._lock:
            self.log.append(Received(name, time.monotonic(), body.decode("utf-8", "replace")))
            endpoint = self._endpoints.get(name)
            if endpoint is None:
                return FaultPlan(mode="error", status=404, fail_rate=1.0), True
            faulty = endpoint.faulty()
            self.requests[name] += 1
            if faulty:
                self.faults[name] += 1
            return endpoint.plan, faulty

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
                length = 0
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    if key.strip().lower() == "content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                name = path.strip("/").split("/")[0]
                plan, faulty = self._decide(name, body)
                if plan.delay_s and (faulty or plan.mode != "slow"):
                    await asyncio.sleep(plan.delay_s)
                    if reader.at_eof():  # the client hung up while waiting (a cancelled call)
                        with self._lock:
                            self.abandoned[name] += 1
                        return
                if faulty and plan.mode == "drop":
                    writer.transport.abort()
                    return
                writer.write(self._answer(plan, faulty, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    def _answer(plan: FaultPlan, faulty: bool, body: bytes) -> bytes:
        try:
            model = str(json.loads(body or b"{}").get("model", "fault"))
        except ValueError:
            model = "fault"
        if not faulty or plan.mode in ("ok", "slow"):
            return _response(200, _completion(plan.reply, model))
        if plan.mode == "malformed":
            return _response(200, b'{"choices": [ this is not json')
        if plan.mode == "rate_limit":
            headers = {} if plan.retry_after is None else {"retry-after": f"{plan.retry_after:g}"}
            headers.update(plan.headers or {})
            error = {"error": {"message": "Rate limit reached", "type": "rate_limit"}}
            return _response(429, json.dumps(error).encode(), headers)
        error = {"error": {"message": f"injected fault {plan.status}", "type": "server_error"}}
        return _response(plan.status, json.dumps(error).encode(), plan.headers)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port)
            self._port = self._server.sockets[0].getsockname()[1]

        loop.run_until_complete(start())
        self._ready.set()
        loop.run_forever()
        loop.close()

    def start(self) -> FaultServer:
        """Start serving in a background thread; returns once the port is bound."""
        self._thread = threading.Thread(target=self._serve, name="fault-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("fault server did not start within 10 s")
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            # Abort idle keep-alive connections: their handlers then end normally
            # (cancelling them mid-read makes asyncio log every one).
            for writer in list(self._writers):
                writer.transport.abort()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not handlers:
                return
            _, sleeping = await asyncio.wait(handlers, timeout=0.1)
            for task in sleeping:  # still inside a ``slow`` delay: not reading, safe to cancel
                task.cancel()
            await asyncio.gather(*sleeping, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
