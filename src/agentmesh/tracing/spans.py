"""The spans every layer opens, and the rules they share (errors, secrets, content).

Library code takes its tracer from the **global OpenTelemetry API**, as OTel's
library-instrumentation guidelines ask: until an application installs an SDK
(for instance with :func:`agentmesh.tracing.configure`) no span is made at all
(see :mod:`agentmesh.tracing._state`). The global tracer provider is the one piece
of process-global state, by OpenTelemetry's design: instrumented libraries never
get a tracer handed to them, so the application decides, once, where spans go.

- :func:`span`: any span, made current while its ``with`` block runs.
- :func:`workflow_span` (``invoke_workflow {name}``), :func:`node_span`
  (``invoke_agent {name}``), :func:`tool_span` (``execute_tool {name}``): what the
  workflow layer opens, after the GenAI agent conventions. Each binds what it
  knows of the run (conversation id, workflow, node) in a context variable for
  the spans opened inside it, so every span of a run carries
  ``gen_ai.conversation.id`` and tool spans name their node, whoever opens them.
  :func:`conversation` binds a conversation id outside a workflow run.
- Judge verdicts: :func:`agentmesh.tracing.evaluation.record_evaluation`.
- :func:`attempt_attributes`: what the resilience layer passes to
  ``Gateway.invoke(..., attributes=...)`` so each ``chat`` span says which
  attempt, fallback and escalation level it was.
- Content (prompts, completions, tool arguments and results) is recorded only
  when opted in: :func:`content_capture` / ``configure(capture_content=True)``,
  or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agentmesh._redact import scrub_credentials
from agentmesh.tracing._run import RunScope, bind_run, current_run, reset_run, with_conversation
from agentmesh.tracing._state import spans_on
from agentmesh.tracing.attributes import (
    ATTEMPT,
    CONTENT_ENV_VAR,
    ERROR_TYPE,
    ESCALATION_LEVEL,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
    FALLBACK,
    FALLBACK_FROM,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
    NODE_KIND,
    NODE_NAME,
    NODE_ROLE,
    OP_EXECUTE_TOOL,
    OP_INVOKE_AGENT,
    OP_INVOKE_WORKFLOW,
    ROUTE_DECISION_ID,
    RUN_BUDGET_USD,
    RUN_ID,
)

__all__ = [
    "CurrentSpan",
    "INSTRUMENTATION_NAME",
    "INSTRUMENTATION_VERSION",
    "Attributes",
    "SpanScope",
    "annotate_current",
    "attempt_attributes",
    "capturing_content",
    "content_capture",
    "error_type",
    "node_span",
    "record_error",
    "agent_id",
    "scrub",
    "span",
    "to_json",
    "tool_span",
    "tracer",
    "workflow_span",
]

Attributes = Mapping[str, AttributeValue]
"""Span attributes as plain values (str, bool, int, float, or sequences of one of them)."""

INSTRUMENTATION_NAME = "agentmesh"
"""The instrumentation scope of every agentmesh span and metric."""


def _version() -> str:
    try:
        return version("agentmesh")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


INSTRUMENTATION_VERSION = _version()

# A ProxyTracer: a no-op until a provider is installed, then it binds to it once.
_TRACER = trace.get_tracer(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)

_CAPTURE: ContextVar[bool | None] = ContextVar("agentmesh_capture_content", default=None)
_TRUE = frozenset({"true", "1", "yes", "span_only", "span_and_event"})
# Read once, as the SDK reads its OTEL_* settings: a lookup per call costs ~1 us.
_ENV_CAPTURE = os.environ.get(CONTENT_ENV_VAR, "").strip().lower() in _TRUE


def tracer() -> trace.Tracer:
    """The tracer of every agentmesh span (from the global OpenTelemetry API)."""
    return _TRACER


def capturing_content() -> bool:
    """Whether prompts, completions and tool payloads may be put on spans.

    The innermost :func:`content_capture` (or ``configure(capture_content=...)``)
    decides; when none was set, ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    as it was when :mod:`agentmesh.tracing` was imported does (``true`` turns
    capture on). Off by default.
    """
    value = _CAPTURE.get()
    return _ENV_CAPTURE if value is None else value


@contextmanager
def content_capture(enabled: bool) -> Iterator[None]:
    """Turn content capture on or off for the code run inside the block.

    It is a context variable, so it follows asyncio tasks started inside the
    block (and LangGraph's fan-out), like the current span does.
    """
    token = _CAPTURE.set(enabled)
    try:
        yield
    finally:
        _CAPTURE.reset(token)


def _set_capture(enabled: bool | None) -> Any:
    """Set the capture flag in the current context; returns the token to reset it."""
    return _CAPTURE.set(enabled)


def _reset_capture(token: Any) -> None:
    try:
        _CAPTURE.reset(token)
    except ValueError:  # reset from another context: fall back to "not set"
        _CAPTURE.set(None)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret of 6 characters or more replaced by ``***``.

    Credentials found by shape (a URL's ``user:pass@``, a ``Basic`` or
    ``Bearer`` token) are masked too, whether or not they were listed.
    """
    for secret in secrets:
        if secret and len(secret) >= 6 and secret in text:
            text = text.replace(secret, "***")
    return scrub_credentials(text)


def to_json(value: Any) -> str:
    """Compact JSON of a content value (anything not JSON-native becomes its ``str``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def error_type(exc: BaseException) -> str:
    """``error.type`` of a failure: the taxonomy's ``kind`` when it has one, else the class."""
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) and kind else type(exc).__qualname__


