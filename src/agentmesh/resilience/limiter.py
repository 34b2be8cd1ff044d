"""Client-side rate limits per catalog entry: one step of the attempt routine, before the call.

A catalog entry's ``limits: {rpm, tpm, concurrency, max_wait, window_s}`` is
enforced here, in memory or, when the routing state is Redis, shared by every
process through the same server (atomically: each admission is one script).

- ``rpm``: requests per window, each call holding its entry from admission
  until ``window_s`` after it ends, so the provider never sees more than
  ``rpm`` arrivals in any ``window_s`` (see :class:`RateLimiter` for why a
  plain moving window of admissions is not enough).
- ``tpm``: tokens per window, charged at admission as the prompt estimate plus
  the call's output cap (what providers count against their own limit), on the
  ``limits`` library's sliding-window counter (an estimate anyway; a moving
  window of every token would store one entry per token).
- ``concurrency``: calls in flight, released when the attempt ends; in Redis a
  sorted set of holders with leases, so a killed process frees its slots.
- A provider's 429 ``Retry-After`` (or ``x-ratelimit-reset-*``) blocks the
  model here until then, for every process sharing the limiter.

The router skips a saturated model (``rate_limited_locally``) when another
candidate fits; when none does, the caller waits at the admission step for up
to the entry's ``max_wait`` and then treats the model like one that answered 429.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol

from agentmesh.models.controls import RateLimits
from agentmesh.models.spec import ModelSpec
from agentmesh.models.tokens import estimate_tokens
from agentmesh.routing.types import RouteRequest
from agentmesh.tracing.controls import RATELIMIT_LIMIT, RATELIMIT_WAIT_S, ratelimit_span

__all__ = [
    "LimitStep",
    "LimiterError",
    "Permit",
    "RateLimiter",
    "Slots",
    "maybe_limiter",
    "open_limiter",
    "wait_for",
]


class LimiterError(ValueError):
    """The limiter's store cannot be opened (the extra is missing, a bad URL)."""


@dataclass(frozen=True, slots=True)
class Permit:
    """An admission: its entries, settled when the attempt ends.

    Attributes:
        model: The admitted model.
        holder: The id of its entries (``None``: the model has no limits).
        window_s: The model's window: the request entry lapses this long after the end.
    """

    model: str
    holder: str | None = None
    window_s: float = 0.0


class Slots(Protocol):
    """Timed entries per key (requests in a window, calls in flight) and 429 blocks.

    An entry is held until its time; keys are ``rpm:<model>`` and ``conc:<model>``.
    """

    async def take(self, key: str, limit: int, holder: str, until: float) -> bool:
        """Add ``holder`` until ``until`` unless ``limit`` live entries exist (atomically)."""
        ...

    async def settle(self, key: str, holder: str, until: float | None) -> None:
        """Move ``holder``'s entry to expire at ``until``, or drop it (``None``)."""
        ...

    async def held(self, key: str) -> int:
        """Live entries of ``key``."""
        ...

    async def next_free(self, key: str) -> float:
        """Seconds until the earliest live entry of ``key`` expires (0 when none)."""
        ...

    async def block(self, model: str, seconds: float) -> None:
        """Admit nothing for ``model`` for ``seconds`` (a provider's 429)."""
        ...

    async def blocked_for(self, model: str) -> float:
        """Seconds ``model`` stays blocked (0 when it is not)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class _MemorySlots:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[str, dict[str, float]] = {}
        self._blocked: dict[str, float] = {}

    def _live(self, key: str) -> dict[str, float]:
        now = self._clock()
        entries = self._entries.setdefault(key, {})
        for holder in [h for h, until in entries.items() if until <= now]:
            del entries[holder]
        return entries

    async def take(self, key: str, limit: int, holder: str, until: float) -> bool:
        entries = self._live(key)
        if len(entries) >= limit:
            return False
        entries[holder] = until
        return True

    async def settle(self, key: str, holder: str, until: float | None) -> None:
        entries = self._entries.get(key, {})
        if holder in entries:
            if until is None:
                del entries[holder]
            else:
                entries[holder] = until

    async def held(self, key: str) -> int:
        return len(self._live(key))

    async def next_free(self, key: str) -> float:
        entries = self._live(key)
        return max(0.0, min(entries.values()) - self._clock()) if entries else 0.0

    async def block(self, model: str, seconds: float) -> None:
        until = self._clock() + seconds
        self._blocked[model] = max(until, self._blocked.get(model, 0.0))

    async def blocked_for(self, model: str) -> float:
        return max(0.0, self._blocked.get(model, 0.0) - self._clock())

    async def aclose(self) -> None:
        return None


_TAKE = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('zadd', KEYS[1], ARGV[3], ARGV[4])
redis.call('pexpireat', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
return 1
"""
_SETTLE = """
if ARGV[2] == '' then return redis.call('zrem', KEYS[1], ARGV[1]) end
return redis.call('zadd', KEYS[1], 'XX', ARGV[2], ARGV[1])
"""


