"""``agentmesh trace show``: a trace as a tree, workflow -> node -> decision -> attempts.

Every line says what happened and at what price: a decision shows the strategy,
the chosen model and the reason (and every exclusion when no model was left); an
attempt shows the model, whether it was a fallback, the outcome (``ok`` or the
``error.type`` and message), tokens, cost and latency. Spans agentmesh does not
know (an HTTP client's, say) are shown by name and duration, so any trace renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentmesh.tracing.attributes import (
    ATTEMPT,
    COST_USD,
    ERROR_TYPE,
    ESCALATION_LEVEL,
    EVALUATION_BRANCH,
    EVALUATION_MODEL,
    EVALUATION_NODE,
    EVENT_EVALUATION_RESULT,
    FALLBACK,
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_WORKFLOW_NAME,
    NODE_BRANCH,
    NODE_KIND,
    NODE_NAME,
    ROUTE_CANDIDATE_COUNT,
    ROUTE_CANDIDATES,
    ROUTE_CHOSEN,
    ROUTE_EXCLUDED,
    ROUTE_EXCLUDED_COUNT,
    ROUTE_REASON,
    ROUTE_STRATEGY,
    RUN_ID,
    SIMULATED,
)
from agentmesh.tracing.reader import SpanRecord
from agentmesh.tracing.tree import CHAT, NODE, ROUTE, TOOL, WORKFLOW, Trace, model_of, span_type

__all__ = ["render_trace", "render_traces"]


def _ms(record: SpanRecord) -> str:
    return f"{record.duration_ms:.1f} ms"


def _usd(value: object) -> str:
    return f"${float(value):.6f}" if isinstance(value, int | float) else "$-"


def _outcome(record: SpanRecord) -> str:
    if not record.failed:
        return "ok"
    kind = record.attributes.get(ERROR_TYPE, "error")
    detail = f": {record.description}" if record.description else ""
    return f"ERROR {kind}{detail}"


def _chat(record: SpanRecord) -> str:
    attrs = record.attributes
    attempt = attrs.get(ATTEMPT)
    head = f"attempt {attempt}" if attempt is not None else "call"
    model = model_of(record)
    wire = attrs.get(GEN_AI_RESPONSE_MODEL) or attrs.get(GEN_AI_REQUEST_MODEL)
    parts = [f"{head} {model}" + (f" ({wire})" if wire and wire != model else "")]
    if attrs.get(FALLBACK):
        parts.append("[fallback]")
    if attrs.get(ESCALATION_LEVEL):
        parts.append(f"[escalation {attrs[ESCALATION_LEVEL]}]")
    if attrs.get(SIMULATED):
        parts.append("[simulated]")
    parts.append(_outcome(record))
    if not record.failed:
        tokens_in = attrs.get(GEN_AI_USAGE_INPUT_TOKENS, 0)
        tokens_out = attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS, 0)
        parts.append(f"tokens {tokens_in}/{tokens_out}")
        parts.append(_usd(attrs.get(COST_USD, 0.0)))
    parts.append(_ms(record))
    return "  ".join(parts)


def _route(record: SpanRecord) -> list[str]:
    attrs = record.attributes
    node = attrs.get(NODE_NAME, "?")
    strategy = attrs.get(ROUTE_STRATEGY, "?")
    level = attrs.get(ESCALATION_LEVEL)
    escalated = f" [escalation {level}]" if level else ""
    if record.failed:
        head = f"route {node}: NO MODEL by {strategy}{escalated}  {_outcome(record)}  {_ms(record)}"
        return [head, *(f"  excluded {e}" for e in attrs.get(ROUTE_EXCLUDED, ()))]
    counts = f"{attrs.get(ROUTE_CANDIDATE_COUNT, len(attrs.get(ROUTE_CANDIDATES, ())))} candidates"
    excluded = attrs.get(ROUTE_EXCLUDED_COUNT, len(attrs.get(ROUTE_EXCLUDED, ())))
    if excluded:
        counts += f", {excluded} excluded"
    return [
        f"route {node}: {attrs.get(ROUTE_CHOSEN, '?')} by {strategy}{escalated}"
        f"  ({counts})  {_ms(record)}",
        f"  why: {attrs.get(ROUTE_REASON, '-')}",
    ]


def _label(record: SpanRecord) -> list[str]:
    attrs = record.attributes
    kind = span_type(record)
    if kind == CHAT:
        return [_chat(record)]
    if kind == ROUTE:
        return _route(record)
    status = "" if not record.failed else f"  {_outcome(record)}"
    if kind == WORKFLOW:
        run = f"  run {attrs[RUN_ID]}" if RUN_ID in attrs else ""
        return [f"workflow {attrs.get(GEN_AI_WORKFLOW_NAME, '?')}{run}{status}  {_ms(record)}"]
    if kind == NODE:
        branch = attrs.get(NODE_BRANCH)
        name = f"{attrs.get(NODE_NAME, '?')}" + (f"[{branch}]" if branch else "")
        return [f"node {name} ({attrs.get(NODE_KIND)}){status}  {_ms(record)}"]
    if kind == TOOL:
        return [f"tool {attrs.get(GEN_AI_TOOL_NAME, '?')}  {_outcome(record)}  {_ms(record)}"]
    return [f"{record.name}{status}  {_ms(record)}"]


def _evaluation(attrs: Mapping[str, Any]) -> str:
    node, branch = attrs.get(EVALUATION_NODE, "?"), attrs.get(EVALUATION_BRANCH)
    judged = f"{node}[{branch}]" if branch else str(node)
    score = attrs.get(GEN_AI_EVALUATION_SCORE_VALUE)
    shown = f" {score:.2f}" if isinstance(score, int | float) else ""
    model = attrs.get(EVALUATION_MODEL)
    by = f" ({model})" if model else ""
    why = attrs.get(GEN_AI_EVALUATION_EXPLANATION)
    return f"* verdict {judged}{by}: {attrs.get(GEN_AI_EVALUATION_SCORE_LABEL, '?')}{shown}" + (
        f" - {why}" if why else ""
    )


def _events(record: SpanRecord) -> list[str]:
    lines = []
    for event in record.events:
        if event.name == EVENT_EVALUATION_RESULT:
            lines.append(_evaluation(event.attributes))
        elif event.name.startswith("agentmesh."):
            detail = ", ".join(
                f"{k.removeprefix('agentmesh.')}={v}" for k, v in event.attributes.items()
            )
            lines.append(f"* {event.name.removeprefix('agentmesh.')} {detail}")
    return lines


def _under_decision(trace: Trace, record: SpanRecord) -> bool:
    """A chat span shown under its decision (a sibling ``route`` span) instead of its parent."""
    if span_type(record) != CHAT:
        return False
    decision = trace.decision_of(record)
    return decision is not None and decision.parent_id == record.parent_id


def _shown_children(trace: Trace, record: SpanRecord) -> list[SpanRecord]:
    shown = [c for c in trace.kids(record) if not _under_decision(trace, c)]
    if span_type(record) == ROUTE:
        parent = trace.get(record.parent_id)
        siblings = trace.kids(parent) if parent is not None else trace.roots
        shown += [
            s for s in siblings if _under_decision(trace, s) and trace.decision_of(s) is record
        ]
        shown.sort(key=lambda r: r.start_ns)
    return shown


def _render(trace: Trace, record: SpanRecord, prefix: str, last: bool, out: list[str]) -> None:
    lines = _label(record) + _events(record)
    branch, more = ("└─ ", "   ") if last else ("├─ ", "│  ")
    out.append(prefix + branch + lines[0])
    out.extend(prefix + more + line for line in lines[1:])
    shown = _shown_children(trace, record)
    for index, child in enumerate(shown):
        _render(trace, child, prefix + more, index == len(shown) - 1, out)


def _header(trace: Trace) -> str:
    calls = [r for r in trace.spans if span_type(r) == CHAT]
    cost = sum(float(r.attributes.get(COST_USD, 0.0)) for r in calls)
    tokens_in = sum(int(r.attributes.get(GEN_AI_USAGE_INPUT_TOKENS, 0)) for r in calls)
    tokens_out = sum(int(r.attributes.get(GEN_AI_USAGE_OUTPUT_TOKENS, 0)) for r in calls)
    errors = sum(r.failed for r in calls)
    start = min(r.start_ns for r in trace.spans)
    end = max(r.end_ns for r in trace.spans)
    run = trace.run_id()
    return (
        f"trace {trace.trace_id}"
        + (f"  run {run}" if run else "")
        + f"  {(end - start) / 1e6:.1f} ms  {len(calls)} calls ({errors} failed)"
        f"  tokens {tokens_in}/{tokens_out}  ${cost:.6f}"
    )


def render_trace(trace: Trace) -> list[str]:
    """The lines of one trace: a header, then each root's tree."""
    out = [_header(trace)]
    roots = [r for r in trace.roots if not _under_decision(trace, r)]
    for index, root in enumerate(roots):
        _render(trace, root, "", index == len(roots) - 1, out)
    return out


def render_traces(traces: Sequence[Trace]) -> str:
    """Every trace, separated by blank lines."""
    return "\n\n".join("\n".join(render_trace(t)) for t in traces)
