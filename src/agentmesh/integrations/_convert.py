"""Conversions between LangChain's chat-model values and agentmesh's requests and results."""

from __future__ import annotations

import json
from collections.abc import (
    Callable,
    Mapping,
    Sequence,
)
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_chunk_to_message,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import ToolCallChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool

from agentmesh.models.types import (
    ModelResponse,
    ResponseFormat,
    ToolSpec,
)
from agentmesh.resilience.call import Attempt
from agentmesh.routing.types import RouteDecision

__all__ = [
    "FORCED",
    "as_agentmesh_message",
    "has_images",
    "last_chunk",
    "metadata_of",
    "as_response_format",
    "as_tool_choice",
    "as_tool_spec",
    "reasoning_of",
    "usage_of",
]

FORCED = "required"
"""The tool choice that forces some tool call."""


def as_tool_spec(
    tool: ToolSpec | Mapping[str, Any] | type | Callable[..., Any] | BaseTool,
) -> ToolSpec:
    """A bound tool (OpenAI format, as ``bind_tools`` stores it) as an agentmesh `ToolSpec`."""
    if isinstance(tool, ToolSpec):
        return tool
    formatted = convert_to_openai_tool(tool)
    function = formatted.get("function")
    if formatted.get("type") != "function" or not isinstance(function, Mapping):
        raise ValueError(
            f"RoutedChatModel binds function tools only, not {formatted.get('type')!r} tools "
            f"({json.dumps(formatted, default=str)[:120]})"
        )
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return ToolSpec(str(function["name"]), str(function.get("description") or ""), parameters)


def as_tool_choice(choice: object) -> str | None:
    """LangChain's tool choices (``any``, ``auto``, ``none``, a name, ``True``, a provider dict)."""
    if choice is None or choice is False:
        return None
    if choice is True or choice in ("any", "required"):
        return FORCED
    if isinstance(choice, str):
        return choice
    if isinstance(choice, Mapping):
        kind = choice.get("type")
        function = choice.get("function")
        if kind == "function" and isinstance(function, Mapping) and "name" in function:
            return str(function["name"])
        if kind == "tool" and "name" in choice:
            return str(choice["name"])
        if kind in ("any", "auto", "none", "required"):
            return as_tool_choice(kind)
    raise ValueError(f"unsupported tool_choice {choice!r}")


def as_response_format(value: object) -> ResponseFormat | None:
    """A JSON output request: a `ResponseFormat`, an OpenAI-style dict, or a schema."""
    if value is None or isinstance(value, ResponseFormat):
        return value
    if isinstance(value, Mapping) and value.get("type") == "json_object":
        return ResponseFormat()
    if isinstance(value, Mapping) and value.get("type") == "json_schema":
        spec = value.get("json_schema") or {}
        return ResponseFormat(spec.get("schema"), str(spec.get("name") or "response"))
    if isinstance(value, Mapping | type):
        schema = convert_to_json_schema(dict(value) if isinstance(value, Mapping) else value)
        return ResponseFormat(schema, str(schema.get("title") or "response"))
    raise ValueError(f"unsupported response_format {value!r}")


def as_agentmesh_message(message: BaseMessage) -> BaseMessage:
    """``message`` as the gateway's adapters take it: system, human, ai (with tool calls), tool."""
    if isinstance(message, BaseMessageChunk):
        message = message_chunk_to_message(message)  # e.g. an AIMessageChunk kept in history
    if isinstance(message, SystemMessage | HumanMessage | AIMessage | ToolMessage):
        return message
    if isinstance(message, ChatMessage):
        role = message.role.lower()
        fields: dict[str, Any] = {"content": message.content, "name": message.name}
        if role in ("user", "human"):
            return HumanMessage(**fields)
        if role in ("assistant", "ai"):
            return AIMessage(**fields)
        if role in ("system", "developer"):
            return SystemMessage(**fields)
    raise ValueError(
        f"RoutedChatModel cannot send a {type(message).__name__} "
        f"(role {getattr(message, 'role', message.type)!r}): use system, human, ai or tool messages"
    )


def has_images(messages: Sequence[BaseMessage]) -> bool:
    return any(
        isinstance(part, dict) and part.get("type") in ("image", "image_url")
        for message in messages
        if isinstance(message.content, list)
        for part in message.content
    )


def reasoning_of(response: ModelResponse) -> dict[str, Any]:
    """``additional_kwargs`` carrying the model's reasoning (``reasoning_content``), if any."""
    return {"reasoning_content": response.reasoning} if response.reasoning else {}


def usage_of(response: ModelResponse) -> UsageMetadata:
    usage = response.usage
    return UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.input_tokens + usage.output_tokens,
    )


def metadata_of(
    response: ModelResponse,
    decision: RouteDecision,
    attempts: Sequence[Attempt],
    *,
    cost_usd: float,
    degraded: bool,
) -> dict[str, Any]:
    return {
        "model_name": response.served_model,
        "model_id": response.model_id,
        "finish_reason": response.finish_reason,
        "cost_usd": cost_usd,
        "latency_ms": response.latency_ms,
        "route": {
            "strategy": decision.strategy,
            "reason": decision.reason,
            "chosen": decision.chosen,
        },
        "attempts": [attempt.to_dict() for attempt in attempts],
        "degraded": degraded,
        "simulated": response.simulated,
    }


def last_chunk(
    response: ModelResponse,
    decision: RouteDecision,
    attempts: Sequence[Attempt],
    *,
    text: str,
    cost_usd: float,
    degraded: bool = False,
) -> ChatGenerationChunk:
    """The stream's last chunk: tool calls, usage and routing metadata (set on no other chunk)."""
    calls = [
        ToolCallChunk(
            name=call.name,
            args=json.dumps(dict(call.arguments), ensure_ascii=False),
            id=call.id,
            index=index,
            type="tool_call_chunk",
        )
        for index, call in enumerate(response.tool_calls)
    ]
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=text,
            additional_kwargs=reasoning_of(response),
            tool_call_chunks=calls,
            usage_metadata=usage_of(response),
            response_metadata=metadata_of(
                response, decision, attempts, cost_usd=cost_usd, degraded=degraded
            ),
            chunk_position="last",
        )
    )
