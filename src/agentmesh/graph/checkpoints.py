"""Checkpointers by URL: ``memory``, ``sqlite:PATH``, ``postgres://...`` (extra ``postgres``).

Runs are checkpointed after every LangGraph step, so a run that died resumes
(``agentmesh run --resume RUN_ID``) from its last completed step: finished
nodes, and finished branches of a fan-out, are not called (or paid) again.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from agentmesh._redact import redact_url, scrub_credentials

__all__ = ["CHECKPOINTERS", "CheckpointError", "open_checkpointer"]


class CheckpointError(ValueError):
    """An unknown or unusable checkpoint URL."""


@asynccontextmanager
async def _memory(_: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    yield InMemorySaver()


_PROBE: Any = {"configurable": {"thread_id": "agentmesh-store-check", "checkpoint_ns": ""}}
"""A read of a thread no run uses: proves the store answers before the first model call."""


def _prepare_file(path: Path, where: str) -> None:
    """Refuse a directory as the database; create the folder of a new file."""
    if path.is_dir():
        raise CheckpointError(f"{where}: is a directory, not a database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"{where}: cannot create its folder: {exc}") from None


@asynccontextmanager
async def _sqlite(target: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    import sqlite3

    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if not target:
        raise CheckpointError("sqlite: needs a path (sqlite:runs.db)")
    where = f"checkpoint sqlite:{target}"
    if target != ":memory:":
        _prepare_file(Path(target), where)
    async with AsyncExitStack() as stack:
        try:
            saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(target))
            await saver.setup()
            await saver.aget_tuple(_PROBE)
        except (sqlite3.Error, OSError) as exc:
            raise CheckpointError(f"{where}: not a usable SQLite database: {exc}") from None
        yield saver


_SETUP_LOCK = 0x6167656E746D6573  # "agentmes": the advisory lock held while setting up tables


@asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    try:
        module = importlib.import_module("langgraph.checkpoint.postgres.aio")
    except ImportError:
        raise CheckpointError(
            "postgres checkpoints need the extra: pip install 'agentmesh[postgres]'"
        ) from None
    from psycopg import Error as PostgresError

    where = f"checkpoint {redact_url(url)}"
    async with AsyncExitStack() as stack:
        try:
            saver = await stack.enter_async_context(module.AsyncPostgresSaver.from_conn_string(url))
            await _setup_once(saver)
            await saver.aget_tuple(_PROBE)
        except (PostgresError, OSError) as exc:
            detail = scrub_credentials(str(exc).strip() or type(exc).__name__)
            raise CheckpointError(f"{where}: cannot use PostgreSQL: {detail}") from None
        yield saver


async def _setup_once(saver: Any, wait_s: float = 60.0) -> None:
    """Run the saver's migrations holding a database-wide advisory lock.

    Workers starting together would all run the first-time migrations and all but
    one fail (duplicate tables and rows). The lock is *tried* in a loop rather
    than waited for: a session blocked in ``pg_advisory_lock`` is an open
    transaction, which the migrations' ``CREATE INDEX CONCURRENTLY`` waits for
    (a deadlock). A dead holder's session lock goes with its connection.
    """
    from psycopg.rows import tuple_row

    deadline = time.monotonic() + wait_s
    async with saver.conn.cursor(row_factory=tuple_row) as cursor:
        while True:
            await cursor.execute("SELECT pg_try_advisory_lock(%s)", (_SETUP_LOCK,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                break
            if time.monotonic() > deadline:
                raise CheckpointError(f"postgres checkpoints: setup still locked after {wait_s} s")
            await asyncio.sleep(0.05)
        try:
            await saver.setup()
        finally:
            await cursor.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))


Opener = Callable[[str], AbstractAsyncContextManager[BaseCheckpointSaver[Any]]]

CHECKPOINTERS: Mapping[str, Opener] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
    "postgresql": _postgres,
}
"""Openers by URL scheme."""


def open_checkpointer(url: str) -> AbstractAsyncContextManager[BaseCheckpointSaver[Any]]:
    """Open the checkpointer ``url`` names (use ``async with``).

    Raises:
        CheckpointError: Unknown scheme; or, on entering, a store that cannot
            be used (a corrupt SQLite file, a directory, an unreachable or
            refusing PostgreSQL), checked before any run starts.
    """
    scheme, _, rest = url.partition(":")
    opener = CHECKPOINTERS.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}:" for s in CHECKPOINTERS)
        raise CheckpointError(
            f"checkpoint {redact_url(url)!r}: unknown kind {scheme!r}; use {known}"
        )
    return opener(url if scheme.startswith("postgres") else rest)
