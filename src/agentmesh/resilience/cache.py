"""The exact response cache: one step of the attempt routine, before the model is called.

The key is what determines the answer: the model id, the rendered messages
(roles, text, tool calls), the prompt template's hash, the parameters (output
cap, temperature, stop, seed, tool choice, completion prompt), the tools and
the response format. Two calls share an answer only when all of those agree.

What is stored: only good answers. Errors never reach the store, and neither do
refusals (``content_filter``), truncated answers (``length``) or empty ones.
Sampled calls (temperature > 0) are cached only when a policy, node or entry
says ``cache: sampled``; ``cache: false`` at any level wins.

Backends behind one small contract, :class:`ResponseCache`: :class:`MemoryCache`
(LRU, size bound, optional TTL; this process only) and :class:`RedisCache`
(TTL, shared by every process), chosen by URL with :func:`open_cache`
(``memory`` or ``redis://HOST:PORT/DB[?prefix=NAME&ttl=S]``).

A hit costs nothing: the attempt's spend is zero and the answer keeps what the
original call cost as ``saved_usd`` (traced as ``agentmesh.cache.saved_usd``).
A resumed run is not a cache user: its checkpoints already hold its answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentmesh.models.controls import CacheSetting
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest, ModelResponse, ToolCall, Usage
from agentmesh.routing.policy import Policy
from agentmesh.tracing.controls import CACHE_HIT, CACHE_SAVED_USD, cache_span

__all__ = [
    "CACHE_STORES",
    "CacheError",
    "CacheRule",
    "CacheStep",
    "CachedAnswer",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "cache_key",
    "cacheable",
    "maybe_cache",
    "open_cache",
]

_KEY_VERSION = "1"


class CacheError(ValueError):
    """A cache URL is invalid or its server cannot be reached (names the URL)."""


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored answer: what the call returned, and what it cost then.

    Attributes:
        response: The original response (its cost is what a hit saves).
        stored_at: Epoch seconds when it was stored.
    """

    response: ModelResponse
    stored_at: float

    def to_json(self) -> str:
        """The answer as one JSON document (what :class:`RedisCache` stores)."""
        r = self.response
        return json.dumps(
            {
                "model_id": r.model_id,
                "provider": r.provider,
                "served_model": r.served_model,
                "text": r.text,
                "usage": [r.usage.input_tokens, r.usage.output_tokens, r.usage.estimated],
                "finish_reason": r.finish_reason,
                "latency_ms": r.latency_ms,
                "ttft_ms": r.ttft_ms,
                "cost_usd": r.cost_usd,
                "tool_calls": [[c.id, c.name, dict(c.arguments)] for c in r.tool_calls],
                "simulated": r.simulated,
                "reasoning": r.reasoning,
                "stored_at": self.stored_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> CachedAnswer:
        """Read what :meth:`to_json` wrote.

        Raises:
            ValueError: Not such a document (a foreign or older entry).
        """
        try:
            d = json.loads(text)
            i, o, estimated = d["usage"]
            response = ModelResponse(
                model_id=str(d["model_id"]),
                provider=str(d["provider"]),
                served_model=str(d["served_model"]),
                text=str(d["text"]),
                usage=Usage(int(i), int(o), bool(estimated)),
                finish_reason=d["finish_reason"],
                latency_ms=float(d["latency_ms"]),
                ttft_ms=float(d["ttft_ms"]),
                cost_usd=float(d["cost_usd"]),
                tool_calls=tuple(ToolCall(str(a), str(b), dict(c)) for a, b, c in d["tool_calls"]),
                simulated=bool(d["simulated"]),
                reasoning=str(d["reasoning"]),
            )
            return cls(response, float(d["stored_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a cached answer: {exc}") from None

    def served(self, latency_ms: float) -> ModelResponse:
        """The answer as a hit serves it: free, with the lookup's latency."""
        from dataclasses import replace

        return replace(self.response, cost_usd=0.0, latency_ms=latency_ms, ttft_ms=latency_ms)


class ResponseCache(Protocol):
    """Where cached answers live."""

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key``, or ``None`` (missing or expired)."""
        ...

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float | None) -> None:
        """Store ``answer`` under ``key`` for ``ttl_s`` seconds (``None``: backend default)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """An LRU cache in this process's memory.

    Args:
        max_entries: Most answers kept; the least recently used goes first.
        default_ttl_s: Lifetime of answers stored without a TTL (``None``: until evicted).
        clock: Epoch-seconds clock (tests inject one).
    """

    def __init__(
        self,
        max_entries: int = 4096,
        *,
        default_ttl_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"MemoryCache.max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self.default_ttl_s = default_ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[CachedAnswer, float | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CachedAnswer | None:
        """See :meth:`ResponseCache.get`."""
        found = self._entries.get(key)
        if found is None:
            return None
        answer, expires = found
        if expires is not None and self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return answer

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float | None) -> None:
        """See :meth:`ResponseCache.put`."""
        ttl = ttl_s if ttl_s is not None else self.default_ttl_s
        self._entries[key] = (answer, None if ttl is None else self._clock() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        """Nothing to release."""


class RedisCache:
    """Answers in Redis, shared by every process that names the same server and prefix.

    Args:
        client: A ``redis.asyncio.Redis`` client.
        prefix: Key namespace.
        default_ttl_s: Lifetime of answers stored without a TTL (``None``: forever).
        errors: The client's failure types, raised again as :class:`CacheError`.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "agentmesh:cache:",
        default_ttl_s: float | None = 86400,
        errors: tuple[type[BaseException], ...] = (OSError,),
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.default_ttl_s = default_ttl_s
        self._errors = errors

    async def get(self, key: str) -> CachedAnswer | None:
        """See :meth:`ResponseCache.get` (an unreadable entry counts as missing).

        Raises:
            CacheError: Redis failed.
        """
        try:
            raw = await self._client.get(self.prefix + key)
        except self._errors as exc:
            raise CacheError(f"cache {self.prefix}: {exc}") from None
        if raw is None:
            return None
        try:
            return CachedAnswer.from_json(raw)
        except ValueError:
            return None

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float | None) -> None:
        """See :meth:`ResponseCache.put`.

        Raises:
            CacheError: Redis failed.
        """
        ttl = ttl_s if ttl_s is not None else self.default_ttl_s
        millis = None if ttl is None else max(1, int(ttl * 1000))
        try:
            await self._client.set(self.prefix + key, answer.to_json(), px=millis)
        except self._errors as exc:
            raise CacheError(f"cache {self.prefix}: {exc}") from None

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()


# --- what is cached, under which key ----------------------------------------------------


def _message(message: BaseMessage) -> list[Any]:
    out: list[Any] = [message.type, message.content]
    if isinstance(message, AIMessage) and message.tool_calls:
        out.append([[c.get("id"), c["name"], c["args"]] for c in message.tool_calls])
    if isinstance(message, ToolMessage):
        out.append(message.tool_call_id)
    if message.name:
        out.append(["name", message.name])
    return out


def cache_key(model: str, request: ModelRequest) -> str:
    """The exact key of ``request`` to ``model``: a SHA-256 over everything that shapes the answer.

    The prompt template's hash (``agentmesh.prompt.hash`` in ``request.labels``)
    is part of it, so editing a template invalidates its answers even when a
    rendering happens to come out the same.
    """
    labels = request.labels or {}
    fmt = request.response_format
    document = [
        _KEY_VERSION,
        model,
        [_message(m) for m in request.messages],
        labels.get("agentmesh.prompt.hash"),
        {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop),
            "seed": request.seed,
            "tool_choice": request.tool_choice,
            "prompt": request.prompt,
        },
        [[t.name, t.description, dict(t.parameters)] for t in request.tools],
        None if fmt is None else [fmt.name, None if fmt.schema is None else dict(fmt.schema)],
    ]
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cacheable(response: ModelResponse, *, allow_empty: bool = True) -> bool:
    """Whether ``response`` may be stored: a complete answer, not a refusal or a cut one."""
    if response.finish_reason in ("length", "content_filter", "error"):
        return False
    empty = not response.text.strip() and not response.tool_calls
    return allow_empty or not empty


@dataclass(frozen=True, slots=True)
class CacheRule:
    """Whether one call to one model is cached, and for how long.

    Attributes:
        enabled: Look up and store.
        ttl_s: Lifetime of what is stored (``None``: the backend's default).
    """

    enabled: bool
    ttl_s: float | None = None

    @classmethod
    def of(
        cls, *, default: bool, policy: Policy | None, spec: ModelSpec, request: ModelRequest
    ) -> CacheRule:
        """The rule for ``request`` to ``spec`` under ``policy``.

        ``default`` is whether caching is on without a word from either (a cache
        was given to the caller). ``false`` at any level turns it off; a sampled
        call (temperature > 0) needs ``sampled`` at some level.
        """
        levels: Sequence[CacheSetting | None] = (
            policy.cache if policy is not None else None,
            spec.cache,
        )
        if any(level is False for level in levels):
            return cls(False)
        sampled = request.temperature is not None and request.temperature > 0
        if sampled:
            enabled = any(level == "sampled" for level in levels)
        else:
            enabled = default or any(level is not None for level in levels)
        ttl = policy.ttl if policy is not None and policy.ttl is not None else spec.ttl
        return cls(enabled, ttl)


@dataclass(frozen=True, slots=True)
class Lookup:
    """Where one call's answer is looked up and stored, and for how long."""

    cache: ResponseCache
    key: str
    rule: CacheRule


class CacheStep:
    """The cache step of the attempt routine: look up before a model is called, store after.

    Args:
        cache: The cache given to the caller (``--cache``); ``None``: calls
            whose policy or entry says ``cache: true`` use one in memory.
    """

    def __init__(self, cache: ResponseCache | None) -> None:
        self.cache = cache
        self._own: MemoryCache | None = None

    def plan(self, policy: Policy | None, spec: ModelSpec, request: ModelRequest) -> Lookup | None:
        """Where ``request`` to ``spec`` is cached, or ``None`` when it is not."""
        rule = CacheRule.of(
            default=self.cache is not None, policy=policy, spec=spec, request=request
        )
        if not rule.enabled:
            return None
        cache = self.cache
        if cache is None:
            cache = self._own = self._own or MemoryCache()
        return Lookup(cache, cache_key(spec.id, request), rule)

    @staticmethod
    async def lookup(plan: Lookup, model: str, node: str | None) -> ModelResponse | None:
        """The stored answer served free (traced as ``cache {model}``), or ``None``.

        An unreachable cache is a miss, never a failed call.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        with cache_span(model, node) as scope:
            try:
                found = await plan.cache.get(plan.key)
            except CacheError as exc:
                scope.set("error.type", "cache_unavailable")
                scope.set("agentmesh.cache.error", str(exc))
                found = None
            scope.set(CACHE_HIT, found is not None)
            if found is None:
                return None
            scope.set(CACHE_SAVED_USD, found.response.cost_usd)
        return found.served((loop.time() - started) * 1000)

    @staticmethod
    async def store(plan: Lookup, response: ModelResponse, *, allow_empty: bool) -> None:
        """Keep ``response`` if it is a good answer (a cache that fails to write is skipped)."""
        if cacheable(response, allow_empty=allow_empty):
            with suppress(CacheError):
                await plan.cache.put(plan.key, CachedAnswer(response, time.time()), plan.rule.ttl_s)


# --- backends by URL ---------------------------------------------------------------------


def _ttl(url: str, value: str | None) -> float | None:
    if value is None:
        return None
    if value.lower() in ("none", "never"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise CacheError(f"cache {_shown(url)}: ttl={value!r}: must be positive seconds (or none)")
    return seconds


def _shown(url: str) -> str:
    from agentmesh.routing.stores import redacted

    return redacted(url)


@asynccontextmanager
async def _memory(url: str) -> AsyncIterator[ResponseCache]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if url != "memory" and (parts.netloc or parts.path or set(query) - {"size", "ttl"}):
        raise CacheError(f"cache {url!r}: use memory (or memory://?size=N&ttl=S)")
    try:
        size = int(query.get("size", "4096"))
    except ValueError:
        size = 0
    if size < 1:
        raise CacheError(f"cache {url!r}: size must be a positive integer")
    yield MemoryCache(size, default_ttl_s=_ttl(url, query.get("ttl")))


@asynccontextmanager
async def _redis(url: str) -> AsyncIterator[ResponseCache]:
    try:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError
    except ImportError:
        raise CacheError("a redis cache needs the extra: pip install 'agentmesh[redis]'") from None
    parts = urlsplit(url)
    client_query: list[tuple[str, str]] = []
    prefix = "agentmesh:cache:"
    ttl: float | None = 86400.0
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            if not value:
                raise CacheError(f"cache {_shown(url)}: prefix must not be empty")
            prefix = value
        elif name == "ttl":
            ttl = _ttl(url, value)
        else:
            client_query.append((name, value))
    try:
        client = Redis.from_url(urlunsplit(parts._replace(query=urlencode(client_query))))
    except ValueError as exc:
        raise CacheError(f"cache {_shown(url)}: {exc}") from None
    cache = RedisCache(client, prefix=prefix, default_ttl_s=ttl, errors=(RedisError, OSError))
    try:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            raise CacheError(f"cache {_shown(url)}: cannot reach Redis: {exc}") from None
        yield cache
    finally:
        await cache.aclose()


CACHE_STORES: Mapping[str, Callable[[str], AbstractAsyncContextManager[ResponseCache]]] = (
    MappingProxyType({"memory": _memory, "redis": _redis, "rediss": _redis, "unix": _redis})
)
"""Cache openers by URL scheme."""


def open_cache(url: str) -> AbstractAsyncContextManager[ResponseCache]:
    """Open the cache ``url`` names (``async with``): ``memory`` or ``redis://HOST:PORT/DB``.

    Redis URLs take ``prefix`` (key namespace, default ``agentmesh:cache:``) and
    ``ttl`` (seconds answers live unless a policy or entry says; default a
    day, ``none`` for never) besides redis-py's own options.

    Raises:
        CacheError: Unknown scheme, bad option, missing extra, unreachable server.
    """
    scheme = url.partition(":")[0].lower()
    opener = CACHE_STORES.get(scheme)
    if opener is None:
        raise CacheError(f"cache {_shown(url)!r}: unknown kind {scheme!r}; use memory or redis://")
    return opener(url)


def maybe_cache(url: str | None) -> AbstractAsyncContextManager[ResponseCache | None]:
    """:func:`open_cache` of ``url``, or ``None`` when no URL is given (``--cache`` unset)."""
    if url is None:
        return nullcontext(None)
    return open_cache(url)
