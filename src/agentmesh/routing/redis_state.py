"""`RedisRoutingState`: one routing view shared by every process (extra ``redis``).

Circuit breakers, latency statistics, budgets, round-robin counters and the
routing matrix's observations live in Redis, so many worker processes route
as one: an outage seen by one process is avoided by all, and a global budget
is spent once, not once per process. It passes the same conformance suite as
:class:`~agentmesh.routing.InMemoryRoutingState`
(``agentmesh.testing.conformance``).

Every write that reads first is one Lua script (atomic on the server, one
round trip): budget reservation (all keys or none) and settlement, breaker
compare-and-set, latency/failure statistics, quality cells. A snapshot is one
script too: every read a decision needs, and the round-robin increment, in one
round trip and one consistent view.

Floats are computed in Lua (IEEE doubles, like Python) and stored with 17
significant digits, so they round-trip exactly and results equal the in-memory
state's bit for bit (Lua's own ``tostring`` keeps only 14 digits).

Keys (``agentmesh:`` is the default prefix; give each independent routing view
its own; on Redis Cluster use a hash-tagged prefix such as ``{agentmesh}:`` so
every key of a view is in one slot, as multi-key scripts require):

==================================  ========  ======================================
key                                 type      expires
==================================  ========  ======================================
``<prefix>stats:<model>``           hash      ``stats_ttl_s`` after its last call
``<prefix>lat:<model>``             list      same (newest first, ``window`` long)
``<prefix>breakers``                hash      never (a field per non-closed breaker)
``<prefix>quality:<task>``          hash      never (field model: ``"total count"``)
``<prefix>tasks``                   set       never (tasks with quality cells)
``<prefix>budget:run:<run_id>``     string    ``run_ttl_s`` after its last write
``<prefix>budget:<other key>``      string    never (``global``)
``<prefix>hold:<budget key>``       hash      its newest hold's lease, or its budget's
                                              (field hold id: ``"amount expiry"``)
``<prefix>counter:<name>``          string    ``counter_ttl_s`` after its last use
==================================  ========  ======================================

``redis`` is imported only when a client is built from a URL, so importing
:mod:`agentmesh.routing` never needs it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from agentmesh.routing.state import BreakerState, ModelStats, QualityCell, Snapshot, StateError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_POOL_TIMEOUT_S",
    "DEFAULT_PREFIX",
    "RedisRoutingState",
    "decode_breaker",
    "encode_breaker",
]

DEFAULT_PREFIX = "agentmesh:"
"""Key prefix of the default routing view."""

DEFAULT_MAX_CONNECTIONS = 64
"""Connections one process's state opens at most (``?max_connections=`` in a state URL)."""

DEFAULT_POOL_TIMEOUT_S = 20.0
"""How long a command waits for a free connection (``?pool_timeout_s=``) before failing."""

_DAY = 86_400.0
_STATS_FIELDS = ("calls", "errors", "ewma", "p95", "streak", "streak_at", "last_error")
_BREAKER_STATES = frozenset({"closed", "open", "half_open"})

# Shared Lua helpers: exact float formatting (17 significant digits round-trip a double).
_LUA_NUM = """
local function num(x) return string.format('%.17g', x) end
local function put(key, value, ttl)
  if ttl > 0 then redis.call('SET', key, value, 'PX', ttl) else redis.call('SET', key, value) end
end
-- Settled spending of a budget plus its live holds, in the holds' insertion order (as the
-- in-memory state adds them). drop: delete expired holds on the way.
local function spending(budget, holds, now, drop)
  local spent = tonumber(redis.call('GET', budget) or '0')
  local flat = redis.call('HGETALL', holds)
  for j = 1, #flat, 2 do
    local amount, expires = string.match(flat[j + 1], '^(%S+) (%S+)$')
    if expires ~= '-' and tonumber(expires) <= now then
      if drop then redis.call('HDEL', holds, flat[j]) end
    else
      spent = spent + tonumber(amount)
    end
  end
  return spent
end
"""

