"""Adapter for the OpenAI chat-completions wire format.

Serves OpenAI itself and every server that speaks the format: vLLM, llama.cpp's
server, Ollama's ``/v1``, OpenRouter, a LiteLLM proxy, Groq, Together. Requests
go through the gateway's shared ``httpx.AsyncClient``; no SDK is used.

How JSON output is asked for differs between servers, so the catalog entry
chooses it with ``params.json_format``: ``json_schema`` (OpenAI's
``response_format``, the default), ``json_object+schema`` (llama.cpp's server,
whose ``json_schema`` type fails), or ``json_object`` (plain JSON mode).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentmesh._jsontext import loads as json_loads
from agentmesh.models._http import HttpModelClient, error_for_status
from agentmesh.models.client import ClientContext, Stopwatch, token_count
from agentmesh.models.errors import BadRequest, ContentFiltered
from agentmesh.models.spec import ModelSpec, expand_env
from agentmesh.models.tokens import estimate_message_tokens, estimate_tokens
from agentmesh.models.types import (
    Embeddings,
    FinishReason,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    ToolCall,
    ToolSpec,
    Usage,
    message_text,
)

__all__ = ["OpenAIClient", "to_openai_messages", "to_openai_tools"]

_ROLES: Mapping[str, str] = {
    "system": "system",
    "human": "user",
    "ai": "assistant",
    "tool": "tool",
}
_FINISH: Mapping[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _response_format(request: ModelRequest, json_format: str) -> dict[str, Any] | None:
    fmt = request.response_format
    if fmt is None:
        return None
    if fmt.schema is None or json_format == "json_object":
        return {"type": "json_object"}
    if json_format == "json_object+schema":
        return {"type": "json_object", "schema": dict(fmt.schema)}
    return {
        "type": "json_schema",
        "json_schema": {"name": fmt.name, "schema": dict(fmt.schema)},
    }


def _message(message: BaseMessage) -> dict[str, Any]:
    role = _ROLES.get(message.type)
    if role is None:
        raise BadRequest(f"message type {message.type!r} has no OpenAI role")
    if isinstance(message.content, list) and role == "user":
        out: dict[str, Any] = {"role": role, "content": message.content}
    else:
        out = {"role": role, "content": message_text(message)}
    if isinstance(message, AIMessage) and message.tool_calls:
        out["content"] = out["content"] or None
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
            }
            for call in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
    return out


def to_openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Tools in the chat-completions ``tools`` format (LangChain's ``bind_tools`` takes it too)."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
            },
        }
        for t in tools
    ]


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Convert langchain-core messages to the chat-completions ``messages`` list."""
    return [_message(m) for m in messages]


@dataclass(slots=True)
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Accumulator:
    """Collects a streamed answer until it is complete."""

    text: list[str] = field(default_factory=list)
    tools: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish: str | None = None
    model: str | None = None
    usage: Mapping[str, Any] | None = None
    done: bool = False
    reasoning: list[str] = field(default_factory=list)


