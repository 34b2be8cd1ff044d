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

Model statistics are read incrementally: the state keeps the view's statistics
in the process (a mirror, as of a version of the view) and a snapshot reads
only the models written since that version (the change log), so a decision
that reads every model's statistics (``least_latency``, the latency SLO filter)
costs what changed since this process's previous snapshot, not the catalog's
size, and is never stale: the script returns exactly what a full read would.
The whole stats hash is read when the mirror cannot be brought up to date: a
process's first snapshot (with ``HGETALL`` beside the script, in one
``MULTI``), after :meth:`clear`, or after more than 1,024 models expired since
the process's previous snapshot (removals are logged too, the newest 1,024).

Floats are computed in Lua (IEEE doubles, like Python) and stored with 17
significant digits, so they round-trip exactly and results equal the in-memory
state's bit for bit (Lua's own ``tostring`` keeps only 14 digits).

Keys (``agentmesh:`` is the default prefix; give each independent routing view
its own; on Redis Cluster use a hash-tagged prefix such as ``{agentmesh}:`` so
every key of a view is in one slot, as multi-key scripts require):

==================================  ========  ======================================
key                                 type      expires
==================================  ========  ======================================
``<prefix>stats``                   hash      per model, ``stats_ttl_s`` after its last
                                              call (field model: the stats, joined)
``<prefix>stats_log``               zset      with the model (model: version of its
                                              last write)
