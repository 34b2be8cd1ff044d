"""The Lua scripts of :class:`~agentmesh.routing.redis_state.RedisRoutingState`, and its codecs.

Each script is one atomic step of the routing state on the server (a snapshot,
an observation, a reservation...); the codecs turn floats, breakers, stats and
quality cells into the text Redis stores and back, exactly (``repr`` floats).
Split from ``redis_state.py``, which holds the state class itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, cast

from agentmesh.routing.state import BreakerState, ModelStats, QualityCell

__all__ = ["decode_breaker", "encode_breaker"]

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

# Stats layout: one hash (field model: "calls errors ewma p95 streak streak_at last_error",
# last_error last so it may hold spaces), a change log (zset model -> version of its last
# write), an expiry index (zset model -> caller-clock epoch seconds), the models removed
# since (zset model -> version of its removal, the newest GONE_KEPT kept) and a meta hash
# (epoch, version, floor: the newest removal forgotten, layout). A reader that holds the
# view at (epoch, version) needs only the models logged or removed after that version,
# unless the removals it missed were forgotten (floor) or the view is another (new epoch,
# the keys were cleared): then it reads the whole hash.
_GONE_KEPT = 1024

_LUA_STATS = f"""
local STATS_PATTERN = '^(%S*) (%S*) (%S*) (%S*) (%S*) (%S*) (.*)$'
local GONE_KEPT = {_GONE_KEPT}
-- Calls fn(first, last) over 1..count in slices unpack can take.
local function slices(count, fn)
  for first = 1, count, 1000 do fn(first, math.min(first + 999, count)) end
