"""OpenAI's chat-completions wire format: parsed into agentmesh requests, results written back.

Requests are validated by strict pydantic models in one pass over the JSON
(``model_validate_json``): a wrong type is a 400 naming the field, never a
coercion or a 500. Unknown top-level fields are ignored, as OpenAI-compatible
servers do (SDKs send newer parameters), and reported in the
``x-agentmesh-ignored`` response header; parameters agentmesh cannot honour
(``n`` > 1, ``logprobs``) are refused with 400 rather than silently dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentmesh._validation import describe_errors
from agentmesh.models.spec import Capability
from agentmesh.models.types import ModelRequest, ModelResponse, ResponseFormat, ToolSpec
from agentmesh.server.errors import ApiError

__all__ = [
    "ChatCompletionRequest",
    "completion_body",
    "chunk_body",
    "parse_chat_request",
    "parse_request",
    "to_messages",
    "to_model_request",
    "usage_body",
]

_FINISH = {"error": "stop", "unknown": "stop"}  # OpenAI has no such finish reasons


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


class _Function(_Wire):
    name: str
    arguments: str = "{}"


class _ToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: _Function


class Message(_Wire):
    """One message of the conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _FunctionDef(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class _Tool(_Wire):
    type: Literal["function"]
    function: _FunctionDef


class _JsonSchema(_Wire):
    name: str = "response"
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class _ResponseFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None


class _StreamOptions(_Wire):
    include_usage: bool = False


class _NamedFunction(_Wire):
    name: str


class _ToolChoice(_Wire):
    type: Literal["function"]
    function: _NamedFunction


class ChatCompletionRequest(_Wire):
    """The fields of ``POST /v1/chat/completions`` that agentmesh reads."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    messages: Annotated[list[Message], Field(min_length=1)]
    max_tokens: Annotated[int | None, Field(ge=1)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    tools: list[_Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | _ToolChoice | None = None
    response_format: _ResponseFormat | None = None
    seed: int | None = None
    user: Annotated[str | None, Field(max_length=256)] = None
    metadata: dict[str, str] | None = None
    n: Annotated[int | None, Field(ge=1, le=1)] = None
    logprobs: Literal[False] | None = None


W = TypeVar("W", bound=BaseModel)


def parse_request(model: type[W], body: bytes) -> tuple[W, tuple[str, ...]]:
    """The request as ``model``, and the top-level fields it had that agentmesh ignores.

    Raises:
        ApiError: 400 for invalid JSON, a body that is not an object, or a field
            of the wrong type or range (naming it).
    """
    try:
        request = model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] in ("json_invalid", "json_type", "model_type"):
            raise ApiError(400, "the body is not a JSON object", code="invalid_json") from None
        param = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
        problems = describe_errors(exc)
        raise ApiError(
            400, f"invalid request: {problems}", code="invalid_value", param=param
        ) from None
    try:
        keys = json.loads(body).keys()
    except (ValueError, RecursionError):  # pragma: no cover - pydantic parsed it already
        keys = ()
    ignored = tuple(sorted(k for k in keys if k not in model.model_fields))
    return request, ignored


def parse_chat_request(body: bytes) -> tuple[ChatCompletionRequest, tuple[str, ...]]:
    """``POST /v1/chat/completions``'s request (see :func:`parse_request`)."""
    return parse_request(ChatCompletionRequest, body)


def _parts(content: str | list[dict[str, Any]] | None) -> str | list[str | dict[str, Any]]:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str | dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            parts.append(part)
        else:
            raise ApiError(400, f"unsupported content part type {kind!r}", param="messages")
    return parts


def _text(content: str | list[dict[str, Any]] | None) -> str:
    found = _parts(content)
    if isinstance(found, str):
        return found
    return "".join(p["text"] for p in found if isinstance(p, dict) and p.get("type") == "text")


def _assistant(message: Message, index: int) -> AIMessage:
    calls = []
    for call in message.tool_calls or ():
        try:
            args = json.loads(call.function.arguments or "{}")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise ApiError(
                400,
                f"messages[{index}].tool_calls: arguments of {call.function.name!r} "
                "are not a JSON object",
                param=f"messages.{index}.tool_calls",
            )
        calls.append({"id": call.id, "name": call.function.name, "args": args, "type": "tool_call"})
    return AIMessage(content=_text(message.content), tool_calls=calls)


def _tool(message: Message, index: int) -> ToolMessage:
    if not message.tool_call_id:
        raise ApiError(
            400, f"messages[{index}]: a tool message needs tool_call_id", param="messages"
        )
    return ToolMessage(content=_text(message.content), tool_call_id=message.tool_call_id)


def to_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """The conversation as langchain-core messages (``developer`` is a system message).

    Raises:
        ApiError: 400 for a tool message without its call id, tool arguments
            that are not a JSON object, or an unknown content part.
    """
    out: list[BaseMessage] = []
    for index, message in enumerate(messages):
        role = message.role
        if role in ("system", "developer"):
            out.append(SystemMessage(content=_text(message.content)))
        elif role == "user":
            out.append(HumanMessage(content=_parts(message.content)))
        elif role == "assistant":
            out.append(_assistant(message, index))
        else:
            out.append(_tool(message, index))
    return out


def _response_format(value: _ResponseFormat | None) -> ResponseFormat | None:
    if value is None or value.type == "text":
        return None
    if value.type == "json_object":
        return ResponseFormat()
    spec = value.json_schema
    if spec is None:
        raise ApiError(
            400, "response_format json_schema needs json_schema", param="response_format"
        )
    return ResponseFormat(spec.json_schema, spec.name)


def _tool_choice(request: ChatCompletionRequest) -> str | None:
    choice = request.tool_choice
    if choice is None or isinstance(choice, str):
        return choice
    return choice.function.name


def to_model_request(
    request: ChatCompletionRequest, messages: Sequence[BaseMessage]
) -> tuple[ModelRequest, frozenset[Capability]]:
    """The model request, and the capabilities the call needs (tools, json, vision)."""
    tools = tuple(
        ToolSpec(t.function.name, t.function.description, t.function.parameters)
        for t in request.tools or ()
    )
    fmt = _response_format(request.response_format)
    stop = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    needs: set[Capability] = set()
    if tools and request.tool_choice != "none":
        needs.add(Capability.TOOLS)
    if fmt is not None:
        needs.add(Capability.JSON)
    if any(isinstance(m.content, list) and _has_image(m.content) for m in messages):
        needs.add(Capability.VISION)
    if request.stream:
        needs.add(Capability.STREAMING)
    built = ModelRequest(
        messages=messages,
        max_tokens=request.max_completion_tokens or request.max_tokens,
        temperature=request.temperature,
        stop=stop,
        tools=tools,
        tool_choice=_tool_choice(request) if tools else None,
        response_format=fmt,
        seed=request.seed,
    )
    return built, frozenset(needs)


def _has_image(content: Sequence[Any]) -> bool:
    return any(isinstance(p, dict) and p.get("type") == "image_url" for p in content)


def _tool_calls(response: ModelResponse) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": json.dumps(dict(call.arguments), ensure_ascii=False),
            },
        }
        for call in response.tool_calls
    ]