class OpenAIClient(HttpModelClient):
    """A model served over the OpenAI chat-completions API."""

    def __init__(self, spec: ModelSpec, ctx: ClientContext) -> None:
        api_key = ctx.api_key(spec)
        try:
            base_url = expand_env(spec.base_url or "", dict(ctx.environ)).rstrip("/")
        except KeyError as exc:
            raise BadRequest(
                f"base_url refers to unset environment variable {exc.args[0]}", model_id=spec.id
            ) from None
        headers = {"content-type": "application/json", **spec.headers}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        super().__init__(
            spec,
            http=ctx.http,
            url=f"{base_url}/chat/completions",
            headers=headers,
            secrets=(api_key,),
        )
        self._json_format = str(spec.params.get("json_format", "json_schema"))
        self._embeddings_url = f"{base_url}/embeddings"
        batch = spec.params.get("embed_batch", 0)
        self._embed_batch = batch if isinstance(batch, int) and batch > 0 else 0

    def build_body(self, request: ModelRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for ``request``."""
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": to_openai_messages(request.messages),
        }
        optional = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
            "stop": list(request.stop) or None,
            "response_format": _response_format(request, self._json_format),
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if request.tools:
            body["tools"] = to_openai_tools(request.tools)
        if request.tool_choice in ("auto", "required", "none"):
            body["tool_choice"] = request.tool_choice
        elif request.tool_choice:
            body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def invoke(self, request: ModelRequest) -> ModelResponse:
        """Send one non-streamed chat completion."""
        watch = Stopwatch()
        data = await self.post_json(
            self.build_body(request, stream=False), read_timeout=request.timeout
        )
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise self.malformed(f"no choices in response: {self.preview(data)}") from None
        if not isinstance(message, dict):
            raise self.malformed("choice has no message object")
        if message.get("refusal"):
            raise self.error(ContentFiltered, str(message["refusal"])[:300])
        content = message.get("content")
        raw_calls = message.get("tool_calls") or []
        if content is None and not raw_calls:
            raise self.malformed("the message has no content and no tool calls")
        if content is not None and not isinstance(content, str):
            raise self.malformed(f"message content is not a string: {self.preview(content)}")
        calls = tuple(
            self._tool_call(
                c.get("id", ""), c["function"].get("name", ""), c["function"].get("arguments")
            )
            for c in raw_calls
            if isinstance(c, dict) and isinstance(c.get("function"), dict)
        )
        return self._response(
            request,
            text=content or "",
            tool_calls=calls,
            finish=choice.get("finish_reason"),
            model=data.get("model"),
            usage=data.get("usage"),
            watch=watch,
            reasoning=_reasoning(message),
        )

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """``POST {base_url}/embeddings`` (OpenAI, vLLM, llama.cpp's server with ``--embeddings``).

        The answer's ``data[i].embedding`` sorted by ``index`` (token-level
        embeddings mean-pooled); ``usage.prompt_tokens``, else an estimate
        (marked estimated). ``params: {embed_batch: N}`` sends at most N texts
        per request: llama-cpp-python's server answers garbage for every text
        but the first of a batch when the GGUF declares no pooling (measured
        with the bundled Gemma: cosine -0.04 between a text's vector alone and
        in second place), so its catalog entries say ``embed_batch: 1``.
        """
        watch = Stopwatch()
        step = self._embed_batch or max(1, len(texts))
        vectors: list[Any] = []
        tokens = 0
        estimated = False
        served: str | None = None
        for start in range(0, len(texts), step):
            chunk = list(texts[start : start + step])
            found, reported, served = await self._embed_chunk(chunk)
            vectors.extend(found)
            if reported is None:
                estimated = True
                reported = sum(estimate_tokens(t) for t in chunk)
            counted = token_count(reported, "prompt_tokens")
            if isinstance(counted, str):
                raise self.malformed(counted)
            tokens += counted
        return self.embedded(
            vectors,
            texts=len(texts),
            input_tokens=tokens,
            watch=watch,
            served_model=served,
            estimated=estimated,
        )

    async def _embed_chunk(self, texts: list[str]) -> tuple[list[Any], Any, str | None]:
        """One request's vectors (pooled), its reported prompt tokens, its served model."""
        body = {"model": self.spec.model, "input": texts, "encoding_format": "float"}
        data = await self.post_json(body, read_timeout=None, url=self._embeddings_url)
        try:
            rows = sorted(data["data"], key=lambda d: int(d["index"]))
            vectors = [row["embedding"] for row in rows]
        except (KeyError, TypeError, ValueError):
            raise self.malformed(f"no embeddings in response: {self.preview(data)}") from None
        if not all(isinstance(v, list) for v in vectors):
            raise self.malformed("an embedding is not a list of numbers")
        usage = data.get("usage") if isinstance(data, Mapping) else None
        reported: Any = usage.get("prompt_tokens") if isinstance(usage, Mapping) else None
        served = data.get("model") if isinstance(data.get("model"), str) else None
        return [_mean_pooled(v) for v in vectors], reported, served

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream one chat completion over SSE."""
        watch = Stopwatch()
        acc = _Accumulator()
        body = self.build_body(request, stream=True)
        async with self.post_stream(body, read_timeout=request.timeout) as events:
            async for _, data in events:
                if data.strip() == "[DONE]":
                    acc.done = True
                    break
                delta = self._absorb(acc, self.parse_json(data))
                if delta:
                    watch.mark_first()
                    yield StreamEvent(delta=delta)
        if not acc.done and acc.finish is None:
            raise self.malformed("stream ended before the answer was complete (no [DONE])")
        calls = tuple(
            self._tool_call(p.id, p.name, "".join(p.arguments))
            for _, p in sorted(acc.tools.items())
        )
        yield StreamEvent(
            response=self._response(
                request,
                text="".join(acc.text),
                tool_calls=calls,
                finish=acc.finish,
                model=acc.model,
                usage=acc.usage,
                watch=watch,
                reasoning="".join(acc.reasoning),
            )
        )

    def _absorb(self, acc: _Accumulator, chunk: Any) -> str:
        """Fold one stream chunk into ``acc``; return its text delta."""
        if not isinstance(chunk, dict):
            raise self.malformed(f"stream chunk is not an object: {self.preview(chunk)}")
        if "error" in chunk:
            # Servers report failures after the 200 status as an error event.
            detail = chunk["error"]
            code = detail.get("code") if isinstance(detail, dict) else None
            status = code if isinstance(code, int) and code >= 400 else 503
            raise error_for_status(
                status, json.dumps(chunk), {}, spec=self.spec, secrets=self._secrets
            )
        acc.model = chunk.get("model") or acc.model
        if chunk.get("usage"):
            acc.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        choice = choices[0]
        acc.finish = choice.get("finish_reason") or acc.finish
        delta = choice.get("delta") or {}
        for part in delta.get("tool_calls") or []:
            parts = acc.tools.setdefault(int(part.get("index", 0)), _ToolCallParts())
            parts.id = part.get("id") or parts.id
            function = part.get("function") or {}
            parts.name = function.get("name") or parts.name
            parts.arguments.append(function.get("arguments") or "")
        text = delta.get("content") or ""
        if text:
            acc.text.append(text)
        thought = _reasoning(delta)
        if thought:
            acc.reasoning.append(thought)
        if delta.get("refusal"):
            raise self.error(ContentFiltered, str(delta["refusal"])[:300])
        return str(text)

    def _tool_call(self, call_id: str, name: str, arguments: object) -> ToolCall:
        if isinstance(arguments, dict):
            return ToolCall(id=call_id, name=name, arguments=arguments)
        try:
            parsed = json_loads(str(arguments or "") or "{}")
        except ValueError:
            raise self.malformed(
                f"tool call {name!r} has arguments that are not JSON: {self.preview(arguments)}"
            ) from None
        if not isinstance(parsed, dict):
            raise self.malformed(f"tool call {name!r} arguments are not a JSON object")
        return ToolCall(id=call_id, name=name, arguments=parsed)

    def _response(
        self,
        request: ModelRequest,
        *,
        text: str,
        tool_calls: tuple[ToolCall, ...],
        finish: str | None,
        model: str | None,
        usage: object,
        watch: Stopwatch,
        reasoning: str = "",
    ) -> ModelResponse:
        if finish == "content_filter":
            raise self.error(
                ContentFiltered, "the provider stopped the answer by its content filter"
            )
        counted = _usage(usage)
        if isinstance(counted, str):
            raise self.malformed(counted)
        if counted is None:
            out = estimate_tokens(text) + sum(
                estimate_tokens(c.name + json.dumps(dict(c.arguments))) for c in tool_calls
            )
            counted = Usage(estimate_message_tokens(request.messages), out, estimated=True)
        return self.respond(
            text=text,
            tool_calls=tool_calls,
            usage=counted,
            finish_reason=_FINISH.get(finish or "", "unknown"),
            served_model=model,
            watch=watch,
            reasoning=reasoning,
        )


def _mean_pooled(embedding: list[Any]) -> list[Any]:
    """One vector: token-level embeddings (a list of lists) averaged, else ``embedding`` itself.

    llama-cpp-python's server answers one vector per token for a GGUF that
    declares no pooling (the bundled Gemma 3 270M); mean pooling makes them the
    vector the in-process adapter computes.
    """
    if not embedding or not all(isinstance(row, list) for row in embedding):
        return embedding
    width = len(embedding[0])
    if not width or any(len(row) != width for row in embedding):
        return embedding  # left for the answer's check to refuse
    try:
        return [sum(float(row[i]) for row in embedding) / len(embedding) for i in range(width)]
    except (TypeError, ValueError):
        return embedding


def _reasoning(message: Mapping[str, Any]) -> str:
    """Reasoning text beside the answer, when the provider sends it as a string.

    ``reasoning_content`` (DeepSeek, vLLM, llama.cpp's server) or ``reasoning``
    (OpenRouter, Ollama).
    """
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _usage(usage: object) -> Usage | str | None:
    """The reported usage; ``None`` if none was reported, a problem if it is not plausible."""
    if usage is None or usage == {}:
        return None
    if not isinstance(usage, Mapping):
        return f"usage is not an object (got {usage!r:.40})"
    prompt = token_count(usage.get("prompt_tokens"), "prompt_tokens")
    completion = usage.get("completion_tokens")
    completion = 0 if completion is None else token_count(completion, "completion_tokens")
    for counted in (prompt, completion):
        if isinstance(counted, str):
            return counted
    return Usage(int(prompt), int(completion))
