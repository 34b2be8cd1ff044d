"""A loopback OpenAI-compatible stub server for the benchmarks, in pure stdlib.

It answers ``POST /v1/chat/completions`` with one fixed, small chat completion
(sent with ``Content-Length`` over HTTP/1.1 keep-alive) as fast as asyncio
streams allow, so that what a benchmark measures is the client side. Optional
*reply rules* (``--rules``, :class:`StubServer` ``rules=``) answer a request whose
body contains a given text with another content instead (the first rule that
matches wins; e.g. a JSON plan for a planner's prompt). It counts
every TCP connection it accepts and every request it answers, attributed to the
*arm* named by the ``x-bench-arm`` header of a connection's first request, and
reports the counts as JSON on ``GET /stats``.

Run as a script it serves until its stdin closes (the parent went away), it gets
SIGTERM, or ``--max-seconds`` pass, and prints ``{"port": N}`` on stdout once it
listens. :class:`StubServer` runs it that way in a separate process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["CHAT_COMPLETION", "StubServer", "answer", "completion_responses", "serve"]

CHAT_COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-stub",
    "object": "chat.completion",
    "created": 0,
    "model": "stub",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "ok"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
"""The body of every chat-completion answer."""

_ARM_HEADER = b"x-bench-arm"
_UNTAGGED = "untagged"


def _response(status: str, body: bytes, *, close: bool = False) -> bytes:
    """A whole HTTP/1.1 response with a JSON body."""
    head = (
        f"HTTP/1.1 {status}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        f"connection: {'close' if close else 'keep-alive'}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def _completion(content: str) -> bytes:
    """The whole HTTP response of a chat completion answering ``content``."""
    body = dict(CHAT_COMPLETION)
    body["choices"] = [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    ]
    return _response("200 OK", json.dumps(body, separators=(",", ":")).encode())


_COMPLETION_RESPONSE = _completion("ok")

Rules = tuple[tuple[bytes, bytes], ...]
"""(text a request body contains, the whole HTTP response sent for it), in order."""


def completion_responses(rules: Sequence[tuple[str, str]]) -> Rules:
    """Prepared responses for reply rules ``[(text the body contains, content), ...]``.

    The text is matched as it appears in the JSON body, so it should hold no
    character that JSON escapes (quotes, backslashes, newlines).
    """
    return tuple((needle.encode(), _completion(content)) for needle, content in rules)


def answer(body: bytes, rules: Rules) -> bytes:
    """The whole HTTP response to a chat-completion request with ``body``."""
    for needle, response in rules:
        if needle in body:
            return response
    return _COMPLETION_RESPONSE


class _Counts:
    """Connections accepted and requests answered, per arm."""

    def __init__(self) -> None:
        self.connections: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.accepted = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "accepted_connections": self.accepted,
            "connections": dict(self.connections),
            "requests": dict(self.requests),
        }


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    """Method, target and lower-cased headers of a request head.

    Raises:
        ValueError: The request line is malformed.
    """
    lines = head.split(b"\r\n")
    method, target, _version = lines[0].split(b" ", 2)
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def _handle(
    counts: _Counts, rules: Rules, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one connection until the client closes it."""
    counts.accepted += 1
    arm: str | None = None
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # The client closed the connection between requests.
            try:
                method, target, headers = _parse_head(head[:-4])
                length = int(headers.get(b"content-length", b"0"))
            except ValueError:
                writer.write(_response("400 Bad Request", b'{"error":"bad request"}', close=True))
                return
            body = await reader.readexactly(length) if length else b""
            if arm is None:
                arm = headers.get(_ARM_HEADER, _UNTAGGED.encode()).decode("ascii", "replace")
                counts.connections[arm] += 1
            counts.requests[arm] += 1
            close = headers.get(b"connection", b"").lower() == b"close"
            if method == b"POST" and target == b"/v1/chat/completions":
                writer.write(answer(body, rules) if rules else _COMPLETION_RESPONSE)
            elif method == b"GET" and target == b"/stats":
                body = json.dumps(counts.snapshot()).encode()
                writer.write(_response("200 OK", body, close=close))
            else:
                writer.write(_response("404 Not Found", b'{"error":"not found"}', close=close))
            await writer.drain()
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _stdin_closed() -> None:
    """Return when stdin, if it is a pipe, reaches end of file (the parent is gone)."""
    if not stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        await asyncio.Event().wait()  # Not run by a parent: nothing to watch.
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_seconds: float = 600.0,
    rules: Sequence[tuple[str, str]] = (),
) -> None:
    """Serve until stdin closes, SIGTERM arrives or ``max_seconds`` pass.

    Prints ``{"port": N}`` on stdout once the socket listens.
    """
    counts = _Counts()
    prepared = completion_responses(rules)
    server = await asyncio.start_server(
        lambda r, w: _handle(counts, prepared, r, w), host, port, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": bound}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    watchers = [
        asyncio.create_task(stop.wait()),
        asyncio.create_task(_stdin_closed()),
    ]
    async with server:
        await asyncio.wait(watchers, timeout=max_seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in watchers:
        task.cancel()


class StubServer:
    """Runs :func:`serve` in a separate Python process.

    Use as a context manager; on exit the process is terminated (and killed if
    it does not stop within two seconds).

    Attributes:
        port: The loopback port the server listens on.
        base_url: ``http://127.0.0.1:{port}/v1``.
    """

    def __init__(
        self, *, max_seconds: float = 600.0, rules: Sequence[tuple[str, str]] = ()
    ) -> None:
        self._max_seconds = max_seconds
        self._rules = [list(rule) for rule in rules]
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        """Start the process and wait until it listens.

        Raises:
            RuntimeError: The process exited before reporting its port.
        """
        command = [sys.executable, str(Path(__file__)), "--max-seconds", str(self._max_seconds)]
        if self._rules:
            command += ["--rules", json.dumps(self._rules)]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the stub server exited before it reported its port")
        self.port = int(json.loads(line)["port"])

    def stats(self) -> dict[str, Any]:
        """The server's counts, fetched over a new connection (counted as ``untagged``)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/stats", headers={"Connection": "close"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

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


def main() -> None:
    """Command line: ``python _stub_server.py [--host H] [--port P] [--max-seconds S] [--rules R]``.

    ``--rules`` is JSON: ``[["text the body contains", "content to answer"], ...]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument(
        "--rules", default="[]", help='reply rules as JSON: [["text in the body", "content"], ...]'
    )
    args = parser.parse_args()
    rules = [(str(needle), str(content)) for needle, content in json.loads(args.rules)]
    asyncio.run(serve(args.host, args.port, max_seconds=args.max_seconds, rules=rules))


if __name__ == "__main__":
    main()