``<prefix>stats_until``             zset      never (model: when its stats expire, by
                                              the callers' clocks)
``<prefix>stats_gone``              zset      never (model: version of its removal; the
                                              newest 1,024 removals)
``<prefix>stats_meta``              hash      never (``epoch``, ``version``, ``floor``,
                                              ``layout``)
``<prefix>lat:<model>``             list      ``stats_ttl_s`` after the model's last call
                                              (newest first, ``window`` long)
``<prefix>breakers``                hash      never (a field per non-closed breaker)
``<prefix>quality:<task>``          hash      never (field model: ``"total count"``)
``<prefix>tasks``                   set       never (tasks with quality cells)
``<prefix>budget:run:<run_id>``     string    ``run_ttl_s`` after its last write
``<prefix>budget:<other key>``      string    never (``global``)
``<prefix>hold:<budget key>``       hash      its newest hold's lease, or its budget's
                                              (field hold id: ``"amount expiry"``)
``<prefix>counter:<name>``          string    ``counter_ttl_s`` after its last use
==================================  ========  ======================================

An expired model is removed by the next snapshot (with the callers' clocks, like
every time here). Statistics written by the previous layout (a hash
``<prefix>stats:<model>`` per model) are moved into the stats hash, with their
remaining TTL, by the first snapshot of a process that finds the view not yet
migrated (``layout`` unset in the meta hash); processes of the previous version
must not write the view after that (their writes would be ignored). The
mirrors rely on the stats keys staying until deleted: run Redis with
``noeviction`` or a ``volatile-*`` policy (those keys have no TTL).

``redis`` is imported only when a client is built from a URL, so importing
:mod:`agentmesh.routing` never needs it.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from agentmesh.routing.redis_scripts import (
    _ADD_QUALITY,
    _MIGRATE,
    _OBSERVE,
    _RESERVE,
    _SETTLE,
    _SNAPSHOT,
    _SWAP_BREAKER,
    _arg,
    _cell,
    _float,
    _ms,
    _pairs,
    _stats,
    _stored_stats,
    _text,
    decode_breaker,
    encode_breaker,
)
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
_MIGRATE_BATCH = 500
_STATS_KEYS = ("stats", "stats_log", "stats_until", "stats_gone", "stats_meta")
"""The stats scripts' keys (after the prefix), in the order they take them."""


@dataclass(frozen=True, slots=True)
class _Mirror:
    """The view's model statistics as this process last read them.

    ``stats`` is shared by every snapshot taken at this version and never
    mutated (a newer version is a new dict).
    """

    epoch: str
    version: int
    stats: dict[str, ModelStats]
    read_at: float
    observes: int
    """This process's observations made before the snapshot that read it."""


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
            raise self.failed(exc) from exc

    async def then_hgetall(self, key: str, *, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """The script's reply and ``HGETALL key`` after it, in one transaction."""
        try:
            async with self._script.registered_client.pipeline(transaction=True) as pipe:
                await self._script(keys=keys, args=args, client=cast(Any, pipe))
                pipe.hgetall(key)
                return await pipe.execute()
        except self._errors as exc:
            raise self.failed(exc) from exc

    def failed(self, exc: Exception) -> StateError:
        """The error naming this script."""
        detail = f"{type(exc).__name__}: {exc}"
        return StateError(f"routing state (Redis) failed in {self._name}: {detail}")


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
        stats_cache_s: A snapshot reuses the model statistics it read for this
            long in this process (0: read them every time), so it reads no
            statistics at all in between. Staleness is bounded by it: other
            processes' observations show up within ``stats_cache_s``, this
            process's own at once (an ``observe`` drops the cache). Breakers,
            counters, budgets and quality are always read fresh. Without it a
            snapshot reads only the statistics written since the previous one.
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
        stats_cache_s: float = 0.0,
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
        if stats_cache_s < 0:
            raise ValueError(f"stats_cache_s must be >= 0, got {stats_cache_s}")
        self._owns = owns_client
        self._stats_cache_s = stats_cache_s
        self._mirror: _Mirror | None = None
        self._observes = 0  # by this process (a cached mirror older than one is not reused)
        # Epoch tokens, one per script that may create the view's meta hash: never reused,
        # so a view cleared and recreated never matches a mirror of the one before.
        self._tokens = (f"{uuid.uuid4().hex}.{n}" for n in itertools.count())
        self._migrated = False  # the view was found in the current layout
        self._stats_keys = [f"{prefix}{kind}" for kind in _STATS_KEYS]
        self._breakers = f"{prefix}breakers"
        self._tasks = f"{prefix}tasks"
        self._snapshot = _Guarded(client.register_script(_SNAPSHOT), "snapshot")
        self._observe = _Guarded(client.register_script(_OBSERVE), "observe")
        self._add_quality = _Guarded(client.register_script(_ADD_QUALITY), "add_quality")
        self._swap = _Guarded(client.register_script(_SWAP_BREAKER), "swap_breaker")
        self._reserve = _Guarded(client.register_script(_RESERVE), "reserve")
        self._settle = _Guarded(client.register_script(_SETTLE), "settle")
        self._migrate = _Guarded(client.register_script(_MIGRATE), "migrate")

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
        """Read what a decision needs (and increment ``counter``) in one script.

        With ``models``, the statistics of every model of the view are returned
        (like the in-memory state, models outside ``models`` are harmless
        extras), brought up to date from the models written since this process's
        previous snapshot; with ``stats_cache_s``, statistics read less than that
        long ago are reused and the script reads none.
        """
        now = self._clock()
        if models and not self._migrated:
            await self._migrate_layout(now)
        mirror = self._mirror
        reuse = (
            mirror is not None
            and mirror.observes == self._observes
            and now - mirror.read_at < self._stats_cache_s
        )
        read = bool(models) and not reuse
        keys = [self._breakers]
        if task is not None:
            keys.append(self._key("quality", task))
        if counter is not None:
            keys.append(self._key("counter", counter))
        if read:
            keys.extend(self._stats_keys)
        keys.extend(self._budget_keys(budget_keys))
        args = (
            int(read),
            len(budget_keys),
            int(task is not None),
            int(counter is not None),
            self._counter_ttl,
            _arg(now),
            "" if mirror is None else mirror.epoch,
            0 if mirror is None else mirror.version,
            next(self._tokens),
        )
        observes = self._observes
        table = None
        if read and mirror is None:  # the first read: the hash straight, not through Lua
            text, table = await self._snapshot.then_hgetall(
                self._stats_keys[0], keys=keys, args=args
            )
        else:
            text = await self._snapshot(keys=keys, args=args)
        breakers, quality, count, delta, spent = json.loads(text)
        stats: Mapping[str, ModelStats] = {}
        if read:
            stats = self._update_mirror(mirror, delta, now, observes, table).stats
        elif models and mirror is not None:
            stats = mirror.stats
        return Snapshot(
            stats=stats,
            breakers={m: decode_breaker(b) for m, b in _pairs(breakers or ()).items()},
            quality={m: _cell(c) for m, c in _pairs(quality or ()).items()},
            spent={k: _float(v) or 0.0 for k, v in zip(budget_keys, spent or (), strict=True)},
            counter=None if count is False else int(count),
            now=now,
        )

    def _update_mirror(
        self,
        base: _Mirror | None,
        reply: list[Any],
        now: float,
        observes: int,
        table: Mapping[Any, Any] | None,
    ) -> _Mirror:
        """The mirror ``base`` brought to the version a snapshot script answered with.

        ``reply`` is ``[full, epoch, version, flat field/value pairs, removed]``:
        the whole stats hash when ``full``, else the models written and the
        models removed since ``base``'s version. The newest mirror is kept
        (concurrent snapshots of one process may answer out of order). ``table``
        is the whole hash read beside the script (a first read).
        """
        full, epoch, version, flat, removed = reply
        # cjson writes an empty Lua table as an object ({}); every table here is a list.
        flat = flat or ()
        if table is not None:
            stats = {_text(m): _stored_stats(_text(v)) for m, v in table.items()}
        elif full or base is None:
            stats = {flat[i]: _stored_stats(flat[i + 1]) for i in range(0, len(flat), 2)}
        elif flat or removed:
            stats = base.stats.copy()
            for model in removed or ():
                stats.pop(model, None)
            for i in range(0, len(flat), 2):
                stats[flat[i]] = _stored_stats(flat[i + 1])
        else:
            stats = base.stats
        mirror = _Mirror(epoch, int(version), stats, now, observes)
        current = self._mirror
        if current is None or current.epoch != epoch or current.version <= mirror.version:
            self._mirror = mirror
        return mirror

    async def _migrate_layout(self, now: float) -> None:
        """Move statistics of the previous layout (``stats:<model>`` hashes) into the stats hash.

        Once per view: the meta hash's ``layout`` says it was done. Legacy
        hashes are found with ``SCAN`` (all of them, whatever catalog wrote
        them) and moved in batches; models written since are kept as they are.
        """
        meta = self._stats_keys[4]
        if await cast(Any, self.client).hget(meta, "layout") is None:
            legacy = self._key("stats", "")
            pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in legacy) + "*"
            found = [_text(k) async for k in self.client.scan_iter(match=pattern, count=500)]
            token = next(self._tokens)
            for start in range(0, max(len(found), 1), _MIGRATE_BATCH):
                batch = found[start : start + _MIGRATE_BATCH]
                done = int(start + _MIGRATE_BATCH >= len(found))
                await self._migrate(
                    keys=[*self._stats_keys, *batch],
                    args=[_arg(now), token, done, *(k[len(legacy) :] for k in batch)],
                )
        self._migrated = True

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
            keys=[*self._stats_keys, self._key("lat", model)],
            args=[
                "" if latency_ms is None or error is not None else _arg(latency_ms),
                error if error is not None else "",
                _arg(failure_window_s),
                _arg(self._clock()),
                self._alpha,
                self._window,
                self._stats_ttl,
                model,
                next(self._tokens),
            ],
        )
        self._observes += 1  # this process sees its own observations at once
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

    async def forget_budgets(self, keys: Sequence[str]) -> None:
        """Delete the keys' totals and hold hashes (one ``DEL``)."""
        if keys:
            await cast(Any, self.client).delete(*self._budget_keys(keys))

    def _budget_keys(self, keys: Sequence[str]) -> list[str]:
        """The scripts' KEYS for budgets: each budget's total, then each one's hold hash."""
        return [*(self._key("budget", k) for k in keys), *(self._key("hold", k) for k in keys)]
