"""The scripted provider: a deterministic stand-in model for tests, simulations, benchmarks.

Replies come from rules in the catalog's ``behavior`` block; failures are
injected by rate, by position (``fail_first``) or by outage (``down``), from a
seeded generator so a run is reproducible. Token counts are estimated from the
text, so costs computed from the catalog's (real) prices are meaningful.
Every response is marked ``simulated=True``; a prompt that does not fit the
declared context window fails with :class:`ContextOverflow`, as a real model would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from agentmesh._jsontext import loads as json_loads
from agentmesh.models.client import ClientContext, ModelClient, Stopwatch
from agentmesh.models.errors import (
    AuthError,
    BadRequest,
    ContentFiltered,
    ContextOverflow,
    MalformedResponse,
    ModelError,
    RateLimited,
    Timeout,
    Unavailable,
)
from agentmesh.models.spec import FailureKind, ModelSpec, ReplyRule, ScriptedBehavior
from agentmesh.models.tokens import estimate_message_tokens, estimate_tokens
from agentmesh.models.types import (
    Embeddings,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    ToolCall,
    Usage,
    last_user_text,
    message_text,
)

__all__ = ["SIMULATED_DIMENSIONS", "ScriptedClient", "bag_of_words", "shaped_like"]


def _user_text(messages: Sequence[BaseMessage]) -> str:
    """Every user message of the conversation: what reply rules match against."""
    return "\n".join(message_text(m) for m in messages if isinstance(m, HumanMessage))


def _tool_results(messages: Sequence[BaseMessage]) -> str | None:
    """The tool results the conversation ends with, joined by ``"; "`` (``None``: it does not)."""
    trailing: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        trailing.append(message_text(message))
    return "; ".join(reversed(trailing)) if trailing else None


def shaped_like(schema: Mapping[str, Any], text: str) -> Any:
    """A value following ``schema`` whose strings carry ``text`` (simulated structured output).

    Objects get their required properties (all when none is required),
    arrays ``minItems`` (at least 2, at most ``maxItems``) numbered items,
    numbers their ``maximum`` (else ``minimum``, else 1), booleans ``true``,
    enums their first value.
    """
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties") or {}
        keys = schema.get("required") or list(props)
        return {k: shaped_like(props.get(k) or {}, text) for k in keys}
    if kind == "array":
        count = max(int(schema.get("minItems", 2)), 2)
        count = min(count, int(schema.get("maxItems", count)))
        item = schema.get("items") or {}
        return [
            f"{text} ({n})" if item.get("type", "string") == "string" else shaped_like(item, text)
            for n in range(1, count + 1)
        ]
    if kind in ("number", "integer"):
        bound = schema.get("maximum", schema.get("minimum", 1))
        return int(bound) if kind == "integer" else float(bound)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


_FAILURES: Mapping[FailureKind, tuple[type[ModelError], int | None]] = {
    "rate_limit": (RateLimited, 429),
    "timeout": (Timeout, None),
    "server_error": (Unavailable, 503),
    "malformed": (MalformedResponse, None),
    "content_filter": (ContentFiltered, None),
    "auth": (AuthError, 401),
    "bad_request": (BadRequest, 400),
    "context_overflow": (ContextOverflow, None),
}


SIMULATED_DIMENSIONS = 256
"""Length of the scripted provider's simulated embeddings."""

_WORD = re.compile(r"\w+")


