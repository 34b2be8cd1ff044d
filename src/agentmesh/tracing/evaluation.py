"""A judge's verdict as a GenAI ``gen_ai.evaluation.result`` event.

The GenAI conventions want the event parented to the evaluated operation; a
judge node runs after the node it judges has ended (a separate LangGraph node),
so :func:`record_evaluation` puts it on the judge's span and names what was
judged (``agentmesh.evaluation.node``, ``branch``, ``round``, ``model``), which
identifies the judged node's ``invoke_agent`` span within the trace.
"""

from __future__ import annotations

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from agentmesh.tracing.attributes import (
    EVALUATION_BRANCH,
    EVALUATION_DECISION_ID,
    EVALUATION_GAVE_UP,
    EVALUATION_MODEL,
    EVALUATION_NODE,
    EVALUATION_ROUND,
    EVENT_EVALUATION_RESULT,
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
)
from agentmesh.tracing.spans import capturing_content, scrub

__all__ = ["EXPLANATION_LIMIT", "record_evaluation"]


EXPLANATION_LIMIT = 1000
"""Most characters of a verdict's feedback kept as ``gen_ai.evaluation.explanation``."""


def record_evaluation(
    span: Span,
    *,
    name: str,
    passed: bool,
    score: float | None = None,
    explanation: str | None = None,
    node: str | None = None,
    branch: str | None = None,
    round: int | None = None,
    model: str | None = None,
    gave_up: bool = False,
    decision_id: str | None = None,
) -> None:
    """Add one verdict to ``span`` as a ``gen_ai.evaluation.result`` event.

    The GenAI conventions want the event parented to the evaluated operation;
    a judge node runs after the node it judges has ended, so the event goes on
    the judge's span and names what it judged (``agentmesh.evaluation.node``,
    ``branch``, ``round``, ``model``): that identifies the judged node's
    ``invoke_agent`` span within the trace.

    Args:
        span: The judge node's span.
        name: ``gen_ai.evaluation.name``: the judge node's name.
        passed: The verdict; ``gen_ai.evaluation.score.label`` ``pass`` or ``fail``.
        score: ``gen_ai.evaluation.score.value`` (0..1), when the verdict has one.
        explanation: The feedback: model output, so recorded only with content
            capture on (:func:`capturing_content`), scrubbed of credentials and
            cut at :data:`EXPLANATION_LIMIT` characters.
        node: The judged node.
        branch: The judged branch key (empty when the node did not fan out).
        round: The judged answer's round.
        model: The model that wrote the judged answer.
        gave_up: The judge rejected the answer for the last time.
        decision_id: The routing decision of the judged answer's call (joins the
            verdict to its ``route`` span: ``train-router --trace`` reads both).
    """
    if not span.is_recording():
        return
    attrs: dict[str, AttributeValue] = {
        GEN_AI_EVALUATION_NAME: name,
        GEN_AI_EVALUATION_SCORE_LABEL: "pass" if passed else "fail",
    }
    if score is not None:
        attrs[GEN_AI_EVALUATION_SCORE_VALUE] = float(score)
    if explanation and capturing_content():
        attrs[GEN_AI_EVALUATION_EXPLANATION] = scrub(explanation, ())[:EXPLANATION_LIMIT]
    judged = {EVALUATION_NODE: node, EVALUATION_BRANCH: branch, EVALUATION_ROUND: round}
    attrs.update(
        {
            k: v
            for k, v in {
                **judged,
                EVALUATION_MODEL: model,
                EVALUATION_DECISION_ID: decision_id,
            }.items()
            if v is not None
        }
    )
    if gave_up:
        attrs[EVALUATION_GAVE_UP] = True
    span.add_event(EVENT_EVALUATION_RESULT, attrs)
