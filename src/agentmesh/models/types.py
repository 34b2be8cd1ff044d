"""Value objects of one model call: request, response, stream events.

These are frozen, slotted dataclasses rather than pydantic models: they are
built once per call on the hot path and never parsed from user files.
Messages are langchain-core messages, so LangChain/LangGraph state flows in
and out unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

__all__ = [
    "Embeddings",
    "ModelRequest",
    "ModelResponse",
    "ResponseFormat",
    "StreamEvent",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "last_user_text",
    "message_text",
]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call.

    Attributes:
        name: Tool name the model uses in its call.
        description: What the tool does, for the model.
        parameters: JSON Schema of the arguments object.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call requested by the model, with parsed arguments."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Ask for JSON output.

    Attributes:
        schema: JSON Schema the output must follow; ``None`` asks for any JSON object.
        name: Name of the schema (OpenAI ``json_schema`` needs one).
    """

    schema: Mapping[str, Any] | None = None
    name: str = "response"


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One call to one model.

    Attributes:
        messages: The conversation, as langchain-core messages.
        max_tokens: Cap on output tokens; ``None`` uses the model's own cap.
        temperature: Sampling temperature; ``None`` uses the provider default.
        stop: Stop sequences.
        tools: Tools the model may call.
        tool_choice: ``auto``, ``required``, ``none`` or a tool name.
        response_format: Ask for JSON (optionally schema-constrained).
        timeout: Total seconds for the call; ``None`` uses the spec's ``timeout_s``.
        seed: Sampling seed, where the provider supports one.
        prompt: A complete completion-style prompt (few-shot text for base
            models). Adapters of ``prompt_style: completion`` models send it
            verbatim instead of writing ``messages`` as a transcript; chat
            models ignore it and use ``messages``.
        labels: Attributes identifying the request in traces (the rendered
            prompt's template, variant and hash); set on its ``chat`` span.
    """

    messages: Sequence[BaseMessage]
    max_tokens: int | None = None
    temperature: float | None = None
    stop: Sequence[str] = ()
    tools: Sequence[ToolSpec] = ()
    tool_choice: str | None = None
    response_format: ResponseFormat | None = None
    timeout: float | None = None
    seed: int | None = None
    prompt: str | None = None
    labels: Mapping[str, str] | None = None

    @classmethod
    def of(cls, prompt: str, *, system: str | None = None, **kwargs: Any) -> ModelRequest:
        """Build a request from a user prompt and an optional system prompt."""
        from langchain_core.messages import SystemMessage

        messages: list[BaseMessage] = [SystemMessage(system)] if system else []
        messages.append(HumanMessage(prompt))
        return cls(messages=messages, **kwargs)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call.

    Attributes:
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
        estimated: True when the provider did not report usage and the counts
            were estimated from the text.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "unknown"]


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """What one successful call returned.

    Attributes:
        model_id: Catalog id of the model that was called.
        provider: Provider name.
        served_model: The model name the provider says served the call.
        text: Output text (the JSON text for JSON requests).
        tool_calls: Tool calls requested by the model.
        usage: Token counts.
        finish_reason: Normalised reason the generation stopped.
        latency_ms: Wall time from sending the request to the last byte.
        ttft_ms: Time to first token; for non-streamed calls, equal to ``latency_ms``.
        cost_usd: Cost from the catalog's pricing.
        simulated: True when a scripted model produced the answer.
        reasoning: The model's reasoning text, when the provider returns it apart
            from the answer (OpenAI-compatible ``reasoning_content`` / ``reasoning``).
    """

    model_id: str
    provider: str
    served_model: str
    text: str
    usage: Usage
    finish_reason: FinishReason
    latency_ms: float
    ttft_ms: float
    cost_usd: float
    tool_calls: tuple[ToolCall, ...] = ()
    simulated: bool = False
    reasoning: str = ""

    def to_message(self) -> AIMessage:
        """The response as a langchain-core ``AIMessage`` (usage and model in metadata)."""
        return AIMessage(
            content=self.text,
            tool_calls=[
                {"id": c.id, "name": c.name, "args": dict(c.arguments), "type": "tool_call"}
                for c in self.tool_calls
            ],
            usage_metadata={
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "total_tokens": self.usage.input_tokens + self.usage.output_tokens,
            },
            response_metadata={
                "model_name": self.served_model,
                "agentmesh_model_id": self.model_id,
                "finish_reason": self.finish_reason,
                "cost_usd": self.cost_usd,
                "simulated": self.simulated,
            },
        )


@dataclass(frozen=True, slots=True)
class Embeddings:
    """What one successful embeddings call returned.

    Attributes:
        model_id: Catalog id of the embeddings model.
        provider: Provider name.
        served_model: The model name the provider says served the call.
        vectors: One vector per input text, in input order.
        usage: Input tokens (embeddings have no output tokens).
        latency_ms: Wall time of the call.
        cost_usd: Cost from the catalog's input price.
        simulated: True when the scripted provider made the vectors (hashed
            bag of words, not a model).
    """

    model_id: str
    provider: str
    served_model: str
    vectors: tuple[tuple[float, ...], ...]
    usage: Usage
    latency_ms: float
    cost_usd: float
    simulated: bool = False

    @property
    def dimensions(self) -> int:
        """Length of the vectors (0 when there are none)."""
        return len(self.vectors[0]) if self.vectors else 0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a streamed call.

    Every event but the last carries a text ``delta``; the last carries the
    complete ``response`` (with usage, tool calls and timings) and no delta.
    """

    delta: str = ""
    response: ModelResponse | None = None


def message_text(message: BaseMessage) -> str:
    """Plain text of a message, joining text parts of multi-part content."""
    content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def last_user_text(messages: Sequence[BaseMessage]) -> str:
    """Text of the last human message, or ``""`` when there is none."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message_text(message)
    return ""