def record_error(
    span: Span,
    exc: BaseException,
    *,
    secrets: Iterable[str | None] = (),
    attributes: Mapping[str, AttributeValue] | None = None,
) -> None:
    """Mark ``span`` failed by ``exc``: ``error.type``, status ERROR and an ``exception`` event.

    The message (and, for unclassified exceptions, the stack trace) is scrubbed
    of ``secrets`` first. Classified errors (with a ``kind``) carry no stack
    trace: they are outcomes, not bugs. ``attributes`` are set in the same batch.
    """
    if not span.is_recording():
        return
    secrets = tuple(secrets)
    message = scrub(str(exc), secrets)
    event: dict[str, AttributeValue] = {
        EXCEPTION_TYPE: f"{type(exc).__module__}.{type(exc).__qualname__}",
        EXCEPTION_MESSAGE: message,
    }
    if getattr(exc, "kind", None) is None:
        event[EXCEPTION_STACKTRACE] = scrub("".join(traceback.format_exception(exc)), secrets)
    span.add_event("exception", event)
    span.set_attributes(
        {**attributes, ERROR_TYPE: error_type(exc)} if attributes else {ERROR_TYPE: error_type(exc)}
    )
    span.set_status(Status(StatusCode.ERROR, message))


class CurrentSpan:
    """Mixin: makes ``self.span`` the current span while a ``with`` block runs.

    Subclasses declare ``span`` and ``_token`` (in their ``__slots__``), attach
    in ``__enter__`` and detach in ``__exit__``; the token is OTel's, from
    ``context.attach``, and must be detached in the task that attached it.
    """

    __slots__ = ("_token", "span")
    span: Span
    _token: Token[Context] | None

    def _attach(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def _attach_if_live(self, recording: bool) -> None:
        """Attach when the span records, or is a real (sampled-out) span worth propagating."""
        if recording or (self.span is not INVALID_SPAN and self.span.get_span_context().is_valid):
            self._attach()

    def _detach(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None


class SpanScope(CurrentSpan):
    """A started span that is the current span while its ``with`` block runs.

    Leaving the block ends the span; an exception leaving it is recorded
    (:func:`record_error`) and re-raised. Use it within one task: the block may
    ``await``, but must not be entered in one task and left in another.

    Attributes:
        span: The OpenTelemetry span (a non-recording one when tracing is off).
    """

    __slots__ = ("_bind", "_bound")

    def __init__(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        bind: RunScope | None = None,
    ) -> None:
        self._token = None
        self._bind = bind
        self._bound: Token[RunScope] | None = None
        if not spans_on():
            self.span = INVALID_SPAN
            return
        self.span = _TRACER.start_span(
            name,
            kind=kind,
            attributes=with_conversation(dict(attributes or {})),
            record_exception=False,
            set_status_on_exception=False,
        )

    @property
    def recording(self) -> bool:
        """True when the span is recorded (tracing is configured and sampled it)."""
        return self.span.is_recording()

    def set(self, key: str, value: AttributeValue) -> None:
        """Set one attribute (ignored when not recording)."""
        self.span.set_attribute(key, value)

    def set_attributes(self, attributes: Attributes) -> None:
        """Set several attributes (ignored when not recording)."""
        self.span.set_attributes(attributes)

    def set_content(self, key: str, value: Any, *, secrets: Iterable[str | None] = ()) -> None:
        """Set a content attribute (JSON unless a string) only if content capture is on."""
        if self.span.is_recording() and capturing_content():
            text = value if isinstance(value, str) else to_json(value)
            self.span.set_attribute(key, scrub(text, secrets))

    def __enter__(self) -> SpanScope:
        if self._bind is not None:
            self._bound = bind_run(self._bind)
        if self.span.get_span_context().is_valid:
            self._attach()
        return self

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make the span current for a block without ending it.

        For work that outlives one ``with`` block in one task, e.g. a stream: the
        task it starts inside this block inherits the span; :meth:`end` it later.
        """
        token = None
        if self.span.get_span_context().is_valid:
            token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            if token is not None:
                otel_context.detach(token)

    def end(self, exc: BaseException | None = None) -> None:
        """End the span (used with :meth:`current`), recording ``exc`` if given."""
        if exc is not None:
            record_error(self.span, exc)
        self.span.end()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._detach()
        if self._bound is not None:
            reset_run(self._bound)
            self._bound = None
        if exc is not None:
            record_error(self.span, exc)
        self.span.end()


def annotate_current(attributes: Attributes) -> None:
    """Set attributes on the current span when it records (e.g. a strategy on its route span)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(attributes)


def span(
    name: str, attributes: Attributes | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> SpanScope:
    """Open any agentmesh span, e.g. the top-level span of a CLI command (use ``with``)."""
    return SpanScope(name, attributes, kind=kind)


def workflow_span(
    name: str,
    *,
    run_id: str | None = None,
    budget_usd: float | None = None,
    attributes: Attributes | None = None,
) -> SpanScope:
    """``invoke_workflow {name}``: the span of one workflow run (the root of its trace).

    Inside its block, every agentmesh span carries ``gen_ai.conversation.id`` =
    ``run_id`` and node spans get their ``gen_ai.agent.id`` from ``name``.

    Args:
        name: The workflow's (low-cardinality) name, ``gen_ai.workflow.name``.
        run_id: The run's id, ``agentmesh.run.id`` and ``gen_ai.conversation.id``
            (what ``trace show --run`` finds).
        budget_usd: The run's budget, ``agentmesh.run.budget_usd`` (``trace report``
            draws its burn-down).
        attributes: More attributes.
    """
    attrs: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: OP_INVOKE_WORKFLOW,
        GEN_AI_WORKFLOW_NAME: name,
    }
    if run_id is not None:
        attrs[RUN_ID] = run_id
        attrs[GEN_AI_CONVERSATION_ID] = run_id
    if budget_usd is not None:
        attrs[RUN_BUDGET_USD] = float(budget_usd)
    if attributes:
        attrs.update(attributes)
    bound = current_run()
    bind = RunScope(run_id or bound.conversation_id, name, None)
    return SpanScope(f"{OP_INVOKE_WORKFLOW} {name}", attrs, bind=bind)


def agent_id(workflow: str | None, node: str) -> str:
    """``gen_ai.agent.id`` of a node: ``{workflow}/{node}`` (the node alone outside a workflow)."""
    return f"{workflow}/{node}" if workflow else node


def node_span(
    name: str,
    kind: str,
    *,
    role: str | None = None,
    run_id: str | None = None,
    workflow: str | None = None,
    attributes: Attributes | None = None,
) -> SpanScope:
    """``invoke_agent {name}``: one execution of a workflow node (routing and calls nest inside).

    A GenAI *invoke agent* span (kind INTERNAL: the agent runs in-process) with
    ``gen_ai.agent.name`` = the node, ``gen_ai.agent.id`` = ``{workflow}/{node}``,
    ``gen_ai.conversation.id`` = the run, and ``agentmesh.node.*``. It leaves out
    ``gen_ai.provider.name`` and ``gen_ai.request.model``: the router picks the
    model (and so the provider) per call, and each ``chat`` span inside says which.

    Args:
        name: The node's name in the graph, ``gen_ai.agent.name`` and ``agentmesh.node.name``.
        kind: ``planner``, ``executor``, ``tool``, ``judge`` or ``merge``.
        role: The role it routes as, when it differs from the kind.
        run_id: The run, when known (else the enclosing workflow span's).
        workflow: The workflow's name (else the enclosing workflow span's).
        attributes: More attributes (e.g. ``agentmesh.escalation.level``).
    """
    bound = current_run()
    workflow = workflow or bound.workflow
    bind = RunScope(run_id or bound.conversation_id, workflow, name)
    if not spans_on():  # no span to carry them: the scope is bound, no attributes made
        return SpanScope(f"{OP_INVOKE_AGENT} {name}", bind=bind)
    attrs: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: OP_INVOKE_AGENT,
        GEN_AI_AGENT_NAME: name,
        GEN_AI_AGENT_ID: agent_id(workflow, name),
        NODE_NAME: name,
        NODE_KIND: kind,
    }
    if role is not None:
        attrs[NODE_ROLE] = role
    if run_id is not None:
        attrs[RUN_ID] = run_id
    if attributes:
        attrs.update(attributes)
    return SpanScope(f"{OP_INVOKE_AGENT} {name}", with_conversation(attrs, run_id), bind=bind)


def tool_span(
    name: str,
    *,
    call_id: str | None = None,
    tool_type: str = "function",
    arguments: Any = None,
    attributes: Attributes | None = None,
) -> SpanScope:
    """``execute_tool {name}``: one tool call. Record its result with ``set_content``.

    Inside a node's span it names the node (``agentmesh.node.name``) unless
    ``attributes`` do.

    Args:
        name: ``gen_ai.tool.name``.
        call_id: ``gen_ai.tool.call.id``, the model's id for the call, if any.
        tool_type: ``function``, ``extension`` or ``datastore``.
        arguments: The arguments; recorded (as JSON) only with content capture on.
        attributes: More attributes.
    """
    attrs: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: OP_EXECUTE_TOOL,
        GEN_AI_TOOL_NAME: name,
        GEN_AI_TOOL_TYPE: tool_type,
    }
    node = current_run().node
    if node is not None:
        attrs[NODE_NAME] = node
    if call_id is not None:
        attrs[GEN_AI_TOOL_CALL_ID] = call_id
    if attributes:
        attrs.update(attributes)
    scope = SpanScope(f"{OP_EXECUTE_TOOL} {name}", attrs)
    if arguments is not None:
        scope.set_content(GEN_AI_TOOL_CALL_ARGUMENTS, arguments)
    return scope


