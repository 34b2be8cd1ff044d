"""`SyncLoop`: run coroutines and async generators from synchronous code, on one private loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import queue
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from contextlib import aclosing, suppress
from typing import Any, TypeVar

__all__ = ["SyncLoop"]

T = TypeVar("T")

_SHUTDOWN_S = 10.0
"""Longest wait for the loop's async generators to close when it is closed."""


class SyncLoop:
    """A private event loop in a daemon thread: where sync methods run async ones.

    Started on first use and kept until :meth:`close`, so the connection pools
    of gateways used from sync code live on one loop for their whole life. Each
    call runs in a copy of the calling thread's context (OpenTelemetry spans
    nest under the caller's). A forked child starts a new loop on first use.
    """

    def __init__(self) -> None:
        self._forget()
        self._fork_hook = False  # registered when the loop first starts (most never do)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _watch_forks(self) -> None:
        if self._fork_hook:
            return
        self._fork_hook = True
        ref = weakref.ref(self)

        def forget_in_child() -> None:  # the thread does not survive a fork
            loop = ref()
            if loop is not None:
                loop._forget()

        os.register_at_fork(after_in_child=forget_in_child)

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._watch_forks()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="agentmesh-sync-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        """Stop the loop and its thread (a later call starts a new one).

        The loop's async generators are closed first, as ``asyncio.run`` does,
        so what is tied to the loop's life (the gateway's HTTP client for this
        loop) is closed with it.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            if threading.current_thread() is not thread:
                done = asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop)
                with suppress(Exception):  # a generator that fails to close: stop anyway
                    done.result(timeout=_SHUTDOWN_S)
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def _start(
        self, coro: Coroutine[Any, Any, T]
    ) -> tuple[concurrent.futures.Future[T], Callable[[], None]]:
        """Schedule ``coro`` on the loop; its future and a way to cancel it."""
        loop = self._running()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a synchronous agentmesh call (RoutedChatModel, compiled graph) made on "
                "agentmesh's own event loop would deadlock; await the async method "
                "(ainvoke, astream...) instead"
            )
        context = contextvars.copy_context()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        def settle(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                done.cancel()
            elif (error := task.exception()) is not None:
                done.set_exception(error)
            else:
                done.set_result(task.result())

        def start() -> None:
            task = loop.create_task(coro, context=context)
            tasks.append(task)
            task.add_done_callback(settle)

        def cancel() -> None:
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in tasks])

        loop.call_soon_threadsafe(start)
        return done, cancel

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        done, cancel = self._start(coro)
        try:
            return done.result()
        except BaseException:
            if not done.done():  # interrupted while waiting (KeyboardInterrupt)
                cancel()
            raise

    def iterate(self, stream: AsyncGenerator[T, None]) -> Iterator[T]:
        """Iterate ``stream`` from a sync caller; one task on the loop drives it throughout."""
        items: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

        async def pump() -> None:
            async with aclosing(stream):
                async for item in stream:
                    items.put((True, item))

        done, cancel = self._start(pump())
        done.add_done_callback(lambda _: items.put((False, None)))
        try:
            while True:
                more, item = items.get()
                if not more:
                    break
                yield item
            done.result()  # the stream's error, if it failed
        finally:
            if not done.done():  # the consumer stopped early: close the stream on the loop
                cancel()
                with suppress(BaseException):
                    done.result()
