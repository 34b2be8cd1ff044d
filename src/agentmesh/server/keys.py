"""Virtual keys: who may call the server, which models, how often, for how much.

A key is printed once at creation (``am-<id>.<secret>``); the store keeps only
the SHA-256 of the whole key (the secret is 256 random bits, so a fast hash
is as strong as a slow one) and looks keys up by that hash. Per-key limits
are enforced **atomically across processes** by the store itself, in one
transaction each:

- **budget**: a request reserves its worst-case cost as a *hold* (with a lease,
  so a process killed mid-call frees it by itself) only if settled spending
  plus live holds plus the new one fit the budget; settling replaces the hold
  by the actual cost. So concurrent requests on any number of workers cannot
  overshoot by more than one in-flight worst case's estimate error;
- **rpm**: a fixed one-minute window counter per key, incremented and checked
  in one statement;
- **models**: ``fnmatch`` patterns over the ``model`` field (``sim-*``, ``graph:*``).

Two stores behind one :class:`KeyStore` contract, chosen by URL scheme
(:data:`KEY_STORES`): ``sqlite:PATH`` (default; ``BEGIN IMMEDIATE`` serialises
writers across processes on one machine) and ``postgresql://...`` (extra
``postgres``; a row lock on the key).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import secrets
import sqlite3
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "KEY_STORES",
    "KeyStoreError",
    "KeyRecord",
    "KeySpec",
    "KeyStore",
    "PostgresKeyStore",
    "SqliteKeyStore",
    "open_key_store",
]

PREFIX = "am-"
HOLD_LEASE_S = 600.0
"""How long a reservation counts as spent if its request never settles (a killed process)."""


class KeyStoreError(ValueError):
    """A key store URL or a key operation is invalid (names what and why)."""


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key may do.

    Attributes:
        name: A label for people (``team-a``).
        budget_usd: Total spend allowed; ``None`` for no limit.
        models: ``fnmatch`` patterns of allowed ``model`` values; empty allows all.
        rpm: Requests per minute allowed; ``None`` for no limit.
        expires_at: Epoch seconds after which the key is refused; ``None`` never.
    """

    name: str = ""
    budget_usd: float | None = None
    models: tuple[str, ...] = ()
    rpm: int | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key (never its secret).

    Attributes:
        id: The key's public id (the ``key`` label of metrics).
        spec: Its limits.
        spent_usd: Settled spending.
        held_usd: Live reservations of requests in flight.
        created_at: Epoch seconds.
        revoked_at: Epoch seconds, when revoked.
    """

    id: str
    spec: KeySpec
    spent_usd: float
    held_usd: float
    created_at: float
    revoked_at: float | None

    def allows(self, model: str) -> bool:
        """Whether the key may call ``model``."""
        return not self.spec.models or any(fnmatch.fnmatchcase(model, p) for p in self.spec.models)

    def usable(self, now: float) -> str | None:
        """Why the key cannot be used now, or ``None``."""
        if self.revoked_at is not None:
            return "the key was revoked"
        if self.spec.expires_at is not None and now >= self.spec.expires_at:
            return "the key has expired"
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``keys list --json``)."""
        return {
            "id": self.id,
            "name": self.spec.name,
            "budget_usd": self.spec.budget_usd,
            "spent_usd": self.spent_usd,
            "held_usd": self.held_usd,
            "models": list(self.spec.models),
            "rpm": self.spec.rpm,
            "expires_at": self.spec.expires_at,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS agentmesh_keys (
        id TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
        budget_usd DOUBLE PRECISION, models TEXT NOT NULL, rpm INTEGER,
        expires_at DOUBLE PRECISION, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION, spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS agentmesh_key_holds (
        id TEXT PRIMARY KEY, key_id TEXT NOT NULL, amount DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS agentmesh_key_minutes (
        key_id TEXT NOT NULL, minute BIGINT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (key_id, minute))""",
)
_COLUMNS = "id, name, budget_usd, models, rpm, expires_at, created_at, revoked_at, spent_usd"
_HELD = "SELECT COALESCE(SUM(amount), 0) FROM agentmesh_key_holds WHERE key_id = ? AND expires > ?"


def _record(row: Sequence[Any], held: float) -> KeyRecord:
    key_id, name, budget, models, rpm, expires, created, revoked, spent = row
    spec = KeySpec(str(name), budget, tuple(json.loads(models)), rpm, expires)
    return KeyRecord(str(key_id), spec, float(spent), float(held), float(created), revoked)


class KeyStore(ABC):
    """Where keys live; every method is one atomic transaction of the store.

    Subclasses implement :meth:`_run`, which runs a function over a DB-API
    cursor inside one write transaction (serialised with every other process).
    """

    placeholder = "?"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    @abstractmethod
    async def _run(self, work: Callable[[Any], Any]) -> Any:
        """Run ``work(cursor)`` in one transaction; commit unless it raises."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def now(self) -> float:
        """The store's clock (epoch seconds)."""
        return self._clock()

    def _q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    async def create(self, spec: KeySpec) -> tuple[str, KeyRecord]:
        """Store a new key; returns the key (shown once) and its record."""
        key_id = uuid.uuid4().hex[:12]
        key = f"{PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
        now = self._clock()

        def work(cur: Any) -> None:
            cur.execute(
                self._q(
                    "INSERT INTO agentmesh_keys (id, hash, name, budget_usd, models, rpm, "
                    "expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (
                    key_id,
                    hash_key(key),
                    spec.name,
                    spec.budget_usd,
                    json.dumps(list(spec.models)),
                    spec.rpm,
                    spec.expires_at,
                    now,
                ),
            )

        await self._run(work)
        return key, KeyRecord(key_id, spec, 0.0, 0.0, now, None)

    def _read(self, cur: Any, where: str, value: str, now: float) -> KeyRecord | None:
        cur.execute(self._q(f"SELECT {_COLUMNS} FROM agentmesh_keys WHERE {where} = ?"), (value,))
        row = cur.fetchone()
        if row is None:
            return None
        cur.execute(self._q(_HELD), (row[0], now))
        return _record(row, cur.fetchone()[0])

    async def lookup(self, key: str) -> KeyRecord | None:
        """The record of ``key`` (as a client sent it), or ``None`` if unknown."""
        now = self._clock()
        found: KeyRecord | None = await self._run(
            lambda cur: self._read(cur, "hash", hash_key(key), now)
        )
        return found

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record of key ``key_id``, or ``None``."""
        now = self._clock()
        found: KeyRecord | None = await self._run(lambda cur: self._read(cur, "id", key_id, now))
        return found

    async def list(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        now = self._clock()

        def work(cur: Any) -> list[KeyRecord]:
            cur.execute(f"SELECT {_COLUMNS} FROM agentmesh_keys ORDER BY created_at, id")
            rows = cur.fetchall()
            out = []
            for row in rows:
                cur.execute(self._q(_HELD), (row[0], now))
                out.append(_record(row, cur.fetchone()[0]))
            return out

        records: list[KeyRecord] = await self._run(work)
        return records

    async def revoke(self, key_id: str) -> bool:
        """Revoke key ``key_id``; False when there is no such (unrevoked) key."""
        now = self._clock()

        def work(cur: Any) -> bool:
            cur.execute(
                self._q(
                    "UPDATE agentmesh_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
                ),
                (now, key_id),
            )
            return bool(cur.rowcount)

        done: bool = await self._run(work)
        return done

    async def admit(self, key_id: str, rpm: int) -> float | None:
        """Count one request against ``rpm``; ``None`` if admitted, else seconds to wait."""
        now = self._clock()
        minute = int(now // 60)

        def work(cur: Any) -> int:
            cur.execute(
                self._q(
                    "INSERT INTO agentmesh_key_minutes (key_id, minute, count) VALUES (?, ?, 1) "
                    "ON CONFLICT (key_id, minute) DO UPDATE SET "
                    "count = agentmesh_key_minutes.count + 1 RETURNING count"
                ),
                (key_id, minute),
            )
            count = int(cur.fetchone()[0])
            cur.execute(
                self._q("DELETE FROM agentmesh_key_minutes WHERE key_id = ? AND minute < ?"),
                (key_id, minute),
            )
            return count

        count: int = await self._run(work)
        return None if count <= rpm else (minute + 1) * 60 - now

    async def reserve(self, key_id: str, amount: float) -> tuple[str | None, float]:
        """Hold ``amount`` against the key's budget if it fits; ``(hold id or None, remaining)``.

        A key without a budget always fits (the hold is still made, for the record).
        """
        now = self._clock()
        hold = uuid.uuid4().hex

        def work(cur: Any) -> tuple[str | None, float]:
            lock = "" if self.placeholder == "?" else " FOR UPDATE"
            cur.execute(
                self._q(f"SELECT budget_usd, spent_usd FROM agentmesh_keys WHERE id = ?{lock}"),
                (key_id,),
            )
            budget, spent = cur.fetchone()
            cur.execute(self._q(_HELD), (key_id, now))
            held = float(cur.fetchone()[0])
            remaining = float("inf") if budget is None else budget - spent - held
            if amount > remaining:
                return None, max(remaining, 0.0)
            cur.execute(
                self._q("DELETE FROM agentmesh_key_holds WHERE key_id = ? AND expires <= ?"),
                (key_id, now),
            )
            cur.execute(
                self._q(
                    "INSERT INTO agentmesh_key_holds (id, key_id, amount, expires) "
                    "VALUES (?, ?, ?, ?)"
                ),
                (hold, key_id, amount, now + HOLD_LEASE_S),
            )
            return hold, remaining - amount

        result: tuple[str | None, float] = await self._run(work)
        return result

    async def settle(self, key_id: str, hold: str, cost_usd: float) -> None:
        """Replace hold ``hold`` by the request's actual cost."""

        def work(cur: Any) -> None:
            cur.execute(self._q("DELETE FROM agentmesh_key_holds WHERE id = ?"), (hold,))
            cur.execute(
                self._q("UPDATE agentmesh_keys SET spent_usd = spent_usd + ? WHERE id = ?"),
                (cost_usd, key_id),
            )

        await self._run(work)


class SqliteKeyStore(KeyStore):
    """Keys in a SQLite file; writers from every process are serialised by ``BEGIN IMMEDIATE``."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = asyncio.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._conn.isolation_level = None  # explicit transactions below
        self._conn.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            self._conn.execute(statement)

    def _transaction(self, work: Callable[[Any], Any]) -> Any:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            result = work(cur)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return result

    async def _run(self, work: Callable[[Any], Any]) -> Any:
        async with self._lock:  # one connection: one transaction at a time in this process
            return await asyncio.to_thread(self._transaction, work)

    async def aclose(self) -> None:
        """Close the connection."""
        self._conn.close()


class PostgresKeyStore(KeyStore):
    """Keys in PostgreSQL (extra ``postgres``); a budget check locks the key's row.

    Transactions run on a small pool of synchronous psycopg connections in
    worker threads, the same cursor code as SQLite's.
    """

    placeholder = "%s"

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        try:
            import psycopg_pool
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover - depends on the extras
            raise KeyStoreError(
                "PostgreSQL keys need the 'postgres' extra: pip install 'agentmesh[postgres]'"
            ) from exc
        import psycopg

        from agentmesh.routing.stores import redacted

        try:
            self._pool = ConnectionPool(url, min_size=1, max_size=4, open=True, timeout=10)
            with self._pool.connection() as conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise KeyStoreError(f"key store {redacted(url)}: {exc}") from None

    def _transaction(self, work: Callable[[Any], Any]) -> Any:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            return work(cur)

    async def _run(self, work: Callable[[Any], Any]) -> Any:
        return await asyncio.to_thread(self._transaction, work)

    async def aclose(self) -> None:
        """Close the pool."""
        await asyncio.to_thread(self._pool.close)


def _sqlite(target: str) -> KeyStore:
    if not target:
        raise KeyStoreError("sqlite: needs a path (sqlite:.agentmesh/keys.db)")
    return SqliteKeyStore(target)


def _postgres(target: str) -> KeyStore:
    return PostgresKeyStore(target)


KEY_STORES: Mapping[str, Callable[[str], KeyStore]] = MappingProxyType(
    {"sqlite": _sqlite, "postgresql": _postgres, "postgres": _postgres}
)
"""Key stores by URL scheme (``sqlite:PATH``, ``postgresql://...``)."""


def open_key_store(url: str) -> KeyStore:
    """The key store of ``url``.

    Raises:
        KeyStoreError: An unknown scheme, naming the known ones.
    """
    scheme, _, rest = url.partition(":")
    factory = KEY_STORES.get(scheme)
    if factory is None:
        raise KeyStoreError(f"--keys {url!r}: expected sqlite:PATH or postgresql://...")
    return factory(rest if scheme == "sqlite" else url)
