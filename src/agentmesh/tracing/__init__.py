"""Tracing: OpenTelemetry spans and metrics for every step's model choice, cost and outcome.

Used by every layer, importing none of them: instrumented code calls this API
with plain values.

- Spans: ``invoke_workflow {name}`` (:func:`workflow_span`), ``invoke_agent {node}``
  (:func:`node_span`, one per node execution; judge verdicts are
  ``gen_ai.evaluation.result`` events, :func:`record_evaluation`), ``route {node}``
  (:class:`RouteCall`, opened by the router), ``chat {model}`` per attempt
  (:class:`ChatCall`, opened by the gateway; callers add
  :func:`attempt_attributes`), ``embeddings {model}`` per embeddings call
  (:func:`embeddings_span`), ``execute_tool {name}`` (:func:`tool_span`);
  ``gen_ai.conversation.id`` = the run id on every span of a run
  (:func:`conversation` outside one). GenAI semantic-convention names where
  they exist, ``agentmesh.*`` otherwise (:mod:`agentmesh.tracing.attributes`).
- Metrics: token usage and duration (GenAI names), cost, decisions per model,
  and :func:`record_fallback`, :func:`record_escalation`,
  :func:`record_breaker_transition` for the resilience layer.
- Export: :func:`configure` (JSONL file, console, OTLP), :func:`load_spans`
  and :func:`replay_to_otlp` to read a trace file back or load it into any
  OTLP backend, :func:`summarize` and :func:`render_traces` for the CLI.
- Content (prompts, completions) only when opted in; secrets never.
"""

from agentmesh.tracing._run import RunScope, conversation, current_run
from agentmesh.tracing.chat import ChatCall
from agentmesh.tracing.config import Tracing, configure, otlp_span_exporter
from agentmesh.tracing.decision import ROUTE_LIST_LIMIT, RouteCall
from agentmesh.tracing.embeddings import embeddings_done, embeddings_span
from agentmesh.tracing.evaluation import record_evaluation
from agentmesh.tracing.jsonl import JsonlSpanExporter, span_to_dict
from agentmesh.tracing.metrics import (
    record_breaker_transition,
    record_chat,
    record_decision,
    record_escalation,
    record_fallback,
)
from agentmesh.tracing.reader import (
    ExportFailed,
    SpanRecord,
    TraceFileError,
    load_spans,
    parse_spans,
    replay_to_otlp,
    select_run,
    to_readable_span,
)
from agentmesh.tracing.spans import (
    Attributes,
    SpanScope,
    annotate_current,
    attempt_attributes,
    capturing_content,
    content_capture,
    error_type,
    node_span,
    record_error,
    span,
    tool_span,
    tracer,
    workflow_span,
)
from agentmesh.tracing.summary import render_summary, summarize
from agentmesh.tracing.tree import Trace, traces
from agentmesh.tracing.view import render_trace, render_traces

__all__ = [
    "ROUTE_LIST_LIMIT",
    "Attributes",
    "ChatCall",
    "ExportFailed",
    "JsonlSpanExporter",
    "RouteCall",
    "RunScope",
    "SpanRecord",
    "SpanScope",
    "Trace",
    "TraceFileError",
    "Tracing",
    "annotate_current",
    "attempt_attributes",
    "capturing_content",
    "configure",
    "content_capture",
    "conversation",
    "current_run",
    "embeddings_done",
    "embeddings_span",
    "error_type",
    "load_spans",
    "node_span",
    "otlp_span_exporter",
    "parse_spans",
    "record_breaker_transition",
    "record_chat",
    "record_decision",
    "record_error",
    "record_evaluation",
    "record_escalation",
    "record_fallback",
    "render_summary",
    "render_trace",
    "render_traces",
    "replay_to_otlp",
    "select_run",
    "span",
    "span_to_dict",
    "summarize",
    "to_readable_span",
    "tool_span",
    "tracer",
    "traces",
    "workflow_span",
]
