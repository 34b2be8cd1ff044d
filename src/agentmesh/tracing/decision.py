"""The ``route {node}`` span of one routing decision, fed plain values by the router.

:class:`RouteCall` owns the ``agentmesh.route.*`` names and the decision metric;
with no provider installed at all, :meth:`RouteCall.start` hands out one shared
idle call.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN
from opentelemetry.util.types import AttributeValue

from agentmesh.tracing import metrics
from agentmesh.tracing._run import current_run
from agentmesh.tracing._state import metrics_on, spans_on
from agentmesh.tracing.attributes import (
    ESCALATION_LEVEL,
    GEN_AI_CONVERSATION_ID,
    NODE_NAME,
    NODE_ROLE,
    ROUTE_CANDIDATE_COUNT,
    ROUTE_CANDIDATE_NOTES,
    ROUTE_CANDIDATE_SCORES,
    ROUTE_CANDIDATES,
    ROUTE_CHOSEN,
    ROUTE_DECISION_ID,
    ROUTE_EXCLUDED,
    ROUTE_EXCLUDED_COUNT,
    ROUTE_FALLBACKS,
    ROUTE_REASON,
    ROUTE_RESERVED_USD,
    ROUTE_ROUND,
    ROUTE_SELECTED,
    ROUTE_STRATEGY,
    ROUTE_TASK,
    RUN_ID,
)
from agentmesh.tracing.spans import (
    _TRACER,
    CurrentSpan,
    error_type,
    record_error,
)

__all__ = ["ROUTE_LIST_LIMIT", "RouteCall"]

ROUTE_LIST_LIMIT = 20
"""At most this many candidates (and exclusions) are listed on a route span; a
``.count`` attribute then gives the full number."""


class RouteCall(CurrentSpan):
    """The ``route {node}`` span of one routing decision, current while routing runs.

    Use as ``with RouteCall.start(...) as call:``; call :meth:`decided` with the
    decision, or :meth:`excluded` before re-raising a ``NoRoute``. An exception
    leaving the block is recorded on the span (``error.type`` is the exception's
    class, e.g. ``BudgetExceeded``) and counted as a decision without a model.
    Attributes are set once, when the decision (or the error) is known;
    ``round`` and ``escalation`` only when they are not 1 and 0.
    ``observed`` is False when :meth:`decided` would record nothing (no span
    recording, no meter provider): the router then skips reading its values.

    Args:
        node: The asking node (``agentmesh.node.name``; the span name's suffix).
        role: The node's role.
        strategy: The policy's strategy name.
        round: The request's round (a judged step's redo is round 2...).
        escalation: The request's escalation level.
        run_id: The workflow run, when known.
    """

    __slots__ = (
        "_conversation",
        "_escalation",
        "_excluded",
        "_node",
        "_role",
        "_round",
        "_run_id",
        "_strategy",
        "observed",
        "recording",
    )

    def __init__(
        self,
        *,
        node: str,
        role: str,
        strategy: str,
        round: int = 1,
        escalation: int = 0,
        run_id: str | None = None,
    ) -> None:
        self._node = node
        self._role = role
        self._strategy = strategy
        self._round = round
        self._escalation = escalation
        self._run_id = run_id
        self._conversation = run_id or current_run().conversation_id
        self._excluded: Sequence[tuple[str, str, str]] = ()
        self._token = None
        if not spans_on():
            self.span: trace.Span = INVALID_SPAN
            self.recording = False
            self.observed = metrics_on()
            return
        self.span = span = _TRACER.start_span(
            "route " + node, record_exception=False, set_status_on_exception=False
        )
        self.recording = span is not INVALID_SPAN and span.is_recording()
        self.observed = self.recording or metrics_on()

    @staticmethod
    def wanted() -> bool:
        """False when no provider is installed at all: :meth:`start` would hand out the idle call.

        The idle call records nothing and attaches nothing, so a caller may then
        skip the span altogether (the router does).
        """
        return spans_on() or metrics_on()

    @classmethod
    def start(
        cls,
        *,
        node: str,
        role: str,
        strategy: str,
        round: int = 1,
        escalation: int = 0,
        run_id: str | None = None,
    ) -> RouteCall:
        """A call for the router; the shared idle one when no provider is installed at all."""
        if spans_on() or metrics_on():
            return cls(
                node=node,
                role=role,
                strategy=strategy,
                round=round,
                escalation=escalation,
                run_id=run_id,
            )
        return _IDLE_ROUTE

    def __enter__(self) -> RouteCall:
        self._attach_if_live(self.recording)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._detach()
        if exc is not None and self is not _IDLE_ROUTE:
            if self.recording:
                attrs = self._base()
                if self._excluded:
                    self._exclusions(self._excluded, attrs)
                record_error(self.span, exc, attributes=attrs)
            if metrics_on():
                metrics.record_decision(
                    None, strategy=self._strategy, node=self._node, error_type=error_type(exc)
                )
        self.span.end()

    def _base(self) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {
            NODE_NAME: self._node,
            NODE_ROLE: self._role,
            ROUTE_STRATEGY: self._strategy,
        }
        if self._round != 1:
            attrs[ROUTE_ROUND] = self._round
        if self._escalation:
            attrs[ESCALATION_LEVEL] = self._escalation
        if self._run_id is not None:
            attrs[RUN_ID] = self._run_id
        if self._conversation is not None:
            attrs[GEN_AI_CONVERSATION_ID] = self._conversation
        return attrs

    @staticmethod
    def _exclusions(
        excluded: Sequence[tuple[str, str, str]], attrs: dict[str, AttributeValue]
    ) -> None:
        shown = [f"{m} [{by}] {why}" for m, why, by in excluded[:ROUTE_LIST_LIMIT]]
        attrs[ROUTE_EXCLUDED] = shown
        if len(excluded) > ROUTE_LIST_LIMIT:
            attrs[ROUTE_EXCLUDED_COUNT] = len(excluded)

    def decided(
        self,
        *,
        chosen: str,
        strategy: str,
        reason: str,
        candidates: Sequence[tuple[str, float, str]],
        excluded: Sequence[tuple[str, str, str]],
        fallbacks: Sequence[str],
        selected: Sequence[str],
        task: str | None,
        reserved_usd: float,
        decision_id: str,
    ) -> None:
        """Record the decision.

        Candidates are ``(model, score, note)`` best first; exclusions ``(model, why, by)``.
        """
        if metrics_on():
            metrics.record_decision(chosen, strategy=strategy, node=self._node)
        if not self.recording:
            return
        attrs = self._base()
        listed = candidates[:ROUTE_LIST_LIMIT]
        attrs[ROUTE_CHOSEN] = chosen
        attrs[ROUTE_REASON] = reason
        attrs[ROUTE_CANDIDATES] = [c[0] for c in listed]
        attrs[ROUTE_CANDIDATE_SCORES] = [float(c[1]) for c in listed]
        attrs[ROUTE_CANDIDATE_NOTES] = [c[2] for c in listed]
        if len(candidates) > ROUTE_LIST_LIMIT:
            attrs[ROUTE_CANDIDATE_COUNT] = len(candidates)
        attrs[ROUTE_FALLBACKS] = list(fallbacks[:ROUTE_LIST_LIMIT])
        attrs[ROUTE_DECISION_ID] = decision_id
        if strategy != self._strategy:
            attrs[ROUTE_STRATEGY] = strategy
        if len(selected) > 1:
            attrs[ROUTE_SELECTED] = list(selected)
        if task is not None:
            attrs[ROUTE_TASK] = task
        if reserved_usd:
            attrs[ROUTE_RESERVED_USD] = reserved_usd
        if excluded:
            self._exclusions(excluded, attrs)
        self.span.set_attributes(attrs)

    def excluded(self, excluded: Sequence[tuple[str, str, str]]) -> None:
        """Keep the exclusions ``(model, why, by)`` of a request no model could serve."""
        if self.recording:
            self._excluded = excluded


def _idle_route() -> RouteCall:
    """A non-recording decision span: every method is a no-op, so it can be shared."""
    idle = object.__new__(RouteCall)
    idle._node = idle._role = idle._strategy = ""
    idle._round = 1
    idle._escalation = 0
    idle._run_id = None
    idle._conversation = None
    idle._excluded = ()
    idle._token = None
    idle.span = INVALID_SPAN
    idle.recording = False
    idle.observed = False
    return idle


_IDLE_ROUTE = _idle_route()