class _RedisSlots:
    def __init__(self, client: Any, prefix: str, clock: Callable[[], float]) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._take = client.register_script(_TAKE)
        self._settle = client.register_script(_SETTLE)

    async def take(self, key: str, limit: int, holder: str, until: float) -> bool:
        args = [self._clock(), limit, until, holder]
        return bool(await self._take(keys=[self._prefix + key], args=args))

    async def settle(self, key: str, holder: str, until: float | None) -> None:
        await self._settle(keys=[self._prefix + key], args=[holder, "" if until is None else until])

    async def held(self, key: str) -> int:
        return int(await self._client.zcount(self._prefix + key, f"({self._clock()}", "+inf"))

    async def next_free(self, key: str) -> float:
        first = await self._client.zrangebyscore(
            self._prefix + key, f"({self._clock()}", "+inf", start=0, num=1, withscores=True
        )
        return max(0.0, float(first[0][1]) - self._clock()) if first else 0.0

    async def block(self, model: str, seconds: float) -> None:
        millis = max(1, int(seconds * 1000))
        await self._client.set(f"{self._prefix}block:{model}", "429", px=millis)

    async def blocked_for(self, model: str) -> float:
        millis = await self._client.pttl(f"{self._prefix}block:{model}")
        return max(0.0, millis / 1000) if millis and millis > 0 else 0.0

    async def aclose(self) -> None:
        await self._client.aclose()


