"""What the HTTP adapters share: status mapping, Retry-After, SSE, transport errors.

It also holds :class:`LoopClients`, the gateway's pooled ``httpx.AsyncClient``
per event loop. Kept private: the public contract is
:class:`~agentmesh.models.client.ModelClient`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, NoReturn

import httpx

from agentmesh._jsontext import loads as json_loads
from agentmesh._redact import credential_values, redact_url
from agentmesh.models._transport import PoolLimits, pooled_transport, proxies_in_environment
from agentmesh.models.client import ModelClient
from agentmesh.models.errors import (
    AuthError,
    BadRequest,
    ContentFiltered,
    ContextOverflow,
    MalformedResponse,
    ModelError,
    RateLimited,
    Timeout,
    Unavailable,
    redact,
)
from agentmesh.models.spec import ModelSpec

__all__ = [
    "HttpModelClient",
    "LoopClients",
    "PoolLimits",
    "default_http_client",
    "error_for_status",
    "parse_retry_after",
    "sse_events",
]

_CONTEXT_MARKERS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long"
    r"|exceeds? the (?:model'?s? )?(?:maximum|context)|input is too long|n_ctx",
    re.IGNORECASE,
)
_FILTER_MARKERS = re.compile(
    r"content[_ ]?filter|content[_ ]policy|content management policy|flagged|safety system",
    re.IGNORECASE,
)
_STATUS_ERRORS: Mapping[int, type[ModelError]] = {
    400: BadRequest,
    401: AuthError,
    403: AuthError,
    404: BadRequest,
    408: Timeout,
    409: Unavailable,
    413: ContextOverflow,
    422: BadRequest,
    429: RateLimited,
    504: Timeout,
}
_MAX_DETAIL = 300


def default_http_client(limits: PoolLimits | None = None) -> httpx.AsyncClient:
    """The pooled client a gateway builds when none is injected.

    Connections are kept alive and reused across calls and adapters, over
    aiohttp's pool when ``httpx-aiohttp`` is installed, else over httpx's own
    transport under agentmesh's pool (see :mod:`agentmesh.models._transport`
    for why); the connect limit is short so
    dead hosts fail fast, the read limit generous because generation is slow.

    With a proxy in the environment the client is httpx's own, sized by the
    same limits: httpx honours ``HTTP(S)_PROXY``, ``ALL_PROXY`` and
    ``NO_PROXY`` only in the transports it makes itself.

    Args:
        limits: The pool's size (default :class:`PoolLimits`: 256 connections).
    """
    timeout = httpx.Timeout(120.0, connect=5.0)
    if proxies_in_environment():
        return httpx.AsyncClient(limits=(limits or PoolLimits()).httpx_limits(), timeout=timeout)
    return httpx.AsyncClient(transport=pooled_transport(limits), timeout=timeout)


class LoopClients:
    """One pooled ``httpx.AsyncClient`` per event loop, made there on first use.

    A connection belongs to the loop that opened it: a client reused on another
    loop fails with "Event loop is closed" (its loop ended) or "bound to a
    different event loop". So each loop gets its own client, and the client is
    closed with its loop: a small async generator registered on the loop closes
    it when the loop shuts its async generators down (``asyncio.run``,
    ``asyncio.Runner`` and pytest's loops do, before closing). :meth:`aclose`
    closes the clients of this loop and of loops running in other threads; an
    idle loop's client is closed when that loop shuts down. Clients of loops
    closed without that step are dropped on the next use (their sockets died
    with the loop).

    Args:
        factory: Builds one client (default :func:`default_http_client`).
    """

    def __init__(self, factory: Callable[[], httpx.AsyncClient] | None = None) -> None:
        self._factory = factory or default_http_client
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._keepers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()  # loops in several threads (a sync caller's) share it

    def __len__(self) -> int:
        """How many clients are open (at most one per loop)."""
        with self._lock:
            return sum(not c.is_closed for c in self._clients.values())

    async def get(self) -> httpx.AsyncClient:
        """The running loop's client, built (and tied to the loop's shutdown) on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is not None and not client.is_closed:
                return client
            dead = [self._forget(o) for o in list(self._clients) if o.is_closed()]
            client = self._factory()
            self._clients[loop] = client
            keeper = self._keeper(loop, client)
            self._keepers[loop] = keeper  # the loop holds its async generators weakly
        for old in dead:
            _finish_dead(old)
        await keeper.asend(None)  # now registered with the loop, parked in its ``try``
        return client

    async def _keeper(
        self, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                if self._clients.get(loop) is client:
                    self._forget(loop)
            if not loop.is_closed():
                await client.aclose()

    def _forget(self, loop: asyncio.AbstractEventLoop) -> AsyncGenerator[None, None] | None:
        """Drop ``loop``'s client and keeper (under the lock); the keeper, if any."""
        self._clients.pop(loop, None)
        return self._keepers.pop(loop, None)

    async def aclose(self) -> None:
        """Close the clients of this loop and of loops running elsewhere.

        A client of an idle loop (neither running nor closed) stays until that
        loop shuts down, the only place it can be closed.
        """
        here = asyncio.get_running_loop()
        with self._lock:
            keepers = list(self._keepers.items())
        for loop, keeper in keepers:
            if loop is here:
                await keeper.aclose()
            elif loop.is_closed():
                with self._lock:
                    self._forget(loop)
                _finish_dead(keeper)
            elif loop.is_running():
                closing = asyncio.run_coroutine_threadsafe(keeper.aclose(), loop)
                with suppress(RuntimeError, httpx.HTTPError):
                    await asyncio.wrap_future(closing)


def _finish_dead(keeper: AsyncGenerator[None, None] | None) -> None:
    """Close the keeper of a closed loop here: its ``finally`` has nothing to await then."""
    if keeper is None:
        return
    closing = keeper.aclose()
    try:
        closing.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - defensive: it suspended after all
        closing.close()


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float | None:
    """``6m0s``, ``1.5s``, ``20ms`` (OpenAI's ``x-ratelimit-reset-*``) or bare seconds."""
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def _ratelimit_reset(headers: Mapping[str, str]) -> float | None:
    """The longest ``x-ratelimit-reset-{requests,tokens}`` of a limit whose remaining is 0."""
    waits = []
    for kind in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{kind}")
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        if reset is not None and (remaining is None or remaining.strip() == "0"):
            seconds = _duration(reset)
            if seconds is not None:
                waits.append(seconds)
    return max(waits) if waits else None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    Without either, the ``x-ratelimit-reset-requests`` / ``-tokens`` of an
    exhausted limit (``x-ratelimit-remaining-*: 0``) say it.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return _ratelimit_reset(headers)
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error_detail(body: str) -> str:
    """The provider's message from an error body, or the body itself, shortened."""
    try:
        data = json_loads(body)
    except ValueError:
        return body.strip()[:_MAX_DETAIL]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("type") or json.dumps(error)
            code = error.get("code") or error.get("type")
            text = str(message) if not code or str(code) in str(message) else f"{code}: {message}"
            return text[:_MAX_DETAIL]
        if isinstance(error, str):
            return error[:_MAX_DETAIL]
    return body.strip()[:_MAX_DETAIL]


def error_for_status(
    status: int,
    body: str,
    headers: Mapping[str, str],
    *,
    spec: ModelSpec,
    secrets: tuple[str | None, ...] = (),
) -> ModelError:
    """Classify an HTTP error response into the taxonomy.

    4xx bodies that speak of the context window become :class:`ContextOverflow`,
    those that speak of content policy :class:`ContentFiltered`; 429 becomes
    :class:`RateLimited` with its Retry-After; other 5xx :class:`Unavailable`.
    """
    # Redact before shortening: a key cut in half by the limit would no longer match.
    detail = _error_detail(redact(body, secrets)) or httpx.codes.get_reason_phrase(status)
    if status == 429:
        return RateLimited(
            detail,
            retry_after=parse_retry_after(headers),
            model_id=spec.id,
            provider=spec.provider.value,
            status_code=status,
        )
    error_type = _STATUS_ERRORS.get(status, Unavailable if status >= 500 else BadRequest)
    if 400 <= status < 500 and status != 408:
        if _CONTEXT_MARKERS.search(detail):
            error_type = ContextOverflow
        elif _FILTER_MARKERS.search(detail):
            error_type = ContentFiltered
    return error_type(detail, model_id=spec.id, provider=spec.provider.value, status_code=status)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(event, data)`` pairs of a Server-Sent Events body.

    Follows the SSE format: ``data:`` lines of one event are joined with
    newlines, an empty line ends the event, comment lines (``:``) are skipped,
    and an event with no ``event:`` field is called ``message``.
    """
    event, data = "", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield event or "message", "\n".join(data)


class HttpModelClient(ModelClient):
    """Base of adapters that speak JSON over the shared pooled ``httpx.AsyncClient``.

    Subclasses build the body and parse the answer; this class sends, applies
    the timeout and maps every transport failure and error status into the
    taxonomy, with secrets redacted.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        http: httpx.AsyncClient | LoopClients,
        url: str,
        headers: Mapping[str, str],
        secrets: tuple[str | None, ...] = (),
    ) -> None:
        super().__init__(spec)
        self._http = http
        self._url = url
        self._shown_url = redact_url(url)
        self._headers = dict(headers)
        self._secrets = (*secrets, *credential_values([url], headers))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.spec.id!r}, url={self._shown_url!r})"

    async def http(self) -> httpx.AsyncClient:
        """The client to send on: the injected one, or the running loop's."""
        if isinstance(self._http, LoopClients):
            return await self._http.get()
        return self._http

    def preview(self, value: object, limit: int = 120) -> str:
        """A short quoted excerpt of ``value`` for messages: redacted, then cut."""
        return repr(redact(str(value), self._secrets)[:limit])

    def malformed(self, message: str) -> MalformedResponse:
        """A :class:`MalformedResponse` for this model, with secrets redacted."""
        return self.error(MalformedResponse, redact(message, self._secrets))

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise self.error(
                Timeout, f"{type(exc).__name__} talking to {self._shown_url}"
            ) from None
        except (httpx.TransportError, httpx.StreamError) as exc:
            # Connection refused/reset, protocol errors, a stream cut short.
            detail = redact(str(exc) or type(exc).__name__, self._secrets)
            raise self.error(Unavailable, f"{detail} ({self._shown_url})") from None

    def _timeout(self, seconds: float | None) -> httpx.Timeout:
        """Per-operation limits for one request (the gateway bounds the total)."""
        limit = seconds if seconds is not None else self.spec.timeout_s
        return httpx.Timeout(limit, connect=min(5.0, limit))

    def _raise_for(self, response: httpx.Response, body: str) -> NoReturn:
        raise error_for_status(
            response.status_code, body, response.headers, spec=self.spec, secrets=self._secrets
        )

    async def post_json(
        self, body: Mapping[str, Any], *, read_timeout: float | None, url: str | None = None
    ) -> Any:
        """POST ``body`` (to ``url``, default the adapter's endpoint); the decoded JSON answer."""
        http = await self.http()
        with self._transport_errors():
            response = await http.post(
                url or self._url,
                json=body,
                headers=self._headers,
                timeout=self._timeout(read_timeout),
            )
        if response.status_code >= 400:
            self._raise_for(response, response.text)
        try:
            return json_loads(response.content)
        except ValueError:
            raise self.malformed(f"response is not JSON: {self.preview(response.text)}") from None

    @asynccontextmanager
    async def post_stream(
        self, body: Mapping[str, Any], *, read_timeout: float | None
    ) -> AsyncIterator[AsyncIterator[tuple[str, str]]]:
        """POST ``body`` and yield an iterator of its SSE ``(event, data)`` pairs."""
        http = await self.http()
        with self._transport_errors():
            async with http.stream(
                "POST",
                self._url,
                json=body,
                headers=self._headers,
                timeout=self._timeout(read_timeout),
            ) as response:
                if response.status_code >= 400:
                    body_text = (await response.aread()).decode("utf-8", "replace")
                    self._raise_for(response, body_text)
                yield sse_events(response)

    def parse_json(self, data: str) -> Any:
        """Decode one JSON payload of a stream, or raise :class:`MalformedResponse`."""
        try:
            return json_loads(data)
        except ValueError:
            raise self.malformed(f"stream event is not JSON: {self.preview(data)}") from None