def attempt_attributes(
    *,
    attempt: int,
    fallback: bool = False,
    fallback_from: str | None = None,
    escalation: int = 0,
    node: str | None = None,
    decision_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, AttributeValue]:
    """Attributes of one call attempt, for ``Gateway.invoke(..., attributes=...)``.

    Defaults are left out (no fallback, escalation 0): each attribute costs the
    SDK about a microsecond, and readers treat a missing one as its default.

    Args:
        attempt: 1 for the step's first call, then 2, 3... across retries and fallbacks.
        fallback: The called model is a fallback, not the decision's chosen model.
        fallback_from: The model whose failure led here.
        escalation: The escalation level the step runs at.
        node: The calling node.
        decision_id: The routing decision the call is made on (links it to its ``route`` span).
        run_id: The workflow run.
    """
    attrs: dict[str, AttributeValue] = {ATTEMPT: attempt}
    if fallback:
        attrs[FALLBACK] = True
    if escalation:
        attrs[ESCALATION_LEVEL] = escalation
    if fallback_from is not None:
        attrs[FALLBACK_FROM] = fallback_from
    if node is not None:
        attrs[NODE_NAME] = node
    if decision_id:
        attrs[ROUTE_DECISION_ID] = decision_id
    if run_id is not None:
        attrs[RUN_ID] = run_id
    return attrs
