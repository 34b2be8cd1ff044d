"""Token streaming out of workflow nodes, the LangChain way.

LangGraph streams ``stream_mode="messages"`` by putting a streaming callback
handler in each node's config and listening to the chat-model callbacks
(``on_chat_model_start``, ``on_llm_new_token``, ``on_llm_end``) made inside
the node. agentmesh nodes call no LangChain chat model, so a node whose config
has such a handler (the rule LangChain's own chat models stream by) makes its
routed call with :meth:`ResilientCaller.stream` — the same attempt routine as
``call`` — and reports each delta through those callbacks itself
(:func:`routed_call`). Each model turn is one chat-model run whose metadata
names the node (``langgraph_node``, ``agentmesh_node``), the branch and round,
the model that streams (``agentmesh_model``, ``ls_model_name``) and its
attempt number (``agentmesh_attempt``, as on its ``chat`` span). The run starts
at the first token (the model that streams is only known then; a model that
failed before its first token sent nothing), so a fallback's tokens follow
with no duplicate text.

:class:`TokenHandler` is the listening side for agentmesh's own consumers
(``GraphRunner.run(on_token=...)``, ``agentmesh run --stream``): a handler
that hands each delta over as a :class:`Token`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackHandler
from langchain_core.callbacks.manager import AsyncCallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    GenerationChunk,
    LLMResult,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config

from agentmesh.graph.state import Branch
from agentmesh.resilience import Call, CallFailed, CallResult, ResilientCaller

__all__ = ["Token", "TokenHandler", "TokenListener", "routed_call", "wants_tokens"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of a node's answer as it arrives (or the end of one model turn).

    Attributes:
        node: The node streaming.
        branch: Its branch key (``""`` without fan-out).
        round: 1, or the redo number after a judge's rejection.
        model: The catalog id of the model streaming.
        attempt: That attempt's number within the node's call (as on its span).
        text: The delta (``""`` when ``last``).
        last: The model turn is over (its answer is complete, or it failed).
    """

    node: str
    branch: str
    round: int
    model: str
    attempt: int
    text: str
    last: bool = False


TokenListener = Callable[[Token], None]
"""Receives :class:`Token` events in order (``GraphRunner.run(on_token=...)``)."""


def _streams(handler: object) -> bool:
    # LangChain chat models stream when a handler is a ``_StreamingCallbackHandler``,
    # a runtime-checkable protocol of these two methods (langchain_core.tracers._streaming).
    return callable(getattr(handler, "tap_output_aiter", None)) and callable(
        getattr(handler, "tap_output_iter", None)
    )


def wants_tokens(config: RunnableConfig | None) -> bool:
    """Whether someone listens for tokens (a streaming handler in ``config``'s callbacks)."""
    callbacks = (config or {}).get("callbacks")
    if callbacks is None:
        return False
    handlers = callbacks if isinstance(callbacks, list) else callbacks.handlers
    return any(_streams(h) for h in handlers)


