"""Metrics an operator watches, recorded through the global OpenTelemetry meter.

GenAI conventions where they exist (``gen_ai.client.token.usage``,
``gen_ai.client.operation.duration``, with the conventions' bucket boundaries as
advice), ``agentmesh.*`` otherwise:

=================================  =========  ===========  ===============================
name                               type       unit         attributes
=================================  =========  ===========  ===============================
``gen_ai.client.token.usage``      histogram  ``{token}``  operation, provider, request and
                                                           response model, token type,
                                                           ``agentmesh.model_id``/``node.name``
``gen_ai.client.operation.duration`` histogram ``s``       same, plus ``error.type``
``agentmesh.cost``                 counter    ``{USD}``    model id, node, provider
``agentmesh.route.decisions``      counter    ``{decision}`` chosen model, strategy, node,
                                                           ``error.type`` when no route
``agentmesh.fallbacks``            counter    ``{fallback}`` from, to, reason
``agentmesh.escalations``          counter    ``{escalation}`` node, level, reason
``agentmesh.breaker.transitions``  counter    ``{transition}`` model, from and to state
=================================  =========  ===========  ===============================

The gateway and the router record their own; the resilience layer calls
:func:`record_fallback`, :func:`record_escalation` and
:func:`record_breaker_transition`, which also add an event to the current span
(the evidence of *why* the next attempt used another model).

The instruments are created once, at import, from the global API's proxy meter:
they are no-ops until an application installs a ``MeterProvider``, then bind to
it (OpenTelemetry's own pattern for library instrumentation).
"""

from __future__ import annotations

from opentelemetry import metrics, trace
from opentelemetry.util.types import AttributeValue

from agentmesh.tracing._state import metrics_on, spans_on
from agentmesh.tracing.attributes import (
    BREAKER_FROM,
    BREAKER_TO,
    ERROR_TYPE,
    ESCALATION_LEVEL,
    ESCALATION_REASON,
    FALLBACK_FROM,
    FALLBACK_REASON,
    FALLBACK_TO,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    METRIC_BREAKER_TRANSITIONS,
    METRIC_COST,
    METRIC_ESCALATIONS,
    METRIC_FALLBACKS,
    METRIC_OPERATION_DURATION,
    METRIC_ROUTE_DECISIONS,
    METRIC_TOKEN_USAGE,
    MODEL_ID,
    NODE_NAME,
    OP_CHAT,
    ROUTE_CHOSEN,
    ROUTE_STRATEGY,
    TOKEN_INPUT,
    TOKEN_OUTPUT,
)
from agentmesh.tracing.spans import INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION

__all__ = [
    "DURATION_BUCKETS_S",
    "TOKEN_BUCKETS",
    "record_breaker_transition",
    "record_chat",
    "record_decision",
    "record_escalation",
    "record_fallback",
]

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
"""Bucket boundaries the GenAI conventions advise for ``gen_ai.client.token.usage``."""
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
"""Bucket boundaries the GenAI conventions advise for ``gen_ai.client.operation.duration``."""

_METER = metrics.get_meter(INSTRUMENTATION_NAME, INSTRUMENTATION_VERSION)
_TOKENS = _METER.create_histogram(
    METRIC_TOKEN_USAGE,
    unit="{token}",
    description="Number of input and output tokens used.",
    explicit_bucket_boundaries_advisory=[float(b) for b in TOKEN_BUCKETS],
)
_DURATION = _METER.create_histogram(
    METRIC_OPERATION_DURATION,
    unit="s",
    description="GenAI operation duration.",
    explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
)
_COST = _METER.create_counter(
    METRIC_COST, unit="{USD}", description="Cost of model calls, from catalog pricing."
)
_DECISIONS = _METER.create_counter(
    METRIC_ROUTE_DECISIONS, unit="{decision}", description="Routing decisions, by chosen model."
)
_FALLBACKS = _METER.create_counter(
    METRIC_FALLBACKS, unit="{fallback}", description="Calls moved to another model after a failure."
)
_ESCALATIONS = _METER.create_counter(
    METRIC_ESCALATIONS, unit="{escalation}", description="Steps re-run at a higher tier."
)
_BREAKER = _METER.create_counter(
    METRIC_BREAKER_TRANSITIONS,
    unit="{transition}",
    description="Circuit breaker state changes, by model and new state.",
)


