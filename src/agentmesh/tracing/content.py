"""Prompts and completions in the GenAI conventions' message shape (opt-in content).

``gen_ai.input.messages`` and ``gen_ai.output.messages`` follow the conventions'
JSON schemas (``{"role", "parts": [{"type": "text", "content"}...]}``) and are
recorded on spans as JSON strings, which the conventions allow where structured
attribute values are not widely supported (most backends, and the JSONL file).
Nothing here decides *whether* to record: callers check
:func:`~agentmesh.tracing.spans.capturing_content` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

__all__ = ["input_messages", "output_messages"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_FINISH = {"tool_calls": "tool_call"}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            parts.append({"type": "text", "content": part})
        elif isinstance(part, Mapping) and part.get("type") == "text":
            parts.append({"type": "text", "content": str(part.get("text", ""))})
        elif isinstance(part, Mapping):  # media: say what it was, never the bytes
            parts.append({"type": str(part.get("type", "unknown"))})
    return parts


def input_messages(
    messages: Sequence[BaseMessage], *, prompt: str | None = None
) -> list[dict[str, Any]]:
    """The messages sent, in order (or the one completion ``prompt`` a base model got)."""
    if prompt is not None:
        return [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
    out: list[dict[str, Any]] = []
    for message in messages:
        role = _ROLES.get(message.type, message.type)
        if role == "tool":
            parts: list[dict[str, Any]] = [
                {
                    "type": "tool_call_response",
                    "id": getattr(message, "tool_call_id", None),
                    "result": message.content,
                }
            ]
        else:
            parts = _parts(message.content)
            for call in getattr(message, "tool_calls", None) or ():
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": call.get("name"),
                        "arguments": call.get("args"),
                    }
                )
        out.append({"role": role, "parts": parts})
    return out


def output_messages(
    text: str,
    *,
    finish_reason: str,
    tool_calls: Sequence[tuple[str, str, Mapping[str, Any]]] = (),
) -> list[dict[str, Any]]:
    """The one completion returned: its text, tool calls ``(id, name, arguments)`` and reason."""
    parts = _parts(text)
    parts.extend(
        {"type": "tool_call", "id": call_id, "name": name, "arguments": dict(arguments)}
        for call_id, name, arguments in tool_calls
    )
    return [
        {
            "role": "assistant",
            "parts": parts,
            "finish_reason": _FINISH.get(finish_reason, finish_reason),
        }
    ]
