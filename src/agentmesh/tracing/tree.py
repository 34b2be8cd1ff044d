"""Traces as trees of span records, and what each span is (workflow, node, route, chat, tool).

Attempts (``chat`` spans) are siblings of their routing decision (``route``
span) under the node that made both, not its children: a ``route`` span measures
the decision alone. :meth:`Trace.decision_of` links each attempt back to its
decision: by ``agentmesh.route.decision_id`` when the caller set it, else the
latest decision of the same parent that started before the attempt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmesh.tracing.attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    MODEL_ID,
    NODE_KIND,
    NODE_NAME,
    OP_CHAT,
    OP_EXECUTE_TOOL,
    OP_INVOKE_AGENT,
    OP_INVOKE_WORKFLOW,
    ROUTE_DECISION_ID,
    ROUTE_STRATEGY,
    RUN_ID,
)
from agentmesh.tracing.reader import SpanRecord

__all__ = [
    "CHAT",
    "NODE",
    "OTHER",
    "ROUTE",
    "TOOL",
    "WORKFLOW",
    "Trace",
    "model_of",
    "span_type",
    "traces",
]

WORKFLOW = "workflow"
NODE = "node"
ROUTE = "route"
CHAT = "chat"
TOOL = "tool"
OTHER = "other"
_MODEL_OPERATIONS = frozenset({OP_CHAT, "text_completion", "generate_content"})


def span_type(record: SpanRecord) -> str:
    """What ``record`` is: ``workflow``, ``node``, ``route``, ``chat``, ``tool`` or ``other``."""
    attrs = record.attributes
    operation = attrs.get(GEN_AI_OPERATION_NAME)
    if operation in _MODEL_OPERATIONS:
        return CHAT
    if operation == OP_EXECUTE_TOOL:
        return TOOL
    if operation == OP_INVOKE_WORKFLOW:
        return WORKFLOW
    if operation == OP_INVOKE_AGENT:
        return NODE
    if ROUTE_STRATEGY in attrs:
        return ROUTE
    if NODE_KIND in attrs:
        return NODE
    return OTHER


def model_of(record: SpanRecord) -> str:
    """The catalog id a chat span called (the wire model name if the id is missing)."""
    return str(record.attributes.get(MODEL_ID) or record.attributes.get(GEN_AI_REQUEST_MODEL, "?"))


@dataclass
class Trace:
    """The spans of one trace, indexed by id and by parent (children in start order).

    Attributes:
        trace_id: 32 hex digits.
        spans: Every span, in start order.
        roots: Spans whose parent is not in the trace (normally one).
        children: Span id -> its children, in start order.
    """

    trace_id: str
    spans: list[SpanRecord]
    roots: list[SpanRecord] = field(default_factory=list)
    children: dict[str, list[SpanRecord]] = field(default_factory=dict)
    _by_id: dict[str, SpanRecord] = field(default_factory=dict)
    _decisions: dict[str, SpanRecord | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.spans.sort(key=lambda r: (r.start_ns, r.line))
        self._by_id = {r.span_id: r for r in self.spans}
        children: dict[str, list[SpanRecord]] = defaultdict(list)
        for record in self.spans:
            if record.parent_id is not None and record.parent_id in self._by_id:
                children[record.parent_id].append(record)
            else:
                self.roots.append(record)
        self.children = dict(children)
        self._link_decisions()

    def _link_decisions(self) -> None:
        by_decision = {
            r.attributes[ROUTE_DECISION_ID]: r
            for r in self.spans
            if span_type(r) == ROUTE and r.attributes.get(ROUTE_DECISION_ID)
        }
        for siblings in [self.roots, *self.children.values()]:
            last_route: SpanRecord | None = None
            for record in siblings:
                kind = span_type(record)
                if kind == ROUTE:
                    last_route = record
                elif kind == CHAT:
                    wanted = record.attributes.get(ROUTE_DECISION_ID)
                    linked = by_decision.get(wanted) if wanted else None
                    self._decisions[record.span_id] = linked or last_route

    def get(self, span_id: str | None) -> SpanRecord | None:
        """The span with ``span_id`` in this trace, if any."""
        return self._by_id.get(span_id) if span_id is not None else None

    def kids(self, record: SpanRecord) -> list[SpanRecord]:
        """The children of ``record``, in start order."""
        return self.children.get(record.span_id, [])

    def decision_of(self, chat: SpanRecord) -> SpanRecord | None:
        """The ``route`` span a ``chat`` span's call was made on, if it can be told."""
        return self._decisions.get(chat.span_id)

    def node_of(self, record: SpanRecord) -> str | None:
        """The workflow node a span belongs to: its own, its decision's, or an ancestor's."""
        node = record.attributes.get(NODE_NAME)
        if node is None and span_type(record) == CHAT:
            decision = self.decision_of(record)
            node = decision.attributes.get(NODE_NAME) if decision is not None else None
        current = self.get(record.parent_id)
        while node is None and current is not None:
            node = current.attributes.get(NODE_NAME)
            current = self.get(current.parent_id)
        return None if node is None else str(node)

    def run_id(self) -> str | None:
        """The ``agentmesh.run.id`` of the trace, if any span has one."""
        for record in self.spans:
            run = record.attributes.get(RUN_ID)
            if run is not None:
                return str(run)
        return None

    def span_dict(self, record: SpanRecord) -> dict[str, Any]:
        """``record`` and its subtree as JSON-ready data (what ``trace show --json`` prints)."""
        kind = span_type(record)
        data: dict[str, Any] = {
            "name": record.name,
            "type": kind,
            "span_id": record.span_id,
            "node": self.node_of(record),
            "start_ns": record.start_ns,
            "duration_ms": round(record.duration_ms, 3),
            "status": record.status,
            "error": record.description if record.failed else None,
        }
        if kind == CHAT:
            decision = self.decision_of(record)
            data["model"] = model_of(record)
            data["decision"] = decision.span_id if decision is not None else None
        data["attributes"] = dict(record.attributes)
        data["events"] = [
            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": dict(e.attributes)}
            for e in record.events
        ]
        data["children"] = [self.span_dict(child) for child in self.kids(record)]
        return data

    def to_dict(self) -> dict[str, Any]:
        """The trace as JSON-ready data: its ids and each root's tree of spans."""
        return {
            "trace_id": self.trace_id,
            "run_id": self.run_id(),
            "spans": [self.span_dict(root) for root in self.roots],
        }

    def attribute(self, key: str) -> Any:
        """The first value of ``key`` on any root span (e.g. the workflow name)."""
        for root in self.roots:
            if key in root.attributes:
                return root.attributes[key]
        return None


def traces(records: Sequence[SpanRecord]) -> list[Trace]:
    """Group records by trace, in order of each trace's first span."""
    grouped: dict[str, list[SpanRecord]] = defaultdict(list)
    for record in records:
        grouped[record.trace_id].append(record)
    out = [Trace(trace_id, spans) for trace_id, spans in grouped.items()]
    out.sort(key=lambda t: t.spans[0].start_ns)
    return out
