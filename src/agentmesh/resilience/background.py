"""`BackgroundLoop`: a control that runs beside the calls (health probes, catalog reloads)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from contextlib import suppress
from types import TracebackType
from typing import Self

__all__ = ["BackgroundLoop"]


class BackgroundLoop(ABC):
    """Base of loops that ``async with`` starts as a task and cancels on exit.

    Subclasses implement :meth:`run` (forever, until cancelled).
    """

    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run(self) -> None:
        """The loop body; runs until cancelled."""

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self.run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
