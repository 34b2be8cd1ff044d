"""Adapter that serves any LangChain ``BaseChatModel`` through the `ModelClient` contract.

The chat model is either handed over in Python (``Gateway(chat_models={id: model})``)
or built from the catalog: ``target: "package.module:ClassName"`` with ``params``.

Provider SDK exceptions are mapped into the taxonomy by their HTTP status when
they carry one (OpenAI and Anthropic SDK errors do), else by the shape of their
class name (``RateLimitError``, ``APITimeoutError``, ``APIConnectionError``...).
Exceptions that match nothing (a ``TypeError`` in user code, say) propagate
unchanged: they are bugs, not outages, and must not be retried.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import Runnable

from agentmesh._jsontext import loads as json_loads
from agentmesh.models._http import error_for_status
from agentmesh.models.client import ClientContext, ModelClient, Stopwatch
from agentmesh.models.errors import (
    AuthError,
    BadRequest,
    MalformedResponse,
    ModelError,
    RateLimited,
    Timeout,
    Unavailable,
)
from agentmesh.models.openai import to_openai_tools
from agentmesh.models.spec import ModelSpec
from agentmesh.models.tokens import estimate_message_tokens, estimate_tokens
from agentmesh.models.types import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    ToolCall,
    Usage,
    message_text,
)

__all__ = ["LangChainClient", "classify_exception"]

_NAME_ERRORS: tuple[tuple[re.Pattern[str], type[ModelError]], ...] = (
    (re.compile(r"RateLimit|Throttl|TooManyRequests"), RateLimited),
    (re.compile(r"Timeout|TimedOut"), Timeout),
    (re.compile(r"Authentication|PermissionDenied|Unauthori[sz]ed"), AuthError),
    (re.compile(r"Connection|ServiceUnavailable|Overloaded|InternalServer"), Unavailable),
)
_FINISH: Mapping[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}


def classify_exception(exc: BaseException, spec: ModelSpec) -> ModelError | None:
    """The taxonomy error for an exception raised by a LangChain chat model, if any."""
    where: dict[str, Any] = {"model_id": spec.id, "provider": spec.provider.value}
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return Timeout(str(exc) or type(exc).__name__, **where)
    if isinstance(exc, httpx.TransportError):
        return Unavailable(str(exc) or type(exc).__name__, **where)
    if isinstance(exc, OutputParserException):
        return MalformedResponse(str(exc)[:300], **where)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        return error_for_status(status, str(exc), headers, spec=spec)
    name = type(exc).__name__
    for pattern, error_type in _NAME_ERRORS:
        if pattern.search(name):
            return error_type(str(exc)[:300] or name, **where)
    return None


def _load_chat_model(spec: ModelSpec) -> BaseChatModel:
    module_name, _, attr = (spec.target or "").partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"model {spec.id!r}: cannot import {module_name!r} for target {spec.target!r} "
            f"(is its package installed?)"
        ) from exc
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise BadRequest(
                f"target {spec.target!r} names nothing in {module_name}",
                model_id=spec.id,
                provider=spec.provider.value,
            )
    model = factory(**spec.params)
    if not isinstance(model, BaseChatModel):
        raise BadRequest(
            f"target {spec.target!r} built a {type(model).__name__}, not a BaseChatModel",
            model_id=spec.id,
            provider=spec.provider.value,
        )
    return model


class LangChainClient(ModelClient):
    """A LangChain chat model behind the `ModelClient` contract."""

    def __init__(self, spec: ModelSpec, ctx: ClientContext) -> None:
        super().__init__(spec)
        given = ctx.chat_models.get(spec.id)
        self.chat_model = given if given is not None else _load_chat_model(spec)

    def _runnable(self, request: ModelRequest) -> Runnable[LanguageModelInput, Any]:
        model = self.chat_model
        bound: dict[str, Any] = {}
        if request.max_tokens is not None:
            bound["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            bound["temperature"] = request.temperature
        if request.stop:
            bound["stop"] = list(request.stop)
        if request.tools:
            tools = to_openai_tools(request.tools)
            try:
                return model.bind_tools(tools, tool_choice=request.tool_choice, **bound)
            except NotImplementedError:
                raise self.error(
                    BadRequest, f"{type(model).__name__} does not support tool calling"
                ) from None
        return model.bind(**bound) if bound else model

    def _response(
        self, request: ModelRequest, message: AIMessage, watch: Stopwatch
    ) -> ModelResponse:
        text = message_text(message)
        calls = tuple(
            ToolCall(id=c.get("id") or "", name=c["name"], arguments=c["args"])
            for c in message.tool_calls
        )
        if request.response_format is not None:
            try:
                json_loads(text)
            except ValueError:
                raise self.error(
                    MalformedResponse,
                    f"JSON was requested but the answer is not JSON: {text[:80]!r}",
                ) from None
        meta = message.response_metadata or {}
        usage_meta = message.usage_metadata
        usage = (
            Usage(usage_meta["input_tokens"], usage_meta["output_tokens"])
            if usage_meta
            else Usage(
                estimate_message_tokens(request.messages), estimate_tokens(text), estimated=True
            )
        )
        finish = meta.get("finish_reason") or meta.get("stop_reason") or ""
        return self.respond(
            text=text,
            tool_calls=calls,
            usage=usage,
            finish_reason=_FINISH.get(str(finish), "tool_calls" if calls else "stop"),
            served_model=str(meta.get("model_name") or meta.get("model") or "") or None,
            watch=watch,
        )

    async def invoke(self, request: ModelRequest) -> ModelResponse:
        """Call the chat model's ``ainvoke``."""
        watch = Stopwatch()
        try:
            message = await self._runnable(request).ainvoke(list(request.messages))
        except Exception as exc:
            error = classify_exception(exc, self.spec)
            if error is None or error is exc:
                raise
            raise error from exc
        if not isinstance(message, AIMessage):
            raise self.error(
                MalformedResponse, f"chat model returned {type(message).__name__}, not an AIMessage"
            )
        return self._response(request, message, watch)

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream through the chat model's ``astream``, merging its chunks."""
        watch = Stopwatch()
        merged: AIMessageChunk | None = None
        try:
            async for chunk in self._runnable(request).astream(list(request.messages)):
                if not isinstance(chunk, AIMessageChunk):
                    continue
                merged = chunk if merged is None else merged + chunk
                delta = message_text(chunk)
                if delta:
                    watch.mark_first()
                    yield StreamEvent(delta=delta)
        except Exception as exc:
            error = classify_exception(exc, self.spec)
            if error is None or error is exc:
                raise
            raise error from exc
        if merged is None:
            raise self.error(MalformedResponse, "the chat model streamed nothing")
        final = AIMessage(
            content=merged.content,
            tool_calls=merged.tool_calls,
            usage_metadata=merged.usage_metadata,
            response_metadata=merged.response_metadata,
        )
        yield StreamEvent(response=self._response(request, final, watch))
