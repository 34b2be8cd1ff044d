"""Step-specific escalation: call, check the answer, and climb a tier until it passes.

``call_until(caller, call, check)`` is what a judge node uses
(and what Python code can use directly for one call): each round routes one
escalation level higher (the next cascade rung, or the next tier), adds the
previous answer and the check's feedback to the conversation, and records the
check's score in the routing matrix. It stops at the first accepted answer, or
gives up after ``max_rounds`` with every round on the result.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Literal, overload

from langchain_core.messages import AIMessage, HumanMessage

from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.resilience.call import Call, CallFailed, CallResult, RequestBuilder
from agentmesh.resilience.caller import ResilientCaller
from agentmesh.tracing import record_escalation

__all__ = [
    "Check",
    "EscalationResult",
    "Round",
    "Verdict",
    "add_feedback",
    "call_until",
    "with_feedback",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's judgement of one answer.

    Attributes:
        passed: The answer is accepted.
        score: Quality in [0, 1], recorded in the routing matrix (default 1 or 0).
        feedback: What was wrong, shown to the next, stronger model.
    """

    passed: bool
    score: float | None = None
    feedback: str = ""


Check = Callable[[ModelResponse], "Verdict | bool | Awaitable[Verdict | bool]"]
"""Judges an answer: returns a :class:`Verdict` or a bool, possibly awaitable."""


@dataclass(frozen=True, slots=True)
class Round:
    """One escalation round: the call (or its failure) and the verdict.

    Attributes:
        level: The round's escalation level.
        result: The answered call, or ``None`` when no model served it.
        verdict: The check's verdict on the answer.
        failure: Why no model served it (every attempt, the last error).
    """

    level: int
    result: CallResult | None
    verdict: Verdict | None
    failure: CallFailed | None = None

    @property
    def error(self) -> str | None:
        """``CallFailed.kind`` of a round no model served."""
        return None if self.failure is None else self.failure.kind


@dataclass(frozen=True, slots=True)
class EscalationResult:
    """How the escalation ended.

    Attributes:
        status: ``accepted`` or ``gave_up``.
        rounds: Every round, in order.
    """

    status: Literal["accepted", "gave_up"]
    rounds: tuple[Round, ...]

    @property
    def final(self) -> CallResult | None:
        """The accepted call, or the last answered one when giving up."""
        answered = [r.result for r in self.rounds if r.result is not None]
        return answered[-1] if answered else None


def with_feedback(request: ModelRequest, previous: str, feedback: str) -> ModelRequest:
    """``request`` plus the rejected answer and the reviewer's feedback as new turns.

    A completion-style ``prompt`` is dropped so base models see the turns too.
    """
    note = f"A reviewer rejected that answer. Feedback: {feedback or 'not good enough'}.\n"
    note += "Write an improved answer."
    messages = [*request.messages, AIMessage(previous), HumanMessage(note)]
    return replace(request, messages=messages, prompt=None)


async def _judge(check: Check, response: ModelResponse) -> Verdict:
    verdict = check(response)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    if isinstance(verdict, Verdict):
        return verdict
    return Verdict(passed=bool(verdict))


@overload
def add_feedback(model_request: ModelRequest, previous: str, feedback: str) -> ModelRequest: ...
@overload
def add_feedback(model_request: RequestBuilder, previous: str, feedback: str) -> RequestBuilder: ...
def add_feedback(
    model_request: ModelRequest | RequestBuilder, previous: str, feedback: str
) -> ModelRequest | RequestBuilder:
    """:func:`with_feedback` for a request or a request builder (applied to what it builds)."""
    if isinstance(model_request, ModelRequest):
        return with_feedback(model_request, previous, feedback)
    build = model_request

    def rebuilt(spec: ModelSpec) -> ModelRequest:
        return with_feedback(build(spec), previous, feedback)

    return rebuilt


_NOWHERE_TO_GO = frozenset({"no_route", "budget_exceeded"})
"""Failures that a stronger (never cheaper) model cannot cure: escalation stops."""


async def call_until(
    caller: ResilientCaller,
    call: Call,
    check: Check,
    *,
    max_rounds: int = 3,
    record_scores: bool = True,
) -> EscalationResult:
    """Call, check, and escalate one level per rejected (or failed) round.

    The call's request may be a request builder (a function of the model's
    spec, e.g. rendering its prompt variant); the feedback is added to what it builds.
    ``record_scores=False`` keeps the check's scores out of the routing matrix
    (for format checks, which say nothing about answer quality). The scores
    reach the router through :meth:`Router.score`.

    Raises:
        ValueError: ``max_rounds`` below 1.
    """
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")
    rounds: list[Round] = []
    request = call.route
    current = call.request
    for level in range(max_rounds):
        escalated = replace(request, escalation=request.escalation + level)
        if level:
            record_escalation(request.node, escalated.escalation, reason="check")
        try:
            result = await caller.call(replace(call, route=escalated, request=current))
        except CallFailed as failure:
            rounds.append(Round(escalated.escalation, None, None, failure))
            if failure.kind in _NOWHERE_TO_GO:
                break  # nothing stronger is left (or affordable) to escalate to
            continue
        verdict = await _judge(check, result.response)
        score = verdict.score if verdict.score is not None else float(verdict.passed)
        if record_scores:
            await caller.router.score(result.decision.task, result.model, score)
        rounds.append(Round(escalated.escalation, result, verdict))
        if verdict.passed:
            return EscalationResult("accepted", tuple(rounds))
        current = add_feedback(call.request, result.response.text, verdict.feedback)
    return EscalationResult("gave_up", tuple(rounds))