class RateLimiter:
    """Admits calls to each catalog entry within its ``limits``; share one per process.

    Requests per window: each call holds an entry from its admission until
    ``window_s`` after it *ends*. Counting admissions alone (a plain moving
    window) is not enough: measured with four processes starting on two cores,
    requests admitted in one window reached the server up to 0.4 s later,
    and the server saw 85 in one 2 s window of a 60 limit. With the entry kept
    until ``window_s`` after the call ends, any ``window_s`` of arrivals at the
    provider holds at most ``rpm`` calls: all of them were admitted before the
    last one and none had ended ``window_s`` before it was admitted.

    Args:
        storage: A ``limits.aio`` storage for the tokens-per-window counter
            (memory, or Redis shared by processes).
        slots: The request and concurrency entries and the 429 blocks (of the
            same reach as ``storage``).
        prefix: Namespace of every key.
        clock: Epoch-seconds clock.
        lease_s: Longest a call may hold its entries without ending (a killed
            process's entries lapse then).
    """

    def __init__(
        self,
        storage: Any | None = None,
        slots: Slots | None = None,
        *,
        prefix: str = "agentmesh:limits:",
        clock: Callable[[], float] = time.time,
        lease_s: float = 600.0,
    ) -> None:
        try:
            from limits.aio.storage import MemoryStorage
            from limits.aio.strategies import SlidingWindowCounterRateLimiter
        except ImportError:
            raise LimiterError(
                "catalog limits: need the extra: pip install 'agentmesh[limits]'"
            ) from None
        store = storage if storage is not None else MemoryStorage()
        self._tokens = SlidingWindowCounterRateLimiter(store)
        self._storage = store
        self._slots: Slots = slots if slots is not None else _MemorySlots(clock)
        self._prefix = prefix
        self._clock = clock
        self.lease_s = lease_s

    @staticmethod
    def _tpm(limits: RateLimits) -> Any:
        from limits import RateLimitItemPerSecond

        return limits.tpm and RateLimitItemPerSecond(limits.tpm, limits.window_s, "tpm")

    async def saturated(self, specs: Iterable[ModelSpec], tokens: int) -> dict[str, str]:
        """Models that would not be admitted now, each with why (nothing is consumed)."""
        out: dict[str, str] = {}
        for spec in specs:
            if spec.limits is not None:
                why = await self._why_not(spec.id, spec.limits, tokens)
                if why is not None:
                    out[spec.id] = why
        return out

    async def _why_not(self, model: str, limits: RateLimits, tokens: int) -> str | None:
        blocked = await self._slots.blocked_for(model)
        if blocked > 0:
            return f"provider asked to wait {blocked:.1f} s more (429)"
        if limits.rpm and await self._slots.held(f"rpm:{model}") >= limits.rpm:
            return f"rpm {limits.rpm} per {limits.window_s} s reached"
        tpm = self._tpm(limits)
        cost = min(tokens, tpm.amount) if tpm else 0
        if tpm and not await self._tokens.test(tpm, self._prefix, model, cost=cost):
            return f"tpm {limits.tpm} per {limits.window_s} s reached"
        if limits.concurrency and await self._slots.held(f"conc:{model}") >= limits.concurrency:
            return f"concurrency {limits.concurrency} in flight"
        return None

    async def acquire(self, spec: ModelSpec, tokens: int) -> Permit | None:
        """Admit one call of ``tokens`` to ``spec`` now (each limit atomically), or ``None``.

        Concurrency, requests and tokens are taken in that order; one that
        refuses gives back the entries taken before it (the token counter,
        taken last, is never given back).
        """
        limits = spec.limits
        if limits is None:
            return Permit(spec.id)
        if await self._slots.blocked_for(spec.id) > 0:
            return None
        holder = uuid.uuid4().hex
        permit = Permit(spec.id, holder, limits.window_s)
        until = self._clock() + self.lease_s
        if limits.concurrency and not await self._slots.take(
            f"conc:{spec.id}", limits.concurrency, holder, until
        ):
            return None
        if limits.rpm and not await self._slots.take(
            f"rpm:{spec.id}", limits.rpm, holder, until + limits.window_s
        ):
            await self._slots.settle(f"conc:{spec.id}", holder, None)
            return None
        tpm = self._tpm(limits)
        cost = min(tokens, tpm.amount) if tpm else 0
        if tpm and not await self._tokens.hit(tpm, self._prefix, spec.id, cost=cost):
            await self._give_back(permit)
            return None
        return permit

    async def _give_back(self, permit: Permit) -> None:
        await self._slots.settle(f"conc:{permit.model}", permit.holder or "", None)
        await self._slots.settle(f"rpm:{permit.model}", permit.holder or "", None)

    async def retry_in(self, spec: ModelSpec) -> float:
        """Seconds until ``spec`` may admit again (a lower bound)."""
        limits = spec.limits
        if limits is None:
            return 0.0
        waits = [await self._slots.blocked_for(spec.id)]
        if limits.rpm and await self._slots.held(f"rpm:{spec.id}") >= limits.rpm:
            waits.append(await self._slots.next_free(f"rpm:{spec.id}"))
        tpm = self._tpm(limits)
        if tpm:
            reset, remaining = await self._tokens.get_window_stats(tpm, self._prefix, spec.id)
            if remaining <= 0:
                waits.append(reset - self._clock())
        return max(0.0, *waits)

    async def release(self, permit: Permit) -> None:
        """The attempt ended: its request entry now lapses a window from now; its slot is free."""
        if permit.holder is None:
            return
        await self._slots.settle(f"conc:{permit.model}", permit.holder, None)
        await self._slots.settle(
            f"rpm:{permit.model}", permit.holder, self._clock() + permit.window_s
        )

    async def block(self, model: str, seconds: float) -> None:
        """A provider said 429 with a wait: admit nothing for ``model`` until then."""
        if seconds > 0:
            await self._slots.block(model, seconds)

    async def aclose(self) -> None:
        """Release the store's connections."""
        await self._slots.aclose()


def _memory(url: str) -> AbstractAsyncContextManager[RateLimiter]:
    @asynccontextmanager
    async def opened() -> AsyncIterator[RateLimiter]:
        yield RateLimiter()

    return opened()


def _redis(url: str) -> AbstractAsyncContextManager[RateLimiter]:
    @asynccontextmanager
    async def opened() -> AsyncIterator[RateLimiter]:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        try:
            from limits.aio.storage import RedisStorage
            from redis.asyncio import Redis
        except ImportError:
            raise LimiterError(
                "shared limits need the extras: pip install 'agentmesh[limits,redis]'"
            ) from None
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = dict(query).get("prefix", "agentmesh:")
        kept = [(k, v) for k, v in query if k == "socket_timeout"]
        target = urlunsplit(parts._replace(query=urlencode(kept)))
        namespace = f"{prefix}limits:"
        storage = RedisStorage(
            f"async+{target}", implementation="redispy", key_prefix=namespace + "tpm"
        )
        limiter = RateLimiter(
            storage, _RedisSlots(Redis.from_url(target), namespace, time.time), prefix=namespace
        )
        try:
            yield limiter
        finally:
            await limiter.aclose()
            bridge = getattr(storage, "bridge", None)
            client = getattr(bridge, "storage", None)
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()

    return opened()