class _Turn:
    """One model turn reported as a LangChain chat-model run (started at its first token)."""

    def __init__(
        self, config: RunnableConfig, call: Call, caller: ResilientCaller, branch: Branch
    ) -> None:
        self.config = config
        self.call = call
        self.caller = caller
        self.branch = branch
        self.run_id = uuid.uuid4()
        self.message_id = f"lc_run--{self.run_id}"
        self.run: AsyncCallbackManagerForLLMRun | None = None
        self.streaming: tuple[str, int] | None = None

    def first_token(self, model: str, attempt: int) -> None:
        self.streaming = (model, attempt)

    async def start(self, model: str, attempt: int) -> AsyncCallbackManagerForLLMRun:
        if self.run is not None:
            return self.run
        spec = self.caller.router.catalog[model]
        node = self.call.route.node
        manager = AsyncCallbackManager.configure(
            inheritable_callbacks=self.config.get("callbacks"),
            inheritable_tags=self.config.get("tags"),
            inheritable_metadata=self.config.get("metadata"),
            local_metadata={
                "agentmesh_node": node,
                "agentmesh_branch": self.branch["key"],
                "agentmesh_round": self.branch["round"],
                "agentmesh_model": model,
                "agentmesh_attempt": attempt,
                "ls_provider": str(spec.provider),
                "ls_model_name": spec.model,
                "ls_model_type": "chat",
            },
        )
        messages: list[BaseMessage] = list(self.call.build(spec).messages)
        (self.run,) = await manager.on_chat_model_start(
            {"name": f"agentmesh:{node}"}, [messages], run_id=self.run_id, name=node
        )
        return self.run

    async def delta(self, text: str) -> None:
        model, attempt = self.streaming or ("", 0)
        run = await self.start(model, attempt)
        chunk = ChatGenerationChunk(message=AIMessageChunk(content=text, id=self.message_id))
        await run.on_llm_new_token(text, chunk=chunk)

    async def end(self, result: CallResult) -> None:
        response = result.response
        run = await self.start(*(self.streaming or (result.model, len(result.attempts))))
        message = AIMessage(
            content=response.text,
            id=self.message_id,
            tool_calls=[
                {"name": c.name, "args": dict(c.arguments), "id": c.id} for c in response.tool_calls
            ],
            response_metadata={
                "model_name": response.served_model,
                "agentmesh_model": result.model,
                "finish_reason": response.finish_reason,
            },
        )
        await run.on_llm_end(LLMResult(generations=[[ChatGeneration(message=message)]]))

    async def fail(self, error: BaseException) -> None:
        if self.run is not None:
            await self.run.on_llm_error(error)


async def routed_call(
    caller: ResilientCaller, call: Call, branch: Branch
) -> tuple[CallResult, float | None]:
    """Serve ``call`` from a node: streamed when someone listens for tokens, else plainly.

    Returns:
        The result, and when (``time.perf_counter()``) its first token came if
        it was streamed (``None`` otherwise).

    Raises:
        CallFailed: No model served it (listeners are told the turn failed).
    """
    config = var_child_runnable_config.get()
    if config is None or not wants_tokens(config):
        return await caller.call(call), None
    turn = _Turn(config, call, caller, branch)
    first: float | None = None
    try:
        async for item in caller.stream(call, on_first_token=turn.first_token):
            if isinstance(item, str):
                if first is None:
                    first = time.perf_counter()
                await turn.delta(item)
            else:
                await turn.end(item)
                return item, first
    except CallFailed as exc:
        await turn.fail(exc)
        raise
    raise AssertionError("unreachable: a stream ends with its result")  # pragma: no cover


class TokenHandler(BaseCallbackHandler):
    """A streaming callback handler passing agentmesh nodes' tokens to a listener.

    Runs inline (in the node's task), so tokens arrive in order. Chat-model
    runs without agentmesh's metadata (another LangChain model inside a
    user's function) are ignored.
    """

    run_inline = True

    def __init__(self, listener: TokenListener) -> None:
        self.listener = listener
        self._runs: dict[UUID, tuple[str, str, int, str, int]] = {}

    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[T]) -> AsyncIterator[T]:
        """Part of LangChain's streaming-handler protocol: outputs pass unchanged."""
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[T]) -> Iterator[T]:
        """Part of LangChain's streaming-handler protocol: outputs pass unchanged."""
        return output

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember which node, branch, model and attempt the run streams."""
        meta = metadata or {}
        if "agentmesh_node" in meta:
            self._runs[run_id] = (
                meta["agentmesh_node"],
                meta["agentmesh_branch"],
                meta["agentmesh_round"],
                meta["agentmesh_model"],
                meta["agentmesh_attempt"],
            )

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Pass a delta on."""
        found = self._runs.get(run_id)
        if found is not None and isinstance(token, str) and token:
            self.listener(Token(*found, text=token))

    def _ended(self, run_id: UUID) -> None:
        found = self._runs.pop(run_id, None)
        if found is not None:
            self.listener(Token(*found, text="", last=True))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """The turn is complete."""
        self._ended(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """The turn failed (its tokens so far stay sent)."""
        self._ended(run_id)
