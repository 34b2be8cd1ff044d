"""Prometheus metrics of one process, fed by the spans agentmesh already makes.

:class:`Metrics` owns one ``prometheus_client`` registry (never the library's
global one, so two servers or a test and a server never share series). It is
fed in two ways:

- **From finished spans** (:meth:`Metrics.span_processor`, added by
  :func:`~agentmesh.tracing.configure` ``processors=``): every ``chat`` span
  (one per attempt, made by the gateway for every call path: nodes, judges,
  merges, ``RoutedChatModel``, the server) counts a call with its model,
  provider, node and outcome, its tokens, cost, duration and time to first
  token; every ``route`` span counts a decision; the ``agentmesh.fallback``,
  ``agentmesh.escalation`` and ``agentmesh.breaker`` events the resilience
  layer puts on the current span count fallbacks, escalations and breaker
  transitions, and set the breaker-state gauge; a ``node`` span at an
  escalation level above 0 counts one escalation (reason ``judge``: a judged
  step sent back one level up). The spans are the one record
  of what happened, so the metrics cannot disagree with the trace.
- **By the server** for what only it knows: requests by endpoint, model field,
  key and status, and their duration (:meth:`Metrics.observe_request`), and the
  breaker states read from the shared routing state at scrape time
  (:meth:`Metrics.set_breaker`).

Spans are only seen when they are *recorded*; :class:`RecordUnsampled` keeps
a sampler's dropped spans recorded (but not exported), so a client's
``traceparent`` with the sampled flag off does not hide its calls from the
metrics. Needs ``prometheus-client`` (extras ``server`` or ``metrics``).

=====================================================  =========  ==================================
series                                                 type       labels
=====================================================  =========  ==================================
``agentmesh_model_calls_total``                        counter    model, provider, node, outcome
                                                                  (ok, an error kind, cancelled)
``agentmesh_model_tokens_total``                       counter    model, node, type (input/output)
``agentmesh_model_cost_usd_total``                     counter    model, node
``agentmesh_model_call_duration_seconds``              histogram  model, outcome
``agentmesh_model_time_to_first_token_seconds``        histogram  model
``agentmesh_route_decisions_total``                    counter    strategy, chosen, node
``agentmesh_fallbacks_total``                          counter    from_model, to_model, reason
``agentmesh_escalations_total``                        counter    node, reason
``agentmesh_breaker_transitions_total``                counter    model, state
``agentmesh_breaker_state``                            gauge      model (0 closed, 1 half, 2 open)
``agentmesh_server_requests_total``                    counter    endpoint, model, key, status
``agentmesh_server_request_duration_seconds``          histogram  endpoint, model
``agentmesh_server_cost_usd_total``                    counter    model, key
=====================================================  =========  ==================================
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from agentmesh.tracing.attributes import (
    BREAKER_TO,
    COST_USD,
    ERROR_TYPE,
    ESCALATION_LEVEL,
    ESCALATION_REASON,
    FALLBACK_FROM,
    FALLBACK_REASON,
    FALLBACK_TO,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    MODEL_ID,
    NODE_KIND,
    NODE_NAME,
    OP_CHAT,
    ROUTE_CHOSEN,
    ROUTE_STRATEGY,
)
from agentmesh.tracing.metrics import DURATION_BUCKETS_S

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["BREAKER_STATES", "Metrics", "MetricsServer", "RecordUnsampled"]

BREAKER_STATES: Mapping[str, int] = {"closed": 0, "half_open": 1, "open": 2}
"""The value of ``agentmesh_breaker_state`` for each breaker state."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TOKEN_TYPES = ((GEN_AI_USAGE_INPUT_TOKENS, "input"), (GEN_AI_USAGE_OUTPUT_TOKENS, "output"))
_CANCELLED = frozenset({"CancelledError", "GeneratorExit"})  # error.type of a call cut off
_NONE = ""  # label value of a missing attribute (Prometheus has no null)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "Prometheus metrics need prometheus-client: pip install 'agentmesh[server]' "
            "(or 'agentmesh[metrics]')"
        ) from exc
    return prometheus_client


