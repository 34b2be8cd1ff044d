"""The ``chat {model}`` span of one model call attempt, fed plain values by the gateway.

:class:`ChatCall` owns the GenAI attribute names, the call metrics, the content
opt-in and the scrubbing of secrets, so the gateway's instrumentation stays a
few lines. With no provider installed at all, :meth:`ChatCall.start` hands out
one shared idle call and nothing else happens; with a provider, attribute
dictionaries are only built for recording spans.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from langchain_core.messages import BaseMessage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, SpanKind
from opentelemetry.util.types import AttributeValue

from agentmesh.tracing import metrics
from agentmesh.tracing._run import with_conversation
from agentmesh.tracing._state import metrics_on, spans_on
from agentmesh.tracing.attributes import (
    COST_USD,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_OUTPUT_TYPE,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_SEED,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_REQUEST_TEMPERATURE,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    MODEL_ID,
    NODE_NAME,
    OP_CHAT,
    RUN_ID,
    SERVER_ADDRESS,
    SERVER_PORT,
    SIMULATED,
    STREAM_CUT_OFF,
    USAGE_ESTIMATED,
)
from agentmesh.tracing.content import input_messages, output_messages
from agentmesh.tracing.spans import (
    _TRACER,
    Attributes,
    CurrentSpan,
    capturing_content,
    error_type,
    record_error,
    scrub,
    to_json,
)

__all__ = ["ChatCall"]

T = TypeVar("T")


class ChatCall(CurrentSpan):
    """The ``chat {model}`` span (kind CLIENT) and the metrics of one model call attempt.

    Lifecycle: :meth:`start` it before the call; if :attr:`recording`, describe the
    request (:meth:`describe_request`); make it current around the call
    (``with call:``, or :meth:`iterate` for a stream); then call :meth:`ok` with
    the response or :meth:`failed` with the error (:meth:`end` for a stream its
    consumer abandoned). Metrics are recorded whether or not the span is.

    The span gets its attributes in two batches -- at start (what samplers may
    use, and the caller's) and at the end (request, response, content) -- as
    every batch costs the SDK a lock and a validation pass.

    Args:
        model_id: Catalog id (``agentmesh.model_id``).
        provider: ``gen_ai.provider.name`` (the catalog's provider name).
        request_model: ``gen_ai.request.model``, the provider's wire model name;
            also the span name's suffix.
        attributes: Caller attributes set on the span (attempt, fallback, node,
            prompt template...); ``agentmesh.node.name`` also labels the metrics.

    Attributes:
        span: The OpenTelemetry span (non-recording when tracing is off).
        recording: Whether the span is recorded; describe the request only then.
    """

    __slots__ = (
        "_content",
        "_done",
        "_model_id",
        "_node",
        "_provider",
        "_request",
        "_request_model",
        "_secrets",
        "_start",
        "recording",
    )

    def __init__(
        self,
        model_id: str,
        provider: str,
        request_model: str,
        attributes: Attributes | None = None,
    ) -> None:
        self._start = time.perf_counter()
        self._model_id = model_id
        self._provider = provider
        self._request_model = request_model
        self._done = False
        self._token = None
        node = attributes.get(NODE_NAME) if attributes else None
        self._node = node if isinstance(node, str) else None
        self._request: dict[str, AttributeValue] = {}
        self._content: tuple[Sequence[BaseMessage], str | None] = ((), None)
        self._secrets: Sequence[str | None] = ()
        if not spans_on():
            self.span: trace.Span = INVALID_SPAN
            self.recording = False
            return
        attrs: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: OP_CHAT,
            GEN_AI_PROVIDER_NAME: provider,
            GEN_AI_REQUEST_MODEL: request_model,
            MODEL_ID: model_id,
        }
        if attributes:
            attrs.update(attributes)
            with_conversation(attrs, attributes.get(RUN_ID))
        else:
            with_conversation(attrs)
        self.span = span = _TRACER.start_span(
            "chat " + request_model,
            kind=SpanKind.CLIENT,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        )
        self.recording = span is not INVALID_SPAN and span.is_recording()

    @classmethod
    def start(
        cls,
        model_id: str,
        provider: str,
        request_model: str,
        attributes: Attributes | None = None,
    ) -> ChatCall:
        """A call for the gateway; the shared idle one when no provider is installed at all."""
        if spans_on() or metrics_on():
            return cls(model_id, provider, request_model, attributes)
        return _IDLE_CHAT

    def describe_request(
        self,
        *,
        stream: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        json_output: bool = False,
        server_url: str | None = None,
        messages: Sequence[BaseMessage] = (),
        prompt: str | None = None,
        secrets: Sequence[str | None] = (),
    ) -> None:
        """Describe the request (call it only when :attr:`recording`; set when the call ends).

        Args:
            stream: The call streams (``gen_ai.request.stream``).
            max_tokens: ``gen_ai.request.max_tokens``, if the request caps output.
            temperature: ``gen_ai.request.temperature``, if set.
            seed: ``gen_ai.request.seed``, if set.
            json_output: The request asks for JSON (``gen_ai.output.type=json``).
            server_url: The endpoint's base URL, for ``server.address``/``server.port``.
            messages: The messages sent; recorded only with content capture on.
            prompt: The completion prompt a base model gets instead, if any.
            secrets: Values scrubbed from anything this span records (API keys).
        """
        attrs = self._request
        if stream:
            attrs[GEN_AI_REQUEST_STREAM] = True
        if max_tokens is not None:
            attrs[GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
        if temperature is not None:
            attrs[GEN_AI_REQUEST_TEMPERATURE] = temperature
        if seed is not None:
            attrs[GEN_AI_REQUEST_SEED] = seed
        if json_output:
            attrs[GEN_AI_OUTPUT_TYPE] = "json"
        if server_url is not None:
            attrs.update(_server(server_url))
        self._content = (messages, prompt)
        self._secrets = secrets

    def __enter__(self) -> ChatCall:
        self._attach_if_live(self.recording)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._detach()

    async def iterate(self, events: AsyncIterator[T]) -> AsyncGenerator[T, None]:
        """Yield ``events`` with the span current while each one is produced.

        The span is made current around each step of ``events`` only, never
        across a ``yield``, so the consumer's context is left untouched. The
        stream is closed when iteration stops early.
        """
        ctx = trace.set_span_in_context(self.span) if self.recording else None
        iterator = aiter(events)
        try:
            while True:
                token = otel_context.attach(ctx) if ctx is not None else None
                try:
                    event = await anext(iterator)
                except StopAsyncIteration:
                    return
                finally:
                    if token is not None:
                        otel_context.detach(token)
                yield event
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

    def _final(self) -> dict[str, AttributeValue]:
        """The request attributes, plus the prompt when content capture is on."""
        attrs = self._request
        if capturing_content():
            messages, prompt = self._content
            text = to_json(input_messages(messages, prompt=prompt))
            attrs[GEN_AI_INPUT_MESSAGES] = scrub(text, self._secrets)
        return attrs

    def ok(
        self,
        response_model: str,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        *,
        finish_reason: str = "stop",
        simulated: bool = False,
        usage_estimated: bool = False,
        ttft_ms: float | None = None,
        text: str = "",
        tool_calls: Sequence[tuple[str, str, Mapping[str, Any]]] = (),
    ) -> None:
        """The call succeeded: record the response, end the span, record the metrics.

        Args:
            response_model: ``gen_ai.response.model``, the model that served the call.
            input_tokens: ``gen_ai.usage.input_tokens``.
            output_tokens: ``gen_ai.usage.output_tokens``.
            cost_usd: ``agentmesh.cost_usd``, from the catalog's pricing.
            finish_reason: ``gen_ai.response.finish_reasons`` (one generation).
            simulated: A scripted model answered (``agentmesh.simulated``).
            usage_estimated: Token counts were estimated, not reported.
            ttft_ms: Time to first chunk of a stream.
            text: The completion; recorded only with content capture on.
            tool_calls: ``(id, name, arguments)`` of requested tool calls (content).
        """
        if self._done:
            return
        self._done = True
        if self.recording:
            attrs = self._final()
            attrs[GEN_AI_RESPONSE_MODEL] = response_model
            attrs[GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
            attrs[GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
            attrs[GEN_AI_RESPONSE_FINISH_REASONS] = (finish_reason,)
            attrs[COST_USD] = cost_usd
            if simulated:
                attrs[SIMULATED] = True
            if usage_estimated:
                attrs[USAGE_ESTIMATED] = True
            if ttft_ms is not None:
                attrs[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttft_ms / 1000.0
            if GEN_AI_INPUT_MESSAGES in attrs:
                out = output_messages(text, finish_reason=finish_reason, tool_calls=tool_calls)
                attrs[GEN_AI_OUTPUT_MESSAGES] = scrub(to_json(out), self._secrets)
            self.span.set_attributes(attrs)
            self.span.end()
        if not metrics_on():
            return
        metrics.record_chat(
            time.perf_counter() - self._start,
            self._provider,
            self._request_model,
            self._model_id,
            self._node,
            response_model,
            input_tokens,
            output_tokens,
            cost_usd,
        )

    def cut_off(self, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        """A stream cut off mid-answer: record what it generated (estimated) at its end.

        Call it before :meth:`failed` (the cancellation) or :meth:`end`: the
        span then carries ``agentmesh.stream.cut_off``, the estimated usage and
        cost, and no response model (so it is counted as cancelled, not ok).
        """
        if self._done or not self.recording:
            return
        self._request[STREAM_CUT_OFF] = True
        self._request[GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
        self._request[GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
        self._request[COST_USD] = cost_usd
        self._request[USAGE_ESTIMATED] = True

    def failed(self, exc: BaseException) -> None:
        """The call failed with ``exc``: ``error.type``, status ERROR (scrubbed), metrics."""
        if self._done:
            return
        self._done = True
        if self.recording:
            record_error(self.span, exc, secrets=self._secrets, attributes=self._final())
            self.span.end()
        if not metrics_on():
            return
        metrics.record_chat(
            time.perf_counter() - self._start,
            self._provider,
            self._request_model,
            self._model_id,
            self._node,
            error_type=error_type(exc),
        )

    def end(self) -> None:
        """End the span without an outcome (a stream its consumer stopped reading)."""
        if not self._done:
            self._done = True
            if self.recording:
                self.span.set_attributes(self._final())
            self.span.end()


def _idle_chat() -> ChatCall:
    """A finished, non-recording call: every method is a no-op, so it can be shared."""
    idle = object.__new__(ChatCall)
    idle._start = 0.0
    idle._model_id = idle._provider = idle._request_model = ""
    idle._node = None
    idle._done = True
    idle._token = None
    idle.span = INVALID_SPAN
    idle.recording = False
    return idle


_IDLE_CHAT = _idle_chat()


def _server(url: str) -> dict[str, AttributeValue]:
    """``server.address`` and ``server.port`` of a base URL (nothing if it has no host)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return {}
    attrs: dict[str, AttributeValue] = {SERVER_ADDRESS: parts.hostname}
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    if port is not None:
        attrs[SERVER_PORT] = port
    return attrs
