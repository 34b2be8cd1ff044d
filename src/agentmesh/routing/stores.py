"""Routing state by URL: ``memory`` (default) or ``redis://...`` (extra ``redis``).

``open_state(url)`` is what ``--state URL`` uses, and the Python equivalent::

    async with open_state("redis://127.0.0.1:6379/0") as state:
        async with Runtime.open(catalog, state=state) as runtime:
            ...

Redis URLs take redis-py's own query options (``socket_timeout``, ...) plus the
state's: ``prefix`` (key namespace, default ``agentmesh:``), ``stats_ttl_s``,
``run_ttl_s``, ``counter_ttl_s`` (seconds; ``none`` = never expire), ``window``
and ``ewma_alpha``. Example: ``redis://127.0.0.1:6379/0?prefix=staging:``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from agentmesh.routing.redis_state import RedisRoutingState
from agentmesh.routing.state import InMemoryRoutingState, RoutingState, StateError

__all__ = ["STATE_STORES", "StateError", "open_state", "redacted", "redis_options"]


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.partition(":")[0] + ":<unparsable>"
    if password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _seconds(value: str) -> float | None:
    if value.lower() in ("", "none", "never"):
        return None
    seconds = float(value)
    if seconds <= 0:
        raise ValueError("must be positive (or none)")
    return seconds


def _cache_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds >= 0:
        raise ValueError("must be >= 0 (0: no cache)")
    return seconds


def _window(value: str) -> int:
    window = int(value)
    if window < 1:
        raise ValueError("must be at least 1")
    return window


def _alpha(value: str) -> float:
    alpha = float(value)
    if not 0 < alpha <= 1:
        raise ValueError("must be in (0, 1]")
    return alpha


def _prefix(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


_REDIS_OPTIONS: Mapping[str, Callable[[str], Any]] = MappingProxyType(
    {
        "prefix": _prefix,
        "stats_ttl_s": _seconds,
        "run_ttl_s": _seconds,
        "counter_ttl_s": _seconds,
        "stats_cache_s": _cache_seconds,
        "window": _window,
        "ewma_alpha": _alpha,
        "max_connections": _window,
        "pool_timeout_s": _seconds,
    }
)


def redis_options(url: str) -> tuple[str, dict[str, Any]]:
    """Split a Redis state URL into the client's URL and the state's options.

    Raises:
        StateError: An option's value is invalid (the option is named).
    """
    parts = urlsplit(url)
    client_query: list[tuple[str, str]] = []
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        parse = _REDIS_OPTIONS.get(name)
        if parse is None:
            client_query.append((name, value))
            continue
        try:
            options[name] = parse(value)
        except ValueError as exc:
            raise StateError(f"state {redacted(url)}: {name}={value!r}: {exc}") from None
    return urlunsplit(parts._replace(query=urlencode(client_query))), options


@asynccontextmanager
async def _memory(url: str) -> AsyncIterator[RoutingState]:
    if url.partition(":")[2] not in ("", "//"):
        raise StateError(f"state {url!r}: memory takes no location (use: memory)")
    yield InMemoryRoutingState()


@asynccontextmanager
async def _redis(url: str) -> AsyncIterator[RoutingState]:
    try:
        from redis.exceptions import RedisError
    except ImportError:
        raise StateError("redis state needs the extra: pip install 'agentmesh[redis]'") from None

    target, options = redis_options(url)
    try:
        state = RedisRoutingState.from_url(target, **options)
    except ValueError as exc:  # redis-py rejects a malformed URL or client option
        raise StateError(f"state {redacted(url)}: {exc}") from None
    try:
        try:
            await state.ping()
        except (RedisError, OSError) as exc:
            raise StateError(f"state {redacted(url)}: cannot reach Redis: {exc}") from None
        yield state
    finally:
        await state.aclose()


StateOpener = Callable[[str], AbstractAsyncContextManager[RoutingState]]

STATE_STORES: Mapping[str, StateOpener] = MappingProxyType(
    {
        "memory": _memory,
        "redis": _redis,
        "rediss": _redis,
        "unix": _redis,
    }
)
"""Openers by URL scheme."""


def open_state(url: str = "memory") -> AbstractAsyncContextManager[RoutingState]:
    """Open the routing state ``url`` names (use ``async with``; closed on exit).

    Raises:
        StateError: Unknown scheme, invalid option, missing extra, or (on
            entering) a server that does not answer.
    """
    scheme = url.partition(":")[0].lower()
    opener = STATE_STORES.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}:" if s != "memory" else s for s in STATE_STORES)
        raise StateError(f"state {redacted(url)!r}: unknown kind {scheme!r}; use {known}")
    return opener(url)