class RecordUnsampled(Sampler):
    """A sampler whose dropped spans are still recorded (seen by processors, never exported).

    OpenTelemetry's export processors skip spans whose sampled flag is off, so
    wrapping the provider's sampler in this keeps traces as sampled as before
    while every span still reaches :meth:`Metrics.span_processor`.
    """

    def __init__(self, base: Sampler) -> None:
        self._base = base

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """The base sampler's result, with ``DROP`` turned into ``RECORD_ONLY``."""
        found = self._base.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if found.decision is Decision.DROP:  # the span's attributes come from the result
            return SamplingResult(Decision.RECORD_ONLY, attributes, found.trace_state)
        return found

    def get_description(self) -> str:
        """``RecordUnsampled{<the base sampler's description>}``."""
        return f"RecordUnsampled{{{self._base.get_description()}}}"


def _text(attrs: Mapping[str, Any], key: str) -> str:
    value = attrs.get(key)
    return _NONE if value is None else str(value)


class _Feed(SpanProcessor):
    """Reads each finished span into its :class:`Metrics` (no work at span start)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self._metrics.read_span(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Metrics:
    """The Prometheus series of agentmesh in one registry (see the module's table).

    Attributes:
        registry: The ``prometheus_client`` registry holding every series.

    Raises:
        ImportError: ``prometheus-client`` is not installed; the message names the extra.
    """

    def __init__(self) -> None:
        prom = _prometheus()
        self.registry: CollectorRegistry = prom.CollectorRegistry(auto_describe=True)
        reg = self.registry
        buckets = (*DURATION_BUCKETS_S, float("inf"))
        counter, histogram, gauge = prom.Counter, prom.Histogram, prom.Gauge
        self.calls = counter(
            "agentmesh_model_calls",
            "Model call attempts, by outcome (ok or the error kind).",
            ["model", "provider", "node", "outcome"],
            registry=reg,
        )
        self.tokens = counter(
            "agentmesh_model_tokens",
            "Tokens billed by model calls.",
            ["model", "node", "type"],
            registry=reg,
        )
        self.cost = counter(
            "agentmesh_model_cost_usd",
            "Cost of model calls in USD, from catalog pricing.",
            ["model", "node"],
            registry=reg,
        )
        self.duration = histogram(
            "agentmesh_model_call_duration_seconds",
            "Duration of model call attempts.",
            ["model", "outcome"],
            buckets=buckets,
            registry=reg,
        )
        self.ttft = histogram(
            "agentmesh_model_time_to_first_token_seconds",
            "Time to the first token of streamed model calls.",
            ["model"],
            buckets=buckets,
            registry=reg,
        )
        self.decisions = counter(
            "agentmesh_route_decisions",
            "Routing decisions, by strategy and chosen model (empty when none fit).",
            ["strategy", "chosen", "node"],
            registry=reg,
        )
        self.fallbacks = counter(
            "agentmesh_fallbacks",
            "Calls moved to another model after a failure.",
            ["from_model", "to_model", "reason"],
            registry=reg,
        )
        self.escalations = counter(
            "agentmesh_escalations",
            "Steps re-run one escalation level up.",
            ["node", "reason"],
            registry=reg,
        )
        self.breaker_transitions = counter(
            "agentmesh_breaker_transitions",
            "Circuit breaker transitions seen by this process, by new state.",
            ["model", "state"],
            registry=reg,
        )
        self.breaker_state = gauge(
            "agentmesh_breaker_state",
            "Circuit breaker state per model: 0 closed, 1 half-open, 2 open.",
            ["model"],
            registry=reg,
        )
        self.requests = counter(
            "agentmesh_server_requests",
            "Requests served by agentmesh serve, by endpoint, model field, key and status.",
            ["endpoint", "model", "key", "status"],
            registry=reg,
        )
        self.request_duration = histogram(
            "agentmesh_server_request_duration_seconds",
            "Duration of requests served by agentmesh serve (streams: until the last byte).",
            ["endpoint", "model"],
            buckets=buckets,
            registry=reg,
        )
        self.request_cost = counter(
            "agentmesh_server_cost_usd",
            "Cost of the requests served, in USD, by model field and key.",
            ["model", "key"],
            registry=reg,
        )

    # --- feeding --------------------------------------------------------------------

    def span_processor(self) -> SpanProcessor:
        """A span processor feeding these metrics (pass it to ``configure(processors=...)``)."""
        return _Feed(self)

    def read_span(self, span: ReadableSpan) -> None:
        """Count what one finished span says (chat and route spans, resilience events)."""
        attrs = span.attributes or {}
        if attrs.get(GEN_AI_OPERATION_NAME) == OP_CHAT and MODEL_ID in attrs:
            self._chat(span, attrs)
        elif ROUTE_STRATEGY in attrs:
            self.decisions.labels(
                _text(attrs, ROUTE_STRATEGY), _text(attrs, ROUTE_CHOSEN), _text(attrs, NODE_NAME)
            ).inc()
        elif NODE_KIND in attrs:
            level = attrs.get(ESCALATION_LEVEL)
            if isinstance(level, int) and level > 0:  # a step re-run one level up (judge)
                self.escalations.labels(_text(attrs, NODE_NAME), "judge").inc()
        for event in span.events:
            handler = _EVENTS.get(event.name)
            if handler is not None:
                handler(self, event.attributes or {})

    def _chat(self, span: ReadableSpan, attrs: Mapping[str, Any]) -> None:
        model, node = _text(attrs, MODEL_ID), _text(attrs, NODE_NAME)
        error = attrs.get(ERROR_TYPE)
        if error is not None and error not in _CANCELLED:
            outcome = str(error)
        elif error is None and GEN_AI_RESPONSE_MODEL in attrs:
            outcome = "ok"
        else:  # cancelled, or ended without an outcome: its consumer stopped (client gone)
            outcome = "cancelled"
        self.calls.labels(model, _text(attrs, GEN_AI_PROVIDER_NAME), node, outcome).inc()
        if span.start_time is not None and span.end_time is not None:
            self.duration.labels(model, outcome).observe((span.end_time - span.start_time) / 1e9)
        ttft = attrs.get(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
        if isinstance(ttft, int | float):
            self.ttft.labels(model).observe(float(ttft))
        for key, kind in (
            (GEN_AI_USAGE_INPUT_TOKENS, "input"),
            (GEN_AI_USAGE_OUTPUT_TOKENS, "output"),
        ):
            count = attrs.get(key)
            if isinstance(count, int) and count:
                self.tokens.labels(model, node, kind).inc(count)
        cost = attrs.get(COST_USD)
        if isinstance(cost, int | float) and cost > 0:
            self.cost.labels(model, node).inc(float(cost))

    def _fallback(self, attrs: Mapping[str, Any]) -> None:
        self.fallbacks.labels(
            _text(attrs, FALLBACK_FROM), _text(attrs, FALLBACK_TO), _text(attrs, FALLBACK_REASON)
        ).inc()

    def _escalation(self, attrs: Mapping[str, Any]) -> None:
        self.escalations.labels(_text(attrs, NODE_NAME), _text(attrs, ESCALATION_REASON)).inc()

    def _breaker(self, attrs: Mapping[str, Any]) -> None:
        model, state = _text(attrs, MODEL_ID), _text(attrs, BREAKER_TO)
        self.breaker_transitions.labels(model, state).inc()
        self.set_breaker(model, state)

    def set_breaker(self, model: str, state: str) -> None:
        """Set ``model``'s breaker-state gauge (``closed``, ``half_open`` or ``open``)."""
        value = BREAKER_STATES.get(state)
        if value is not None:
            self.breaker_state.labels(model).set(value)

    def observe_request(
        self,
        endpoint: str,
        model: str,
        key: str,
        status: int,
        duration_s: float,
        cost_usd: float = 0.0,
    ) -> None:
        """Count one request the server answered (``key``: the virtual key's id, or empty)."""
        self.requests.labels(endpoint, model, key, str(status)).inc()
        self.request_duration.labels(endpoint, model).observe(duration_s)
        if cost_usd > 0:
            self.request_cost.labels(model, key).inc(cost_usd)

    # --- reading --------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Every series in Prometheus' text format (what ``GET /metrics`` returns)."""
        data: bytes = _prometheus().generate_latest(self.registry)
        return data

    content_type = CONTENT_TYPE
    """The ``Content-Type`` of :meth:`exposition`."""

    def serve(self, port: int, host: str = "127.0.0.1") -> MetricsServer:
        """Serve ``GET /metrics`` on ``host:port`` in a daemon thread (``run --metrics-port``).

        Raises:
            OSError: The port cannot be bound.
        """
        server, thread = _prometheus().start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, thread)


_EVENTS = {
    "agentmesh.fallback": Metrics._fallback,
    "agentmesh.escalation": Metrics._escalation,
    "agentmesh.breaker": Metrics._breaker,
}


class MetricsServer:
    """The HTTP endpoint of :meth:`Metrics.serve`; :meth:`close` stops it.

    Attributes:
        port: The port it listens on (useful when 0 was asked for).
    """

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = int(server.server_address[1])

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
