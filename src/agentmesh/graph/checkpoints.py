"""Checkpointers by URL: ``memory``, ``sqlite:PATH``, ``postgres://...`` (extra ``postgres``).

Runs are checkpointed after every LangGraph step, so a run that died resumes
(``agentmesh run --resume RUN_ID``) from its last completed step: finished
nodes, and finished branches of a fan-out, are not called (or paid) again.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

__all__ = ["CHECKPOINTERS", "CheckpointError", "open_checkpointer"]


class CheckpointError(ValueError):
    """An unknown or unusable checkpoint URL."""


@asynccontextmanager
async def _memory(_: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    yield InMemorySaver()


@asynccontextmanager
async def _sqlite(target: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    if not target:
        raise CheckpointError("sqlite: needs a path (sqlite:runs.db)")
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(target) as saver:
        yield saver


@asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    try:
        module = importlib.import_module("langgraph.checkpoint.postgres.aio")
    except ImportError:
        raise CheckpointError(
            "postgres checkpoints need the extra: pip install 'agentmesh[postgres]'"
        ) from None
    async with module.AsyncPostgresSaver.from_conn_string(url) as saver:
        await saver.setup()
        yield saver


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
        CheckpointError: Unknown scheme.
    """
    scheme, _, rest = url.partition(":")
    opener = CHECKPOINTERS.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}:" for s in CHECKPOINTERS)
        raise CheckpointError(f"checkpoint {url!r}: unknown kind {scheme!r}; use {known}")
    return opener(url if scheme.startswith("postgres") else rest)