def bag_of_words(text: str, dimensions: int = SIMULATED_DIMENSIONS) -> list[float]:
    """A simulated embedding: the text's lower-cased words hashed into ``dimensions`` counts.

    Deterministic across processes (BLAKE2b, not ``hash``) and L2-normalised, so
    the dot product of two vectors is their cosine similarity; texts sharing no
    word are orthogonal. It measures shared words, not meaning.
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        vector[int.from_bytes(digest, "big") % dimensions] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


class ScriptedClient(ModelClient):
    """A simulated model whose behaviour is read from ``spec.behavior``.

    State (the call counter and the random generator) belongs to the instance:
    two clients built from one spec fail and answer identically.
    """

    def __init__(self, spec: ModelSpec, ctx: ClientContext | None = None) -> None:
        super().__init__(spec)
        self.behavior = spec.behavior or ScriptedBehavior()
        self._rules = [
            (re.compile(r.match), re.compile(r.after) if r.after is not None else None, r)
            for r in self.behavior.replies
        ]
        self._random = random.Random(self.behavior.seed)
        self._lock = asyncio.Lock()
        self.calls = 0
        self._tool_calls = 0

    async def _admit(self) -> None:
        """Count the call and raise the failure the behaviour prescribes for it."""
        async with self._lock:
            self.calls += 1
            number = self.calls
            roll = self._random.random()
        b = self.behavior
        failing = b.down or number <= b.fail_first or roll < b.fail_rate
        if failing:
            if b.latency_ms:
                await asyncio.sleep(b.latency_ms / 1000.0)
            error_type, status = _FAILURES[b.fail_with]
            error = self.error(error_type, f"simulated {b.fail_with}", status_code=status)
            if isinstance(error, RateLimited):
                error.retry_after = b.retry_after
            raise error

    def _rule(self, messages: Sequence[BaseMessage]) -> ReplyRule | None:
        """The first rule matching the user messages (and, for ``after`` rules, the results)."""
        prompt = _user_text(messages)
        results = _tool_results(messages)
        return next(
            (
                rule
                for pattern, after, rule in self._rules
                if pattern.search(prompt)
                and (after is None or (results is not None and after.search(results)))
            ),
            None,
        )

    def tool_calls_for(self, request: ModelRequest) -> tuple[ToolCall, ...]:
        """The tool calls this model makes for ``request`` (none: it answers with text).

        A matching rule calls its tools that the request offers, unless the
        conversation already ends with tool results and the rule has no
        ``after`` (it then answers). Otherwise a request that forces a tool
        (``tool_choice`` naming it, or ``required`` with one tool, as
        LangChain's ``with_structured_output`` sends) gets a call of that tool
        with arguments shaped by its parameter schema.
        """
        if not request.tools:
            return ()
        answered = isinstance(request.messages[-1], ToolMessage)
        offered = {t.name: t for t in request.tools}
        rule = self._rule(request.messages)
        if rule is not None and (rule.after is not None or not answered):
            wanted = [c for c in rule.tool_calls if c.tool in offered]
            if wanted:
                return tuple(self._numbered(c.tool, dict(c.arguments)) for c in wanted)
        if answered:
            return ()
        forced = request.tool_choice
        if forced == "required" and len(offered) == 1:
            forced = next(iter(offered))
        if forced not in offered:
            return ()
        tool = offered[forced]
        arguments = shaped_like(tool.parameters, last_user_text(request.messages))
        return (self._numbered(tool.name, arguments if isinstance(arguments, dict) else {}),)

    def _numbered(self, tool: str, arguments: dict[str, Any]) -> ToolCall:
        self._tool_calls += 1
        return ToolCall(f"call_{self._tool_calls}", tool, arguments)

    def reply_for(self, request: ModelRequest) -> str:
        """The text this model answers ``request`` with (no failure, no delay).

        A JSON request gets JSON: the reply itself if it parses, else a value
        shaped by the requested schema (strings carry the reply), else
        ``{"answer": reply}``.
        """
        prompt = last_user_text(request.messages)
        rule = self._rule(request.messages)
        template = rule.reply if rule is not None else self.behavior.reply
        text = template.replace("{model}", self.spec.id).replace("{prompt}", prompt)
        results = _tool_results(request.messages)
        if results is not None:
            text = text.replace("{tool_result}", results)
        if request.response_format is not None:
            try:
                json_loads(text)
            except ValueError:
                schema = request.response_format.schema
                shaped = shaped_like(schema, text) if schema else {"answer": text}
                text = json.dumps(shaped)
        return text

    def _check_fits(self, request: ModelRequest, input_tokens: int) -> None:
        wanted = request.max_tokens or 0
        if input_tokens + wanted > self.spec.context_window:
            raise self.error(
                ContextOverflow,
                f"prompt of ~{input_tokens} tokens plus {wanted} output tokens exceeds "
                f"the context window of {self.spec.context_window}",
            )

    def _pieces(self, request: ModelRequest) -> tuple[str, int, int, bool]:
        input_tokens = estimate_message_tokens(request.messages)
        self._check_fits(request, input_tokens)
        text = self.reply_for(request)
        cap = request.max_tokens or self.spec.max_output_tokens
        truncated = estimate_tokens(text) > cap
        if truncated:
            words = text.split(" ")
            while words and estimate_tokens(" ".join(words)) > cap:
                words.pop()
            text = " ".join(words)
        return text, input_tokens, estimate_tokens(text), truncated

    def _response(
        self, text: str, input_tokens: int, output_tokens: int, truncated: bool, watch: Stopwatch
    ) -> ModelResponse:
        return self.respond(
            text=text,
            usage=Usage(input_tokens, output_tokens, estimated=True),
            finish_reason="length" if truncated else "stop",
            served_model=f"scripted:{self.spec.model}",
            watch=watch,
        )

    async def _call_tools(
        self, request: ModelRequest, calls: tuple[ToolCall, ...], watch: Stopwatch
    ) -> ModelResponse:
        """The answer that makes ``calls`` (no text), after the configured latency."""
        input_tokens = estimate_message_tokens(request.messages)
        self._check_fits(request, input_tokens)
        if self.behavior.latency_ms:
            await asyncio.sleep(self.behavior.latency_ms / 1000.0)
        arguments = sum(estimate_tokens(json.dumps(c.arguments)) for c in calls)
        return self.respond(
            text="",
            usage=Usage(input_tokens, len(calls) + arguments, estimated=True),
            finish_reason="tool_calls",
            served_model=f"scripted:{self.spec.model}",
            watch=watch,
            tool_calls=calls,
        )

    async def invoke(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request`` after the configured latency, or fail as configured."""
        watch = Stopwatch()
        await self._admit()
        calls = self.tool_calls_for(request)
        if calls:
            return await self._call_tools(request, calls, watch)
        text, input_tokens, output_tokens, truncated = self._pieces(request)
        delay = self.behavior.latency_ms + self.behavior.ms_per_output_token * output_tokens
        if delay:
            await asyncio.sleep(delay / 1000.0)
        return self._response(text, input_tokens, output_tokens, truncated, watch)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Simulated vectors (:func:`bag_of_words`), after the behaviour's failures and latency."""
        watch = Stopwatch()
        await self._admit()
        if self.behavior.latency_ms:
            await asyncio.sleep(self.behavior.latency_ms / 1000.0)
        return self.embedded(
            [bag_of_words(t) for t in texts],
            texts=len(texts),
            input_tokens=sum(estimate_tokens(t) for t in texts),
            watch=watch,
            estimated=True,
        )

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream the reply word by word, pacing by ``ms_per_output_token``.

        A reply that calls a tool streams no text: its one event carries the call.
        """
        watch = Stopwatch()
        await self._admit()
        calls = self.tool_calls_for(request)
        if calls:
            yield StreamEvent(response=await self._call_tools(request, calls, watch))
            return
        text, input_tokens, output_tokens, truncated = self._pieces(request)
        if self.behavior.latency_ms:
            await asyncio.sleep(self.behavior.latency_ms / 1000.0)
        for piece in re.findall(r"\S+\s*|\s+", text):
            if self.behavior.ms_per_output_token:
                await asyncio.sleep(
                    self.behavior.ms_per_output_token * estimate_tokens(piece) / 1000.0
                )
            watch.mark_first()
            yield StreamEvent(delta=piece)
        yield StreamEvent(
            response=self._response(text, input_tokens, output_tokens, truncated, watch)
        )