# KEYS: breakers, [quality], [counter], stats x n, budgets x m, their hold hashes x m
# ARGV: n, m, has_quality, has_counter, counter_ttl_ms, now
_SNAPSHOT = (
    _LUA_NUM
    + """
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local i = 2
local quality, counter = {}, false
local breakers = redis.call('HGETALL', KEYS[1])
if ARGV[3] == '1' then quality = redis.call('HGETALL', KEYS[i]); i = i + 1 end
if ARGV[4] == '1' then
  counter = redis.call('INCR', KEYS[i]) - 1
  local ttl = tonumber(ARGV[5])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
  i = i + 1
end
local stats = {}
for j = 1, n do
  local f = redis.call('HMGET', KEYS[i], 'calls', 'errors', 'ewma', 'p95', 'streak',
                       'streak_at', 'last_error')
  if f[1] then stats[j] = f else stats[j] = false end
  i = i + 1
end
local spent = {}
local now = tonumber(ARGV[6])
for j = 1, m do
  spent[j] = num(spending(KEYS[i], KEYS[i + m], now, false))
  i = i + 1
end
-- One JSON string: parsed by json.loads (C) instead of ~100 nested RESP elements parsed
-- one by one by the client (halves the snapshot's cost). Every number is already a
-- string (exact), except the counter (an integer).
return cjson.encode({breakers, quality, counter, stats, spent})
"""
)

# KEYS: stats hash, latency list
# ARGV: latency_ms or '', error or '', failure_window_s, now, alpha, window, ttl_ms
_OBSERVE = (
    _LUA_NUM
    + """
local f = redis.call('HMGET', KEYS[1], 'calls', 'errors', 'ewma', 'p95', 'streak',
                     'streak_at', 'last_error')
local calls = (tonumber(f[1]) or 0) + 1
local errors = tonumber(f[2]) or 0
local ewma, p95 = f[3] or '', f[4] or ''
local streak = tonumber(f[5]) or 0
local started, last = f[6] or '', f[7] or ''
if ARGV[2] ~= '' then
  errors = errors + 1
  if started == '' or tonumber(ARGV[4]) - tonumber(started) > tonumber(ARGV[3]) then
    streak, started = 1, ARGV[4]
  else
    streak = streak + 1
  end
  last = ARGV[2]
else
  streak, started = 0, ''
  if ARGV[1] ~= '' then
    local ms = tonumber(ARGV[1])
    redis.call('LPUSH', KEYS[2], ARGV[1])
    redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
    if ewma == '' then
      ewma = ARGV[1]
    else
      local e = tonumber(ewma)
      ewma = num(e + tonumber(ARGV[5]) * (ms - e))
    end
    local window = redis.call('LRANGE', KEYS[2], 0, -1)
    local sorted = {}
    for k, v in ipairs(window) do sorted[k] = tonumber(v) end
    table.sort(sorted)
    local rank = math.min(#sorted - 1, math.floor(0.95 * #sorted))
    p95 = num(sorted[rank + 1])
  end
end
local out = {tostring(calls), tostring(errors), ewma, p95, tostring(streak), started, last}
redis.call('HSET', KEYS[1], 'calls', out[1], 'errors', out[2], 'ewma', out[3], 'p95', out[4],
           'streak', out[5], 'streak_at', out[6], 'last_error', out[7])
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return out
"""
)

# KEYS: quality:{task}, tasks.  ARGV: model, total, count, task
_ADD_QUALITY = (
    _LUA_NUM
    + """
local total, count = 0, 0
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local t, c = string.match(old, '^(%S+) (%S+)$')
  total, count = tonumber(t), tonumber(c)
end
local cell = num(total + tonumber(ARGV[2])) .. ' ' .. string.format('%d', count + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], ARGV[1], cell)
redis.call('SADD', KEYS[2], ARGV[4])
return cell
"""
)

# KEYS: breakers.  ARGV: model, expected ('' = closed), new ('' = closed)
_SWAP_BREAKER = """
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return 1
"""

# KEYS: budget keys (k), then their hold hashes (k).
# ARGV: amount, k limits, k ttls (ms, 0 = none), hold ('' = none), now, expiry ('-' = none),
#       lease (ms, 0 = none)
# Returns 0 when reserved, else the 1-based index of the first limit that refuses.
_RESERVE = (
    _LUA_NUM
    + """
local amount, k = tonumber(ARGV[1]), #KEYS / 2
local hold, now = ARGV[2 + 2 * k], tonumber(ARGV[3 + 2 * k])
local expiry, lease = ARGV[4 + 2 * k], tonumber(ARGV[5 + 2 * k])
for i = 1, k do
  local spent = spending(KEYS[i], KEYS[k + i], now, true)
  if spent + amount > tonumber(ARGV[1 + i]) + 1e-12 then return i end
end
for i = 1, k do
  local ttl = tonumber(ARGV[1 + k + i])
  if hold == '' then
    put(KEYS[i], num(tonumber(redis.call('GET', KEYS[i]) or '0') + amount), ttl)
  else
    local holds = KEYS[k + i]
    local existed = redis.call('EXISTS', holds) == 1
    redis.call('HSET', holds, hold, num(amount) .. ' ' .. expiry)
    -- The hash lives as long as its longest-lived hold could: never shortened.
    local want = math.max(lease, ttl)
    if lease == 0 and ttl == 0 then want = 0 end
    local current = redis.call('PTTL', holds)
    if want == 0 then
      if current >= 0 then redis.call('PERSIST', holds) end
    elseif not existed or (current >= 0 and current < want) then
      redis.call('PEXPIRE', holds, want)
    end
  end
end
return 0
"""
)

