"""Helpers of ``faults.py``: the fault server in its own process, and a loopback-only guard.

:class:`RemoteFaultServer` runs agentmesh's :class:`~agentmesh.testing.fault_server.FaultServer`
in a child Python process (this file run as a script), so that the server does not
compete with the measured client for the GIL: on one interpreter every answer would
wait for a thread switch (5 ms switch interval), which inflates tail latency of every
arm alike and hides what the client does. The parent drives the child with JSON
lines on its stdin: swap an endpoint's :class:`FaultPlan` (returning the child's wall
clock at the swap, the *fault start* of the timings), and read the counters and a
timeline of every request the child answered (arrival time, endpoint, fault or not).

The timeline comes from a subclass that wraps ``FaultServer._decide`` (the one place
where the server decides, under its lock, whether a request gets the fault); it only
records, it changes no behaviour.

:class:`LoopbackGuard` makes sure nothing in the benchmark process (LiteLLM included)
reaches anything but 127.0.0.1: every other connect or DNS lookup is refused and
recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentmesh.testing.fault_server import FaultPlan, FaultServer

__all__ = ["LoopbackGuard", "RemoteFaultServer", "ServerSnapshot", "TimelineEntry"]

_SCRIPT = str(Path(__file__).resolve())
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_PIPE_LIMIT = 64 * 1024 * 1024
"""Longest reply line read from the child (a timeline of a few thousand requests)."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One request the fault server answered.

    Attributes:
        at: Child wall clock (epoch seconds) when the server decided how to answer.
        endpoint: The endpoint name (first path segment).
        faulty: Whether the request got the plan's fault.
    """

    at: float
    endpoint: str
    faulty: bool


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """The fault server's counters at one moment.

    Attributes:
        requests: Requests received, by endpoint.
        faults: Faults injected, by endpoint.
        connections: TCP connections accepted since the server started.
    """

    requests: dict[str, int]
    faults: dict[str, int]
    connections: int


class _TimedFaultServer(FaultServer):
    """A :class:`FaultServer` that also records when each request was decided."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline: list[tuple[float, str, bool]] = []

    def _decide(self, name: str) -> tuple[FaultPlan, bool]:
        plan, faulty = super()._decide(name)
        self.timeline.append((time.time(), name, faulty))
        return plan, faulty


def _child_main() -> int:
    """Serve until stdin closes, answering one JSON command per line."""
    with _TimedFaultServer() as server:
        sys.stdout.write(json.dumps({"port": server.port}) + "\n")
        sys.stdout.flush()
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            if op == "plan":
                server.plan(command["name"], FaultPlan(**command["plan"]))
                reply: dict[str, Any] = {"at": time.time()}
            elif op == "stats":
                prefix = command.get("prefix", "")
                requests, faults = dict(server.requests), dict(server.faults)
                reply = {
                    "requests": {k: v for k, v in requests.items() if k.startswith(prefix)},
                    "faults": {k: v for k, v in faults.items() if k.startswith(prefix)},
                    "connections": server.connections,
                }
            elif op == "timeline":
                prefix = command["prefix"]
                taken, server.timeline = server.timeline, []
                reply = {"timeline": [e for e in taken if e[1].startswith(prefix)]}
            else:
                reply = {"error": f"unknown op {op!r}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
        # Stopping cancels the handlers of connections clients left open; on Python 3.11
        # asyncio logs each as "Exception in callback ... CancelledError". Not news here.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    return 0


class RemoteFaultServer:
    """A :class:`FaultServer` in a child process, driven over its stdin/stdout.

    Create it with :meth:`start` inside the running event loop; :meth:`close` it.

    Attributes:
        port: The loopback port the child's server listens on.
    """

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self._process = process
        self._lock = asyncio.Lock()
        self.port = port

    @classmethod
    async def start(cls) -> RemoteFaultServer:
        """Start the child and wait until its server listens.

        Raises:
            RuntimeError: The child exited before reporting its port.
        """
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            _SCRIPT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_PIPE_LIMIT,
        )
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            await process.wait()
            raise RuntimeError("the fault server process exited before it reported its port")
        return cls(process, int(json.loads(line)["port"]))

    def base_url(self, name: str) -> str:
        """The ``base_url`` (``http://127.0.0.1:PORT/NAME/v1``) of endpoint ``name``."""
        return f"http://127.0.0.1:{self.port}/{name}/v1"

    async def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        assert process.stdin is not None
        assert process.stdout is not None
        async with self._lock:
            process.stdin.write((json.dumps(command) + "\n").encode())
            await process.stdin.drain()
            line = await process.stdout.readline()
        if not line:
            raise RuntimeError("the fault server process went away")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"fault server: {reply['error']}")
        return reply

    async def plan(self, name: str, plan: FaultPlan) -> float:
        """Set (or swap) endpoint ``name``'s plan; the child's wall clock at the swap."""
        reply = await self._ask({"op": "plan", "name": name, "plan": dataclasses.asdict(plan)})
        return float(reply["at"])

    async def stats(self, prefix: str = "") -> ServerSnapshot:
        """Counters of the endpoints whose names start with ``prefix``."""
        reply = await self._ask({"op": "stats", "prefix": prefix})
        return ServerSnapshot(reply["requests"], reply["faults"], int(reply["connections"]))

    async def take_timeline(self, prefix: str) -> list[TimelineEntry]:
        """The requests of endpoints named ``prefix...`` since the last call (then forgotten)."""
        reply = await self._ask({"op": "timeline", "prefix": prefix})
        return [TimelineEntry(float(a), str(n), bool(f)) for a, n, f in reply["timeline"]]

    async def close(self) -> None:
        """Close the child's stdin (it then stops) and wait for it; kill it if it hangs."""
        process = self._process
        if process.returncode is not None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass(slots=True)
class LoopbackGuard:
    """Refuses, and records, every connect or DNS lookup of this process beyond loopback.

    Python-level wrappers on ``socket`` (asyncio, httpx, aiohttp and so LiteLLM all
    go through them). Connections to 127.0.0.1/::1 and lookups of loopback names
    pass; anything else raises ``OSError`` and lands in :attr:`attempts`.

    Attributes:
        attempts: The refused operations, e.g. ``getaddrinfo('example.com', 443)``.
    """

    attempts: list[str] = field(default_factory=list)

    def install(self) -> None:
        """Patch ``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo``."""
        attempts = self.attempts
        inet = (socket.AF_INET, socket.AF_INET6)
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex
        original_getaddrinfo = socket.getaddrinfo

        def refuse(what: str, *args: Any) -> OSError:
            attempts.append(f"{what}{args!r}"[:200])
            return OSError(f"network access blocked by benchmarks/faults.py: {what}{args!r}")

        def loopback(address: Any) -> bool:
            return isinstance(address, tuple) and str(address[0]) in LOOPBACK_HOSTS

        def connect(sock: socket.socket, address: Any) -> None:
            if sock.family in inet and not loopback(address):
                raise refuse("connect", address)
            original_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            if sock.family in inet and not loopback(address):
                raise refuse("connect_ex", address)
            return original_connect_ex(sock, address)

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            if name not in LOOPBACK_HOSTS:
                raise refuse("getaddrinfo", host, port)
            return original_getaddrinfo(host, port, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = getaddrinfo


if __name__ == "__main__":
    sys.exit(_child_main())
