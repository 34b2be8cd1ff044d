"""Adapter for Anthropic's Messages API, over the shared ``httpx.AsyncClient``.

System messages become the top-level ``system`` field; tool results become
``tool_result`` blocks in a user turn. JSON output is obtained the way that
works on every Claude model: a single forced tool whose ``input_schema`` is the
requested schema; its input is returned as the response text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

from agentmesh._jsontext import loads as json_loads
from agentmesh.models._http import HttpModelClient, error_for_status
from agentmesh.models.client import ClientContext, Stopwatch, token_count
from agentmesh.models.errors import BadRequest, ContentFiltered
from agentmesh.models.spec import ModelSpec, expand_env
from agentmesh.models.types import (
    FinishReason,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    ToolCall,
    Usage,
    message_text,
)

__all__ = ["ANTHROPIC_VERSION", "AnthropicClient", "to_anthropic_messages"]

ANTHROPIC_VERSION = "2023-06-01"
_DEFAULT_BASE_URL = "https://api.anthropic.com"
_JSON_TOOL = "emit_json"
_FINISH: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _content_blocks(message: BaseMessage) -> list[dict[str, Any]]:
    text = message_text(message)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    if isinstance(message, AIMessage):
        blocks.extend(
            {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["args"]}
            for c in message.tool_calls
        )
    return blocks


def to_anthropic_messages(
    messages: Sequence[BaseMessage],
) -> tuple[str | None, list[dict[str, Any]]]:
    """Split langchain-core messages into Anthropic's ``system`` and ``messages``.

    Consecutive turns of the same role are merged, as the API expects
    alternating user/assistant turns.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            system.append(message_text(message))
            continue
        if isinstance(message, ToolMessage):
            role = "user"
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message_text(message),
            }
            if message.status == "error":  # the tool failed: its text is the error
                result["is_error"] = True
            blocks = [result]
        elif message.type in ("human", "ai"):
            role = "user" if message.type == "human" else "assistant"
            blocks = _content_blocks(message)
        else:
            raise BadRequest(f"message type {message.type!r} has no Anthropic role")
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return ("\n\n".join(system) or None), turns


@dataclass(slots=True)
class _Block:
    kind: str
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Accumulator:
    blocks: dict[int, _Block] = field(default_factory=dict)
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None
    done: bool = False


def _on_message_start(acc: _Accumulator, data: Mapping[str, Any]) -> str:
    message = data.get("message") or {}
    acc.model = message.get("model")
    acc.input_tokens = (message.get("usage") or {}).get("input_tokens")
    return ""


def _on_block_start(acc: _Accumulator, data: Mapping[str, Any]) -> str:
    block = data.get("content_block") or {}
    acc.blocks[int(data.get("index", 0))] = _Block(
        kind=str(block.get("type")), id=str(block.get("id", "")), name=str(block.get("name", ""))
    )
    return ""


def _on_block_delta(acc: _Accumulator, data: Mapping[str, Any]) -> str:
    target = acc.blocks.setdefault(int(data.get("index", 0)), _Block(kind="text"))
    delta = data.get("delta") or {}
    piece = str(delta.get("text") or delta.get("partial_json") or "")
    target.parts.append(piece)
    return piece if delta.get("type") == "text_delta" else ""


def _on_message_delta(acc: _Accumulator, data: Mapping[str, Any]) -> str:
    acc.stop_reason = (data.get("delta") or {}).get("stop_reason") or acc.stop_reason
    acc.output_tokens = (data.get("usage") or {}).get("output_tokens", acc.output_tokens)
    return ""


def _on_message_stop(acc: _Accumulator, data: Mapping[str, Any]) -> str:
    acc.done = True
    return ""


_STREAM_HANDLERS: Mapping[str, Callable[[_Accumulator, Mapping[str, Any]], str]] = {
    "message_start": _on_message_start,
    "content_block_start": _on_block_start,
    "content_block_delta": _on_block_delta,
    "message_delta": _on_message_delta,
    "message_stop": _on_message_stop,
}
_STREAM_ERROR_STATUS: Mapping[str, int] = {
    "overloaded_error": 529,
    "rate_limit_error": 429,
    "api_error": 500,
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
}