def open_limiter(state_url: str = "memory") -> AbstractAsyncContextManager[RateLimiter]:
    """The limiter that goes with the routing state ``state_url`` (``--state``).

    ``memory`` limits this process; ``redis://...`` shares the limits with
    every process using that server and ``prefix``.

    Raises:
        LimiterError: The ``limits`` (or ``redis``) extra is missing.
    """
    scheme = state_url.partition(":")[0].lower()
    return (_redis if scheme in ("redis", "rediss", "unix") else _memory)(state_url)


def maybe_limiter(
    specs: Iterable[ModelSpec], state_url: str = "memory"
) -> AbstractAsyncContextManager[RateLimiter | None]:
    """:func:`open_limiter` when any of ``specs`` has ``limits``, else ``None``."""
    if not any(s.limits is not None for s in specs):
        return nullcontext(None)
    return open_limiter(state_url)


async def wait_for(
    limiter: RateLimiter,
    spec: ModelSpec,
    tokens: int,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[Permit | None, float]:
    """Admit a call to ``spec``, waiting up to its ``max_wait``; the permit and the time waited.

    ``None`` when it was still full after ``max_wait`` seconds. The time waited
    is what was slept (polls of a concurrency limit every 5 ms at least).
    """
    limits = spec.limits
    max_wait = limits.max_wait if limits is not None else 0.0
    waited = 0.0
    while True:
        permit = await limiter.acquire(spec, tokens)
        if permit is not None or waited >= max_wait:
            return permit, waited
        pause = min(max(await limiter.retry_in(spec), 0.005), max_wait - waited)
        await sleep(pause)
        waited += pause


FREE = Permit("")
"""The permit of a model without limits."""


def call_tokens(request: RouteRequest, max_tokens: int | None) -> int:
    """What a call counts against a tokens-per-window limit: prompt estimate plus output cap."""
    prompt = request.prompt_tokens
    if prompt is None:
        prompt = estimate_tokens(request.prompt)
    return prompt + (max_tokens if max_tokens is not None else request.max_output_tokens)


def _limit_names(limits: RateLimits) -> str:
    named = {"rpm": limits.rpm, "tpm": limits.tpm, "concurrency": limits.concurrency}
    return ",".join(name for name, value in named.items() if value)


class LimitStep:
    """The rate-limit step of the attempt routine: before routing, and before each call.

    Args:
        limiter: The limiter given to the caller; ``None``: one in this
            process's memory, made when a catalog entry first needs it.
        sleep: How to wait for a saturated model.
    """

    def __init__(
        self, limiter: RateLimiter | None, sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        self.limiter = limiter
        self._sleep = sleep

    def _get(self) -> RateLimiter:
        if self.limiter is None:
            self.limiter = RateLimiter()
        return self.limiter

    async def mark_saturated(
        self, specs: Iterable[ModelSpec], request: RouteRequest
    ) -> RouteRequest:
        """``request`` with the models whose limit is full now, for the router to skip."""
        limited = [s for s in specs if s.limits is not None]
        if not limited:
            return request
        saturated = await self._get().saturated(limited, call_tokens(request, None))
        return replace(request, saturated=MappingProxyType(saturated)) if saturated else request

    async def admit(
        self, spec: ModelSpec, request: RouteRequest, max_tokens: int | None
    ) -> tuple[Permit | None, float]:
        """Admit a call to ``spec``, waiting up to its ``max_wait``: ``(permit, waited)``.

        ``None`` when it is still full then; a wait is traced as ``ratelimit {model}``.
        """
        if spec.limits is None:
            return FREE, 0.0
        limiter = self._get()
        tokens = call_tokens(request, max_tokens)
        permit = await limiter.acquire(spec, tokens)
        if permit is not None:
            return permit, 0.0
        with ratelimit_span(spec.id, request.node) as scope:
            permit, waited = await wait_for(limiter, spec, tokens, self._sleep)
            scope.set(RATELIMIT_WAIT_S, waited)
            scope.set(RATELIMIT_LIMIT, _limit_names(spec.limits))
        return permit, waited

    async def release(self, permit: Permit) -> None:
        """The call ended (see :meth:`RateLimiter.release`)."""
        if permit is not FREE and self.limiter is not None:
            await self.limiter.release(permit)

    async def block(self, model: str, retry_after: float | None) -> None:
        """A provider's 429 asked to wait ``retry_after`` seconds."""
        if retry_after and self.limiter is not None:
            await self.limiter.block(model, retry_after)