def record_chat(
    duration_s: float,
    provider: str,
    request_model: str,
    model_id: str,
    node: str | None = None,
    response_model: str | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost_usd: float = 0.0,
    *,
    error_type: str | None = None,
) -> None:
    """Record one model call: its duration, and tokens and cost when it succeeded.

    Args:
        duration_s: Wall time of the call, in seconds.
        provider: ``gen_ai.provider.name``.
        request_model: ``gen_ai.request.model`` (the wire model name).
        model_id: ``agentmesh.model_id`` (the catalog id).
        node: ``agentmesh.node.name`` of the calling node, if known.
        response_model: ``gen_ai.response.model``, the model that served the call.
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
        cost_usd: The call's cost (counted in ``agentmesh.cost``).
        error_type: ``error.type`` of a failed call (then only the duration is recorded).
    """
    if not metrics_on():
        return
    attrs: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: OP_CHAT,
        GEN_AI_PROVIDER_NAME: provider,
        GEN_AI_REQUEST_MODEL: request_model,
        MODEL_ID: model_id,
    }
    if node is not None:
        attrs[NODE_NAME] = node
    if error_type is not None:
        attrs[ERROR_TYPE] = error_type
        _DURATION.record(duration_s, attrs)
        return
    if response_model is not None:
        attrs[GEN_AI_RESPONSE_MODEL] = response_model
    _DURATION.record(duration_s, attrs)
    _TOKENS.record(input_tokens, {**attrs, GEN_AI_TOKEN_TYPE: TOKEN_INPUT})
    _TOKENS.record(output_tokens, {**attrs, GEN_AI_TOKEN_TYPE: TOKEN_OUTPUT})
    if cost_usd:
        _COST.add(cost_usd, attrs)


def record_decision(
    model: str | None, *, strategy: str, node: str, error_type: str | None = None
) -> None:
    """Count one routing decision for ``model`` (``None`` with ``error_type`` when none fit)."""
    if not metrics_on():
        return
    attrs: dict[str, AttributeValue] = {ROUTE_STRATEGY: strategy, NODE_NAME: node}
    if model is not None:
        attrs[ROUTE_CHOSEN] = model
    if error_type is not None:
        attrs[ERROR_TYPE] = error_type
    _DECISIONS.add(1, attrs)


def _event(name: str, attributes: dict[str, AttributeValue]) -> None:
    if not spans_on():
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(name, attributes)


def record_fallback(
    model_from: str, model_to: str, reason: str, *, node: str | None = None
) -> None:
    """A call moves from ``model_from`` to ``model_to`` because of ``reason`` (an error kind).

    Counts ``agentmesh.fallbacks`` and adds an ``agentmesh.fallback`` event to the
    current span.
    """
    attrs: dict[str, AttributeValue] = {
        FALLBACK_FROM: model_from,
        FALLBACK_TO: model_to,
        FALLBACK_REASON: reason,
    }
    if node is not None:
        attrs[NODE_NAME] = node
    _FALLBACKS.add(1, attrs)
    _event("agentmesh.fallback", attrs)


def record_escalation(node: str, level: int, *, reason: str | None = None) -> None:
    """A step of ``node`` is re-run at escalation ``level`` (``reason``: error kind or ``judge``).

    Counts ``agentmesh.escalations`` and adds an ``agentmesh.escalation`` event to
    the current span.
    """
    attrs: dict[str, AttributeValue] = {NODE_NAME: node, ESCALATION_LEVEL: level}
    if reason is not None:
        attrs[ESCALATION_REASON] = reason
    _ESCALATIONS.add(1, attrs)
    _event("agentmesh.escalation", attrs)


def record_breaker_transition(model: str, from_state: str, to_state: str) -> None:
    """``model``'s circuit breaker moved from ``from_state`` to ``to_state``.

    States are ``closed``, ``open`` and ``half_open``. Counts
    ``agentmesh.breaker.transitions`` and adds an ``agentmesh.breaker`` event to
    the current span.
    """
    attrs: dict[str, AttributeValue] = {
        MODEL_ID: model,
        BREAKER_FROM: from_state,
        BREAKER_TO: to_state,
    }
    _BREAKER.add(1, attrs)
    _event("agentmesh.breaker", attrs)