class AnthropicClient(HttpModelClient):
    """A Claude model served over the Messages API."""

    def __init__(self, spec: ModelSpec, ctx: ClientContext) -> None:
        api_key = ctx.api_key(spec, required=True)
        try:
            base_url = expand_env(spec.base_url or _DEFAULT_BASE_URL, dict(ctx.environ))
        except KeyError as exc:
            raise BadRequest(
                f"base_url refers to unset environment variable {exc.args[0]}", model_id=spec.id
            ) from None
        headers = {
            "content-type": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
            **spec.headers,
            "x-api-key": api_key or "",
        }
        super().__init__(
            spec,
            http=ctx.http,
            url=f"{base_url.rstrip('/')}/v1/messages",
            headers=headers,
            secrets=(api_key,),
        )

    def build_body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request``."""
        system, turns = to_anthropic_messages(request.messages)
        body: dict[str, Any] = {
            "model": self.spec.model,
            "max_tokens": request.max_tokens or self.spec.max_output_tokens,
            "messages": turns,
        }
        optional = {
            "system": system,
            "temperature": request.temperature,
            "stop_sequences": list(request.stop) or None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        tools = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
        if request.response_format is not None:
            schema = request.response_format.schema or {"type": "object"}
            tools = [
                {
                    "name": _JSON_TOOL,
                    "description": "Return the answer.",
                    "input_schema": dict(schema),
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": _JSON_TOOL}
        elif request.tool_choice in ("auto", "none"):
            body["tool_choice"] = {"type": request.tool_choice}
        elif request.tool_choice == "required":
            body["tool_choice"] = {"type": "any"}
        elif request.tool_choice:
            body["tool_choice"] = {"type": "tool", "name": request.tool_choice}
        if tools:
            body["tools"] = tools
        if stream:
            body["stream"] = True
        return body

    async def invoke(self, request: ModelRequest) -> ModelResponse:
        """Send one non-streamed Messages request."""
        watch = Stopwatch()
        data = await self.post_json(
            self.build_body(request, stream=False), read_timeout=request.timeout
        )
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise self.malformed(f"no content in response: {self.preview(data)}")
        for b in data["content"]:
            if (
                isinstance(b, dict)
                and b.get("type") == "text"
                and not isinstance(b.get("text"), str)
            ):
                raise self.malformed(f"a text block's text is not a string: {self.preview(b)}")
        blocks = [
            _Block(
                kind=str(b.get("type")),
                id=str(b.get("id", "")),
                name=str(b.get("name", "")),
                parts=[
                    str(b.get("text", ""))
                    if b.get("type") == "text"
                    else json.dumps(b.get("input", {}))
                ],
            )
            for b in data["content"]
            if isinstance(b, dict)
        ]
        usage = data.get("usage") or {}
        if not isinstance(usage, dict):
            raise self.malformed(f"usage is not an object: {self.preview(usage)}")
        return self._response(
            request,
            blocks,
            stop_reason=data.get("stop_reason"),
            model=data.get("model"),
            usage=(usage.get("input_tokens"), usage.get("output_tokens")),
            watch=watch,
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream one Messages request over SSE."""
        watch = Stopwatch()
        acc = _Accumulator()
        body = self.build_body(request, stream=True)
        async with self.post_stream(body, read_timeout=request.timeout) as events:
            async for event, data in events:
                delta = self._absorb(acc, event, self.parse_json(data))
                if delta:
                    watch.mark_first()
                    yield StreamEvent(delta=delta)
                if acc.done:
                    break
        if not acc.done:
            raise self.malformed("stream ended before message_stop")
        yield StreamEvent(
            response=self._response(
                request,
                [acc.blocks[i] for i in sorted(acc.blocks)],
                stop_reason=acc.stop_reason,
                model=acc.model,
                usage=(acc.input_tokens, acc.output_tokens),
                watch=watch,
            )
        )

    def _absorb(self, acc: _Accumulator, event: str, data: Any) -> str:
        """Fold one stream event into ``acc``; return its text delta."""
        if not isinstance(data, dict):
            raise self.malformed(f"stream event {event!r} is not an object")
        kind = str(data.get("type", event))
        if kind == "error":
            error = data.get("error") or {}
            status = _STREAM_ERROR_STATUS.get(str(error.get("type")), 500)
            raise error_for_status(
                status, json.dumps(data), {}, spec=self.spec, secrets=self._secrets
            )
        handler = _STREAM_HANDLERS.get(kind)
        return handler(acc, data) if handler is not None else ""

    def _response(
        self,
        request: ModelRequest,
        blocks: list[_Block],
        *,
        stop_reason: str | None,
        model: str | None,
        usage: tuple[object, object],
        watch: Stopwatch,
    ) -> ModelResponse:
        if stop_reason == "refusal":
            raise self.error(ContentFiltered, "the model refused to answer (stop_reason=refusal)")
        if not any(b.kind in ("text", "tool_use") for b in blocks):
            raise self.malformed("the answer has no text and no tool use (empty content)")
        text = "".join("".join(b.parts) for b in blocks if b.kind == "text")
        calls = tuple(self._tool_call(b) for b in blocks if b.kind == "tool_use")
        finish = _FINISH.get(stop_reason or "", "unknown")
        if request.response_format is not None:
            json_calls = [c for c in calls if c.name == _JSON_TOOL]
            if not json_calls:
                raise self.malformed("the model did not return the requested JSON")
            text, calls, finish = json.dumps(dict(json_calls[0].arguments)), (), "stop"
        input_tokens, output_tokens = usage
        if input_tokens is None or output_tokens is None:
            raise self.malformed("response carries no usage")
        counts = (
            token_count(input_tokens, "input_tokens"),
            token_count(output_tokens, "output_tokens"),
        )
        for counted_one in counts:
            if isinstance(counted_one, str):
                raise self.malformed(counted_one)
        counted = Usage(int(counts[0]), int(counts[1]))
        return self.respond(
            text=text,
            tool_calls=calls,
            usage=counted,
            finish_reason=finish,
            served_model=model,
            watch=watch,
        )

    def _tool_call(self, block: _Block) -> ToolCall:
        raw = "".join(block.parts) or "{}"
        try:
            arguments = json_loads(raw)
        except ValueError:
            raise self.malformed(
                f"tool_use {block.name!r} input is not JSON: {self.preview(raw)}"
            ) from None
        if not isinstance(arguments, dict):
            raise self.malformed(f"tool_use {block.name!r} input is not an object")
        return ToolCall(id=block.id, name=block.name, arguments=arguments)