def finish_reason(response: ModelResponse) -> str:
    """OpenAI's finish reason for ``response``."""
    if response.tool_calls:
        return "tool_calls"
    return _FINISH.get(response.finish_reason, response.finish_reason)


def usage_body(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def completion_body(
    completion_id: str,
    model: str,
    text: str,
    response: ModelResponse | None,
    usage: tuple[int, int],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """A ``chat.completion`` object (``response`` ``None``: a workflow's text answer)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    reason = "stop"
    if response is not None:
        calls = _tool_calls(response)
        if calls:
            message["tool_calls"] = calls
            message["content"] = text or None
        reason = finish_reason(response)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
        "usage": usage_body(*usage),
        "agentmesh": dict(extra),
    }


def chunk_body(
    completion_id: str,
    model: str,
    created: int,
    *,
    delta: Mapping[str, Any] | None = None,
    finish: str | None = None,
    usage: tuple[int, int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``: a delta, a finish, or (no choices) the usage chunk."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": dict(delta), "finish_reason": finish, "logprobs": None}],
    }
    if usage is not None:
        body["usage"] = usage_body(*usage)
    if extra is not None:
        body["agentmesh"] = dict(extra)
    return body


def tool_call_deltas(response: ModelResponse) -> list[dict[str, Any]]:
    """A response's tool calls as one stream delta's ``tool_calls`` (indexed)."""
    return [{"index": i, **call} for i, call in enumerate(_tool_calls(response))]