# KEYS: budget keys (k), then their hold hashes (k).
# ARGV: reserved, actual, k ttls (ms, 0 = none), hold ('' = none)
_SETTLE = (
    _LUA_NUM
    + """
local reserved, actual, k = tonumber(ARGV[1]), tonumber(ARGV[2]), #KEYS / 2
local hold = ARGV[3 + k]
for i = 1, k do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  if hold == '' then
    spent = spent - reserved + actual
    if spent < 0 then spent = 0 end
  else
    redis.call('HDEL', KEYS[k + i], hold)
    spent = spent + actual
  end
  put(KEYS[i], num(spent), tonumber(ARGV[2 + i]))
end
return 0
"""
)


def _text(value: Any) -> str:
    """A reply value as text (clients may or may not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    text = "" if value is None else _text(value)
    return float(text) if text else None


def _arg(value: float) -> str:
    """A float as an exact Lua number literal (``repr`` round-trips; infinities spelled out)."""
    value = float(value) + 0.0  # -0.0 -> 0.0
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return repr(value)


def _ms(seconds: float | None) -> int:
    """A TTL in whole milliseconds for Lua (0 = never expires)."""
    return 0 if seconds is None or seconds <= 0 else max(1, round(seconds * 1000))


def encode_breaker(breaker: BreakerState) -> str:
    """The stored form of a breaker; ``""`` for the default closed one (never stored).

    Encoding is canonical (``repr`` of floats), so equal breakers encode equally
    and the compare-and-set can compare strings on the server. Closed breakers
    other than the default one encode to a value that is never stored, so a
    compare-and-set expecting them fails, as in memory.
    """
    if breaker == BreakerState():
        return ""
    return f"{breaker.state}|{_arg(breaker.until)}|{int(breaker.probes)}|{breaker.reason}"


def decode_breaker(stored: str) -> BreakerState:
    """Inverse of :func:`encode_breaker`."""
    if not stored:
        return BreakerState()
    state, until, probes, reason = stored.split("|", 3)
    if state not in _BREAKER_STATES:
        raise ValueError(f"stored breaker {stored!r}: unknown state {state!r}")
    kind = cast(Literal["closed", "open", "half_open"], state)
    return BreakerState(kind, until=float(until), reason=reason, probes=int(probes))


def _stats(fields: Sequence[str]) -> ModelStats:
    """Stats from the stored fields (``_STATS_FIELDS`` order, text, ``""`` for none)."""
    calls, errors, ewma, p95, streak, started, last = fields
    return ModelStats(
        calls=int(calls),
        errors=int(errors),
        ewma_latency_ms=float(ewma) if ewma else None,
        p95_latency_ms=float(p95) if p95 else None,
        consecutive_failures=int(streak),
        streak_started_at=float(started) if started else None,
        last_error=last or None,
    )


def _cell(stored: Any) -> QualityCell:
    total, count = _text(stored).split(" ")
    return QualityCell(float(total), int(count))


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A flat ``[field, value, ...]`` reply (HGETALL inside Lua) as a dict."""
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


