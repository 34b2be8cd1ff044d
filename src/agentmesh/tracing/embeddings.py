"""The ``embeddings {model}`` span of one embeddings call, fed plain values by the gateway."""

from __future__ import annotations

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from agentmesh.tracing.attributes import (
    COST_USD,
    GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    MODEL_ID,
    OP_EMBEDDINGS,
    SIMULATED,
    USAGE_ESTIMATED,
)
from agentmesh.tracing.spans import Attributes, SpanScope

__all__ = ["embeddings_done", "embeddings_span"]


def embeddings_span(
    model_id: str, provider: str, request_model: str, attributes: Attributes | None = None
) -> SpanScope:
    """``embeddings {request_model}`` (kind CLIENT, ``gen_ai.operation.name=embeddings``).

    Use it with ``with``: an exception leaving the block sets ``error.type``;
    on success call :func:`embeddings_done` inside the block.
    """
    attrs: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: OP_EMBEDDINGS,
        GEN_AI_PROVIDER_NAME: provider,
        GEN_AI_REQUEST_MODEL: request_model,
        MODEL_ID: model_id,
    }
    if attributes:
        attrs.update(attributes)
    return SpanScope(f"{OP_EMBEDDINGS} {request_model}", attrs, kind=SpanKind.CLIENT)


def embeddings_done(
    scope: SpanScope,
    *,
    response_model: str,
    input_tokens: int,
    cost_usd: float,
    dimensions: int,
    simulated: bool = False,
    usage_estimated: bool = False,
) -> None:
    """Record a successful embeddings call's outcome on its span."""
    if not scope.recording:
        return
    attrs: dict[str, AttributeValue] = {
        GEN_AI_RESPONSE_MODEL: response_model,
        GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        GEN_AI_EMBEDDINGS_DIMENSION_COUNT: dimensions,
        COST_USD: cost_usd,
    }
    if simulated:
        attrs[SIMULATED] = True
    if usage_estimated:
        attrs[USAGE_ESTIMATED] = True
    scope.set_attributes(attrs)