end
-- Remove models from the stats hash, the log and the expiry index, noting them as gone at
-- a new version (the oldest removals past GONE_KEPT are forgotten: floor). Returns it.
local function forget(hash, log, untils, gone, meta, models)
  local version = redis.call('HINCRBY', meta, 'version', 1)
  slices(#models, function(a, b)
    redis.call('HDEL', hash, unpack(models, a, b))
    redis.call('ZREM', log, unpack(models, a, b))
    redis.call('ZREM', untils, unpack(models, a, b))
    local marks = {{}}
    for k = a, b do marks[#marks + 1] = version; marks[#marks + 1] = models[k] end
    redis.call('ZADD', gone, unpack(marks))
  end)
  local extra = redis.call('ZCARD', gone) - GONE_KEPT
  if extra > 0 then
    local popped = redis.call('ZPOPMIN', gone, extra)
    redis.call('HSET', meta, 'floor', popped[#popped])
  end
  return version
end
"""

# KEYS: breakers, [quality], [counter], [stats, stats_log, stats_until, stats_gone, meta],
#       budgets x m, their hold hashes x m
# ARGV: has_stats, m, has_quality, has_counter, counter_ttl_ms, now, held epoch ('' none: the
#       caller reads the stats hash itself), held version, a fresh epoch token (used if the
#       view has none)
_SNAPSHOT = (
    _LUA_NUM
    + _LUA_STATS
    + """
local m = tonumber(ARGV[2])
local i = 2
local quality, counter, stats = {}, false, false
local breakers = redis.call('HGETALL', KEYS[1])
if ARGV[3] == '1' then quality = redis.call('HGETALL', KEYS[i]); i = i + 1 end
if ARGV[4] == '1' then
  counter = redis.call('INCR', KEYS[i]) - 1
  local ttl = tonumber(ARGV[5])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
  i = i + 1
end
if ARGV[1] == '1' then
  local hash, log, untils, gone, meta = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3],
                                        KEYS[i + 4]
  i = i + 5
  local dead = redis.call('ZRANGEBYSCORE', untils, '-inf', ARGV[6])
  if #dead > 0 then forget(hash, log, untils, gone, meta, dead) end
  local head = redis.call('HMGET', meta, 'epoch', 'version', 'floor')
  local epoch, version, floor = head[1], tonumber(head[2]) or 0, tonumber(head[3]) or 0
  if not epoch then epoch = ARGV[9]; redis.call('HSET', meta, 'epoch', epoch) end
  local since = tonumber(ARGV[8])
  if ARGV[7] == '' then
    stats = {1, epoch, version, false, {}}  -- the caller reads the hash (HGETALL, same MULTI)
  elseif epoch ~= ARGV[7] or since < floor then
    stats = {1, epoch, version, redis.call('HGETALL', hash), {}}
  else
    local changed = redis.call('ZRANGEBYSCORE', log, '(' .. ARGV[8], '+inf')
    local delta = {}
    slices(#changed, function(a, b)
      local values = redis.call('HMGET', hash, unpack(changed, a, b))
      for k = a, b do
        delta[#delta + 1] = changed[k]
        delta[#delta + 1] = values[k - a + 1] or ''
      end
    end)
    local removed = redis.call('ZRANGEBYSCORE', gone, '(' .. ARGV[8], '+inf')
    stats = {0, epoch, version, delta, removed}
  end
end
local spent = {}
local now = tonumber(ARGV[6])
for j = 1, m do
  spent[j] = num(spending(KEYS[i], KEYS[i + m], now, false))
  i = i + 1
end
-- One JSON string: parsed by json.loads (C) instead of ~100 nested RESP elements parsed
-- one by one by the client (halves the snapshot's cost). Every number is already a
-- string (exact), except the counter and the stats' mode and version (integers).
return cjson.encode({breakers, quality, counter, stats, spent})
"""
)

# KEYS: stats, stats_log, stats_until, stats_gone, stats_meta, latency list
# ARGV: latency_ms or '', error or '', failure_window_s, now, alpha, window, ttl_ms, model,
#       a fresh epoch token (used if the view has none)
_OBSERVE = (
    _LUA_NUM
    + _LUA_STATS
    + """
local model, now = ARGV[8], tonumber(ARGV[4])
local stored = redis.call('HGET', KEYS[1], model)
if stored then
  local expires = redis.call('ZSCORE', KEYS[3], model)
  if expires and tonumber(expires) <= now then stored = false end
end
local f = {}
if stored then
  f = {string.match(stored, STATS_PATTERN)}
else
  redis.call('DEL', KEYS[6])  -- expired or never seen: measured afresh
end
local calls = (tonumber(f[1]) or 0) + 1
local errors = tonumber(f[2]) or 0
local ewma, p95 = f[3] or '', f[4] or ''
local streak = tonumber(f[5]) or 0
local started, last = f[6] or '', f[7] or ''
if ARGV[2] ~= '' then
  errors = errors + 1
  if started == '' or now - tonumber(started) > tonumber(ARGV[3]) then
    streak, started = 1, ARGV[4]
  else
    streak = streak + 1
  end
  last = ARGV[2]
else
  streak, started = 0, ''
  if ARGV[1] ~= '' then
    local ms = tonumber(ARGV[1])
    redis.call('LPUSH', KEYS[6], ARGV[1])
    redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[6]) - 1)
    if ewma == '' then
      ewma = ARGV[1]
    else
      local e = tonumber(ewma)
      ewma = num(e + tonumber(ARGV[5]) * (ms - e))
    end
    local window = redis.call('LRANGE', KEYS[6], 0, -1)
    local sorted = {}
    for k, v in ipairs(window) do sorted[k] = tonumber(v) end
    table.sort(sorted)
    local rank = math.min(#sorted - 1, math.floor(0.95 * #sorted))
    p95 = num(sorted[rank + 1])
  end
end
local out = {tostring(calls), tostring(errors), ewma, p95, tostring(streak), started, last}
redis.call('HSET', KEYS[1], model, table.concat(out, ' '))
local version = redis.call('HINCRBY', KEYS[5], 'version', 1)
redis.call('HSETNX', KEYS[5], 'epoch', ARGV[9])
redis.call('ZADD', KEYS[2], version, model)
redis.call('ZREM', KEYS[4], model)
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('ZADD', KEYS[3], num(now + ttl / 1000), model)
  if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('PEXPIRE', KEYS[6], ttl) end
elseif not stored then
  redis.call('ZREM', KEYS[3], model)  -- a fresh entry written without a TTL never expires
end
return out
"""
)

# The layout before the stats hash: a hash per model (stats:<model>, fields by name).
# KEYS: stats, stats_log, stats_until, stats_gone, stats_meta, legacy stats hashes x k
# ARGV: now, a fresh epoch token, done ('1': mark the view migrated), models x k
# Moves each legacy hash into the stats hash (unless the model was written since), keeping
# its remaining TTL as the model's expiry, and deletes it.
_MIGRATE = (
    _LUA_NUM
    + """
local now = tonumber(ARGV[1])
redis.call('HSETNX', KEYS[5], 'epoch', ARGV[2])
for j = 6, #KEYS do
  local model = ARGV[j - 2]
  local f = redis.call('HMGET', KEYS[j], 'calls', 'errors', 'ewma', 'p95', 'streak',
                       'streak_at', 'last_error')
  if f[1] and redis.call('HEXISTS', KEYS[1], model) == 0 then
    for k = 1, 7 do f[k] = f[k] or '' end
    redis.call('HSET', KEYS[1], model, table.concat(f, ' '))
    redis.call('ZADD', KEYS[2], redis.call('HINCRBY', KEYS[5], 'version', 1), model)
    local left = redis.call('PTTL', KEYS[j])
    if left > 0 then redis.call('ZADD', KEYS[3], num(now + left / 1000), model) end
  end
  redis.call('DEL', KEYS[j])
end
if ARGV[3] == '1' then redis.call('HSET', KEYS[5], 'layout', '2') end
return 0
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


def _stored_stats(stored: str) -> ModelStats:
    """Stats from their stored form in the stats hash (fields joined by spaces)."""
    return _stats(stored.split(" ", 6))


def _cell(stored: Any) -> QualityCell:
    total, count = _text(stored).split(" ")
    return QualityCell(float(total), int(count))


def _pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A flat ``[field, value, ...]`` reply (HGETALL inside Lua) as a dict."""
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