class _Guarded:
    """A registered Lua script whose Redis errors become :class:`StateError` (named)."""

    __slots__ = ("_errors", "_name", "_script")

    def __init__(self, script: AsyncScript, name: str) -> None:
        from redis.exceptions import RedisError  # the redis extra is there: a client exists

        self._script = script
        self._name = name
        self._errors = RedisError

    async def __call__(self, *, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await self._script(keys=keys, args=args)
        except self._errors as exc:
            detail = f"{type(exc).__name__}: {exc}"
            raise StateError(f"routing state (Redis) failed in {self._name}: {detail}") from exc


class RedisRoutingState:
    """`RoutingState` in Redis, shared by every process using the same prefix.

    Args:
        client: A ``redis.asyncio.Redis`` client (responses decoded or not).
        prefix: Namespace of every key of this routing view.
        ewma_alpha: Weight of the newest latency in the moving average.
        window: Latencies kept per model for the p95.
        clock: Epoch-seconds clock (injectable for tests); times come from the
            callers, as in memory, so a test clock works across processes.
        stats_ttl_s: A model's statistics expire this long after its last
            recorded call (``None``: never); a model unused that long is
            measured afresh.
        run_ttl_s: A ``run:{id}`` budget expires this long after its last write
            (``None``: never). A resumed run re-seeds its spending from its
            checkpoint, so nothing needed is lost.
        counter_ttl_s: Round-robin counters expire this long after their last use.
        owns_client: Close ``client`` in :meth:`aclose`.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        ewma_alpha: float = 0.2,
        window: int = 100,
        clock: Callable[[], float] = time.time,
        stats_ttl_s: float | None = _DAY,
        run_ttl_s: float | None = 7 * _DAY,
        counter_ttl_s: float | None = _DAY,
        owns_client: bool = False,
    ) -> None:
        if not 0 < ewma_alpha <= 1:
            raise ValueError(f"ewma_alpha must be in (0, 1], got {ewma_alpha}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.client = client
        self.prefix = prefix
        self._alpha = _arg(ewma_alpha)
        self._window = window
        self._clock = clock
        self._stats_ttl = _ms(stats_ttl_s)
        self._run_ttl = _ms(run_ttl_s)
        self._counter_ttl = _ms(counter_ttl_s)
        self._owns = owns_client
        self._breakers = f"{prefix}breakers"
        self._tasks = f"{prefix}tasks"
        self._snapshot = _Guarded(client.register_script(_SNAPSHOT), "snapshot")
        self._observe = _Guarded(client.register_script(_OBSERVE), "observe")
        self._add_quality = _Guarded(client.register_script(_ADD_QUALITY), "add_quality")
        self._swap = _Guarded(client.register_script(_SWAP_BREAKER), "swap_breaker")
        self._reserve = _Guarded(client.register_script(_RESERVE), "reserve")
        self._settle = _Guarded(client.register_script(_SETTLE), "settle")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout_s: float | None = DEFAULT_POOL_TIMEOUT_S,
        **options: Any,
    ) -> RedisRoutingState:
        """A state over a new client for ``url`` (``redis://``, ``rediss://``, ``unix://``).

        The client draws on one *blocking* pool of at most ``max_connections``:
        a command that finds every connection busy waits up to
        ``pool_timeout_s`` for one (``None``: as long as it takes) instead of
        failing, so any number of concurrent runs in one process share the pool
        (redis-py's default pool raises ``Too many connections`` past 100).
        ``options`` are this class's keyword arguments; the client and its
        pool are closed by :meth:`aclose`. No connection is made until the
        first command.

        Raises:
            ImportError: The ``redis`` extra is not installed.
            ValueError: ``max_connections`` below 1 or a negative timeout.
        """
        from redis.asyncio import BlockingConnectionPool, Redis

        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if pool_timeout_s is not None and pool_timeout_s <= 0:
            raise ValueError(f"pool_timeout_s must be positive (or none), got {pool_timeout_s}")
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_timeout_s, decode_responses=True
        )
        return cls(Redis.from_pool(pool), owns_client=True, **options)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    def _budget_ttl(self, key: str) -> int:
        return self._run_ttl if key.startswith("run:") else 0

    async def ping(self) -> None:
        """Check the server answers (raises the client's connection error if not)."""
        await cast(Any, self.client).ping()

    async def aclose(self) -> None:
        """Close the client if this state created it."""
        if self._owns:
            await self.client.aclose()

    async def clear(self) -> int:
        """Delete every key under this state's prefix; returns how many were deleted."""
        pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix) + "*"
        deleted = 0
        batch: list[Any] = []
        async for key in self.client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(await self.client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(await self.client.unlink(*batch))
        return deleted

    async def snapshot(
        self,
        models: Sequence[str],
        *,
        task: str | None = None,
        budget_keys: Sequence[str] = (),
        counter: str | None = None,
    ) -> Snapshot:
        """Read what a decision needs (and increment ``counter``) in one script."""
        keys = [self._breakers]
        if task is not None:
            keys.append(self._key("quality", task))
        if counter is not None:
            keys.append(self._key("counter", counter))
        keys.extend(self._key("stats", m) for m in models)
        keys.extend(self._budget_keys(budget_keys))
        now = self._clock()
        args = (
            len(models),
            len(budget_keys),
            int(task is not None),
            int(counter is not None),
            self._counter_ttl,
            _arg(now),
        )
        reply = json.loads(await self._snapshot(keys=keys, args=args))
        breakers, quality, count, stats, spent = reply
        # cjson writes an empty Lua table as an object ({}); every table here is a list.
        return Snapshot(
            stats={m: _stats(f) for m, f in zip(models, stats or (), strict=True) if f},
            breakers={m: decode_breaker(b) for m, b in _pairs(breakers or ()).items()},
            quality={m: _cell(c) for m, c in _pairs(quality or ()).items()},
            spent={k: _float(v) or 0.0 for k, v in zip(budget_keys, spent or (), strict=True)},
            counter=None if count is False else int(count),
            now=now,
        )

    async def observe(
        self,
        model: str,
        *,
        latency_ms: float | None,
        error: str | None,
        failure_window_s: float = 60.0,
    ) -> ModelStats:
        """Update counts, the failure streak, the latency EWMA and the p95 window atomically."""
        fields = await self._observe(
            keys=[self._key("stats", model), self._key("lat", model)],
            args=[
                "" if latency_ms is None or error is not None else _arg(latency_ms),
                error if error is not None else "",
                _arg(failure_window_s),
                _arg(self._clock()),
                self._alpha,
                self._window,
                self._stats_ttl,
            ],
        )
        return _stats([_text(f) for f in fields])

    async def add_quality(self, task: str, model: str, total: float, count: int = 1) -> QualityCell:
        """Accumulate quality observations atomically."""
        cell = await self._add_quality(
            keys=[self._key("quality", task), self._tasks],
            args=[model, _arg(total), int(count), task],
        )
        return _cell(cell)

    async def quality_table(self) -> Mapping[str, Mapping[str, QualityCell]]:
        """Every observed cell (two round trips: the task set, then each task's cells)."""
        tasks = sorted(_text(t) for t in await cast(Any, self.client).smembers(self._tasks))
        if not tasks:
            return {}
        async with self.client.pipeline(transaction=True) as pipe:
            for task in tasks:
                pipe.hgetall(self._key("quality", task))
            tables = await pipe.execute()
        return {
            task: {_text(m): _cell(c) for m, c in cells.items()}
            for task, cells in zip(tasks, tables, strict=True)
            if cells
        }

    async def set_breaker(self, model: str, breaker: BreakerState) -> None:
        """Store (or, when closed, forget) a breaker."""
        if breaker.state == "closed":
            await cast(Any, self.client).hdel(self._breakers, model)
        else:
            await cast(Any, self.client).hset(self._breakers, model, encode_breaker(breaker))

    async def swap_breaker(self, model: str, expected: BreakerState, new: BreakerState) -> bool:
        """Compare and set in one script (closed breakers are stored as absent)."""
        stored = "" if new.state == "closed" else encode_breaker(new)
        done = await self._swap(
            keys=[self._breakers], args=[model, encode_breaker(expected), stored]
        )
        return bool(int(done))

    async def reserve(
        self,
        limits: Sequence[tuple[str, float]],
        amount: float,
        *,
        hold: str | None = None,
        lease_s: float | None = None,
    ) -> str | None:
        """All-or-nothing reservation against every limit, in one script."""
        if not limits:
            return None
        keys = [key for key, _ in limits]
        now = self._clock()
        refused = int(
            await self._reserve(
                keys=self._budget_keys(keys),
                args=[
                    _arg(amount),
                    *(_arg(limit) for _, limit in limits),
                    *(self._budget_ttl(k) for k in keys),
                    hold or "",
                    _arg(now),
                    "-" if lease_s is None else _arg(now + lease_s),
                    _ms(lease_s),
                ],
            )
        )
        return None if refused == 0 else keys[refused - 1]

    async def settle(
        self, keys: Sequence[str], reserved: float, actual: float, *, hold: str | None = None
    ) -> None:
        """Swap the reserved amount (or the hold) for the actual cost, in one script."""
        if not keys:
            return
        await self._settle(
            keys=self._budget_keys(keys),
            args=[
                _arg(reserved),
                _arg(actual),
                *(self._budget_ttl(k) for k in keys),
                hold or "",
            ],
        )

    def _budget_keys(self, keys: Sequence[str]) -> list[str]:
        """The scripts' KEYS for budgets: each budget's total, then each one's hold hash."""
        return [*(self._key("budget", k) for k in keys), *(self._key("hold", k) for k in keys)]
