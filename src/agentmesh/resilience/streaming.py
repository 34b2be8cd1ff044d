"""The streaming entry point's plumbing: attempts stream, a queue carries their text out.

:meth:`ResilientCaller.stream <agentmesh.resilience.ResilientCaller.stream>`
runs the same attempt routine as ``call`` in a producer task whose attempts
call ``Gateway.stream``; the deltas of the attempt that owns the stream (the
first to send one: a hedge race's loser or a consensus member is never
streamed) go through a queue to the consumer, then the :class:`CallResult`.
The first delta commits the call (no retry, no fallback after it). A consumer
that stops reading cancels the producer, and with it the provider request.

A stream cut off after its first delta (the consumer left, the task was
cancelled, a deadline) is charged what it is known to have cost
(:func:`charge_cut_stream`): its prompt and the text streamed so far,
estimated (a provider reports usage only at a stream's end), settled through
:meth:`Router.settle_cut` so the run and global budgets see it. A call cut
before any output keeps :meth:`Router.abandon` (its hold lapses with its lease).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing, suppress
from typing import Any, cast

from agentmesh.models.errors import MalformedResponse
from agentmesh.models.gateway import Gateway, cut_usage
from agentmesh.models.types import ModelRequest, ModelResponse, StreamEvent
from agentmesh.resilience.call import Attempt, Call, CallResult, Spend
from agentmesh.resilience.run import Invoke, Run
from agentmesh.routing.router import Router
from agentmesh.routing.types import RouteDecision
from agentmesh.tracing.attributes import ATTEMPT

__all__ = ["FirstToken", "Streamed", "charge_cut_stream", "stream_call"]

Streamed = str | CallResult
"""What :meth:`ResilientCaller.stream` yields: text deltas, then the call's result."""

FirstToken = Callable[[str, int], None]
"""Told which model and attempt (number) is streamed, before its first delta."""

_Item = str | CallResult | Exception | tuple[str, int]


class _Pipe:
    """The queue between a streamed call's attempts and its consumer."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.run: Run | None = None

    async def invoke(
        self, at: Run, model: str, request: ModelRequest, attrs: Mapping[str, Any]
    ) -> ModelResponse:
        """One attempt, streamed: forward its deltas if it owns the stream."""
        run, queue = self.run, self.queue
        final: ModelResponse | None = None
        events = cast(  # the gateway's stream is an async generator: close it on exit
            "AsyncGenerator[StreamEvent, None]",
            self.gateway.stream(model, request, attributes=attrs),
        )
        async with aclosing(events) as stream:
            async for event in stream:
                if event.response is not None:
                    final = event.response
                elif event.delta and run is not None and at is run and run.claims(model):
                    # consensus members are not streamed; nor is a hedge race's loser
                    if not run.committed:
                        queue.put_nowait((model, int(attrs.get(ATTEMPT, 0))))
                    run.committed = True
                    run.streamed.append(event.delta)
                    queue.put_nowait(event.delta)
        if final is None:
            raise MalformedResponse("the stream ended without its final response", model_id=model)
        return final

    async def produce(self, run: Run, serve: Callable[[Run], Awaitable[CallResult]]) -> None:
        """Serve ``run``, then queue what the consumer has not seen: text, result or error."""
        queue = self.queue
        try:
            result = await serve(run)
        except Exception as exc:
            queue.put_nowait(exc)
            return
        if not run.committed and result.response.text:  # a consensus, or no text deltas
            queue.put_nowait((result.model, len(result.attempts)))
            queue.put_nowait(result.response.text)
        queue.put_nowait(result)


async def stream_call(
    gateway: Gateway,
    call: Call,
    start: Callable[[Call, Invoke], Run],
    serve: Callable[[Run], Awaitable[CallResult]],
    on_first_token: FirstToken | None = None,
) -> AsyncIterator[Streamed]:
    """Serve ``call`` with streamed attempts: its text deltas, then its :class:`CallResult`.

    ``start`` makes the call's run for an invoke function; ``serve`` runs the
    attempt routine on it (in a task of its own, cancelled when the consumer
    stops reading). See :meth:`ResilientCaller.stream` for the contract.
    """
    pipe = _Pipe(gateway)
    run = pipe.run = start(call, pipe.invoke)
    run.streaming = True
    task = asyncio.create_task(pipe.produce(run, serve))
    try:
        while True:
            item = await pipe.queue.get()
            if isinstance(item, Exception):
                raise item
            if isinstance(item, tuple):
                if on_first_token is not None:
                    on_first_token(*item)
                continue
            yield item
            if isinstance(item, CallResult):
                return
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


async def charge_cut_stream(
    router: Router,
    run: Run,
    decision: RouteDecision,
    model: str,
    request: ModelRequest,
    reason: str,
    waited_s: float,
) -> None:
    """Settle the streaming attempt of ``model``, cut off mid-answer, at what it generated.

    ``request`` is what the model was sent; the spend is the prompt plus the
    text streamed so far (:func:`~agentmesh.models.gateway.cut_usage`, the
    figures its ``chat`` span carries), settled on ``decision`` (its hold, or
    added to the budgets if an earlier attempt settled it) and listed as a
    ``cancelled`` attempt.
    """
    text = "".join(run.streamed)
    tokens_in, tokens_out, cost = cut_usage(router.catalog[model], request, text)
    spend = Spend(tokens_in, tokens_out, cost)
    await router.settle_cut(decision, spend.cost_usd)
    run.attempts.append(
        Attempt(
            model,
            "cancelled",
            reason,
            decision.decision_id,
            message=(
                f"cut off mid-stream after {tokens_out} output tokens "
                "(its prompt and the text streamed are charged, estimated)"
            ),
            spend=spend,
            waited_s=waited_s,
        )
    )
