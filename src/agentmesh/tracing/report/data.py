"""What ``agentmesh trace report`` shows, computed from span records (no HTML here).

- :func:`run_views`: each run of a trace file as a :class:`RunView`: its node
  executions in start order (:class:`NodeView`), each with its routing
  decisions (chosen model, reason, the candidates it passed over, exclusions),
  its call attempts (model, outcome, tokens, cost, latency, TTFT), the judges'
  verdicts on it, and the run's spending over time.
- :func:`figures`: what one set of runs adds up to: the figures of
  :func:`~agentmesh.tracing.summary.summarize` (routing distribution, fallback
  and escalation rates, cost and tokens per node and model, latency per model),
  plus TTFT per model, judge pass rates, run cost and duration percentiles and
  budget use.
- :func:`comparison`: two sets of figures side by side (``--compare``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmesh.tracing.attributes import (
    ATTEMPT,
    COST_USD,
    ERROR_TYPE,
    ESCALATION_LEVEL,
    EVALUATION_BRANCH,
    EVALUATION_GAVE_UP,
    EVALUATION_MODEL,
    EVALUATION_NODE,
    EVALUATION_ROUND,
    EVENT_EVALUATION_RESULT,
    FALLBACK,
    GEN_AI_EVALUATION_EXPLANATION,
    GEN_AI_EVALUATION_NAME,
    GEN_AI_EVALUATION_SCORE_LABEL,
    GEN_AI_EVALUATION_SCORE_VALUE,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_WORKFLOW_NAME,
    NODE_BRANCH,
    NODE_KIND,
    NODE_NAME,
    ROUTE_CANDIDATE_SCORES,
    ROUTE_CANDIDATES,
    ROUTE_CHOSEN,
    ROUTE_EXCLUDED,
    ROUTE_REASON,
    ROUTE_STRATEGY,
    RUN_BUDGET_USD,
    RUN_STATUS,
    SIMULATED,
)
from agentmesh.tracing.reader import SpanRecord
from agentmesh.tracing.summary import percentile, summarize
from agentmesh.tracing.tree import CHAT, NODE, ROUTE, TOOL, WORKFLOW, Trace, model_of, span_type
from agentmesh.tracing.tree import traces as group_traces

__all__ = [
    "AttemptView",
    "DecisionView",
    "NodeView",
    "RunView",
    "VerdictView",
    "comparison",
    "figures",
    "run_views",
]


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One model call attempt (a ``chat`` span); times in ms from the run's start."""

    model: str
    start_ms: float
    duration_ms: float
    ok: bool
    error: str | None
    fallback: bool
    attempt: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    ttft_ms: float | None


@dataclass(frozen=True, slots=True)
class DecisionView:
    """One routing decision (a ``route`` span).

    Attributes:
        candidates: ``(model, score)`` best first, as listed on the span.
        excluded: ``"<model> [<filter>] <why>"`` for each model filtered out.
    """

    chosen: str | None
    reason: str
    strategy: str
    candidates: tuple[tuple[str, float], ...]
    excluded: tuple[str, ...]
    escalation: int
    error: str | None

    @property
    def rejected(self) -> tuple[tuple[str, float], ...]:
        """The ranked candidates the decision passed over."""
        return tuple(c for c in self.candidates if c[0] != self.chosen)


@dataclass(frozen=True, slots=True)
class VerdictView:
    """A judge's verdict on one node execution (a ``gen_ai.evaluation.result`` event)."""

    judge: str
    label: str
    score: float | None
    model: str | None
    gave_up: bool
    explanation: str | None

    @property
    def passed(self) -> bool:
        """The verdict's label is ``pass``."""
        return self.label == "pass"


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node execution (an ``invoke_agent`` span) and what happened inside it."""

    name: str
    kind: str
    branch: str
    round: int
    start_ms: float
    duration_ms: float
    error: str | None
    cost_usd: float
    decisions: tuple[DecisionView, ...]
    attempts: tuple[AttemptView, ...]
    tools: tuple[str, ...]
    verdicts: tuple[VerdictView, ...] = ()

    @property
    def label(self) -> str:
        """``name``, ``name[branch]``, with `` r2`` for a redo."""
        shown = f"{self.name}[{self.branch}]" if self.branch else self.name
        return shown + (f" r{self.round}" if self.round > 1 else "")

    @property
    def model(self) -> str | None:
        """The model whose answer the node kept: its last successful attempt's."""
        done = [a.model for a in self.attempts if a.ok]
        return done[-1] if done else None


@dataclass(frozen=True, slots=True)
class RunView:
    """One run (one trace) as the report draws it.

    Attributes:
        source: The label of the file (or compared side) it came from.
        burn: ``(ms since start, money spent so far)`` after each call that cost.
    """

    source: str
    trace_id: str
    run_id: str | None
    workflow: str
    status: str
    start_ns: int
    duration_ms: float
    cost_usd: float
    input_tokens: int
    output_tokens: int
    budget_usd: float | None
    simulated: bool
    nodes: tuple[NodeView, ...]
    burn: tuple[tuple[float, float], ...] = field(default=())


def _ms(record: SpanRecord, origin: int) -> float:
    return (record.start_ns - origin) / 1e6


def _attempt(record: SpanRecord, origin: int) -> AttemptView:
    a = record.attributes
    ttft = a.get(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    return AttemptView(
        model=model_of(record),
        start_ms=_ms(record, origin),
        duration_ms=record.duration_ms,
        ok=not record.failed,
        error=str(a.get(ERROR_TYPE, "error")) if record.failed else None,
        fallback=bool(a.get(FALLBACK)),
        attempt=int(a.get(ATTEMPT, 1)),
        input_tokens=int(a.get(GEN_AI_USAGE_INPUT_TOKENS, 0)),
        output_tokens=int(a.get(GEN_AI_USAGE_OUTPUT_TOKENS, 0)),
        cost_usd=float(a.get(COST_USD, 0.0)) if not record.failed else 0.0,
        ttft_ms=float(ttft) * 1000.0 if isinstance(ttft, int | float) else None,
    )


def _decision(record: SpanRecord) -> DecisionView:
    a = record.attributes
    models = [str(m) for m in a.get(ROUTE_CANDIDATES, ())]
    scores = [float(s) for s in a.get(ROUTE_CANDIDATE_SCORES, ())]
    scores += [float("nan")] * (len(models) - len(scores))
    chosen = a.get(ROUTE_CHOSEN)
    return DecisionView(
        chosen=str(chosen) if chosen is not None else None,
        reason=str(a.get(ROUTE_REASON, record.description or "")),
        strategy=str(a.get(ROUTE_STRATEGY, "?")),
        candidates=tuple(zip(models, scores, strict=False)),
        excluded=tuple(str(e) for e in a.get(ROUTE_EXCLUDED, ())),
        escalation=int(a.get(ESCALATION_LEVEL, 0)),
        error=str(a.get(ERROR_TYPE, "no_route")) if record.failed else None,
    )


def _subtree(trace: Trace, record: SpanRecord) -> list[SpanRecord]:
    out: list[SpanRecord] = []
    stack = list(reversed(trace.kids(record)))
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(trace.kids(current)))
    return sorted(out, key=lambda r: r.start_ns)


def _node(trace: Trace, record: SpanRecord, origin: int, round: int) -> NodeView:
    inside = _subtree(trace, record)
    a = record.attributes
    return NodeView(
        name=str(a.get(NODE_NAME, record.name)),
        kind=str(a.get(NODE_KIND, "?")),
        branch=str(a.get(NODE_BRANCH, "") or ""),
        round=round,
        start_ms=_ms(record, origin),
        duration_ms=record.duration_ms,
        error=(record.description or str(a.get(ERROR_TYPE, "error"))) if record.failed else None,
        cost_usd=float(a.get(COST_USD, 0.0)),
        decisions=tuple(_decision(r) for r in inside if span_type(r) == ROUTE),
        attempts=tuple(_attempt(r, origin) for r in inside if span_type(r) == CHAT),
        tools=tuple(
            str(r.attributes.get(GEN_AI_TOOL_NAME, "?")) for r in inside if span_type(r) == TOOL
        ),
    )


def _verdicts(trace: Trace) -> dict[tuple[str, str, int], list[VerdictView]]:
    """Verdicts by the execution they judged: ``(node, branch, round)``."""
    found: dict[tuple[str, str, int], list[VerdictView]] = defaultdict(list)
    for record in trace.spans:
        for event in record.events:
            if event.name != EVENT_EVALUATION_RESULT:
                continue
            e = event.attributes
            score = e.get(GEN_AI_EVALUATION_SCORE_VALUE)
            explanation = e.get(GEN_AI_EVALUATION_EXPLANATION)
            key = (
                str(e.get(EVALUATION_NODE, "?")),
                str(e.get(EVALUATION_BRANCH, "") or ""),
                int(e.get(EVALUATION_ROUND, 1)),
            )
            found[key].append(
                VerdictView(
                    judge=str(e.get(GEN_AI_EVALUATION_NAME, record.attributes.get(NODE_NAME, "?"))),
                    label=str(e.get(GEN_AI_EVALUATION_SCORE_LABEL, "?")),
                    score=float(score) if isinstance(score, int | float) else None,
                    model=str(e[EVALUATION_MODEL]) if EVALUATION_MODEL in e else None,
                    gave_up=bool(e.get(EVALUATION_GAVE_UP)),
                    explanation=str(explanation) if explanation else None,
                )
            )
    return found


def _run(trace: Trace, source: str) -> RunView:
    origin = min(r.start_ns for r in trace.spans)
    end = max(r.end_ns for r in trace.spans)
    root = next((r for r in trace.roots if span_type(r) == WORKFLOW), None)
    verdicts = _verdicts(trace)
    rounds: dict[tuple[str, str], int] = defaultdict(int)
    nodes = []
    for record in trace.spans:
        if span_type(record) != NODE:
            continue
        name = str(record.attributes.get(NODE_NAME, record.name))
        branch = str(record.attributes.get(NODE_BRANCH, "") or "")
        rounds[(name, branch)] += 1
        node = _node(trace, record, origin, rounds[(name, branch)])
        judged = verdicts.get((name, branch, node.round), [])
        nodes.append(
            node if not judged else NodeView(**{**_fields(node), "verdicts": tuple(judged)})
        )
    # every call of the trace, those outside a node too (``agentmesh ask``, a chat model)
    attempts = [_attempt(r, origin) for r in trace.spans if span_type(r) == CHAT]
    spent, burn = 0.0, []
    for attempt in attempts:
        if attempt.cost_usd:
            spent += attempt.cost_usd
            burn.append((attempt.start_ms + attempt.duration_ms, spent))
    attrs = root.attributes if root is not None else {}
    budget = attrs.get(RUN_BUDGET_USD)
    failed = root.failed if root is not None else any(r.failed for r in trace.roots)
    return RunView(
        source=source,
        trace_id=trace.trace_id,
        run_id=trace.run_id(),
        workflow=str(attrs.get(GEN_AI_WORKFLOW_NAME, "-")),
        status=str(attrs.get(RUN_STATUS, "failed" if failed else "ok")),
        start_ns=origin,
        duration_ms=(end - origin) / 1e6,
        cost_usd=sum(a.cost_usd for a in attempts),
        input_tokens=sum(a.input_tokens for a in attempts if a.ok),
        output_tokens=sum(a.output_tokens for a in attempts if a.ok),
        budget_usd=float(budget) if isinstance(budget, int | float) else None,
        simulated=any(bool(r.attributes.get(SIMULATED)) for r in trace.spans),
        nodes=tuple(nodes),
        burn=tuple(burn),
    )


def _fields(node: NodeView) -> dict[str, Any]:
    return {name: getattr(node, name) for name in NodeView.__dataclass_fields__}


def run_views(records: Sequence[SpanRecord], source: str) -> list[RunView]:
    """Every trace in ``records`` as a run, in start order."""
    return [_run(trace, source) for trace in group_traces(records)]


def _pcts(values: Sequence[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95)}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(records: Sequence[SpanRecord], runs: Sequence[RunView]) -> dict[str, Any]:
    """What a set of runs adds up to, JSON-ready (see the module's docstring)."""
    summary = summarize(records)
    ttft: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for node in run.nodes:
            for attempt in node.attempts:
                if attempt.ok and attempt.ttft_ms is not None:
                    ttft[attempt.model].append(attempt.ttft_ms)
    for model, stats in summary["models"].items():
        stats["ttft_ms"] = _pcts(ttft.get(model, []))
    judges: dict[str, dict[str, Any]] = {}
    for run in runs:
        for node in run.nodes:
            for verdict in node.verdicts:
                j = judges.setdefault(
                    verdict.judge,
                    {
                        "target": node.name,
                        "verdicts": 0,
                        "passed": 0,
                        "first": 0,
                        "first_passed": 0,
                        "gave_up": 0,
                    },
                )
                j["verdicts"] += 1
                j["passed"] += verdict.passed
                j["gave_up"] += verdict.gave_up
                if node.round == 1:
                    j["first"] += 1
                    j["first_passed"] += verdict.passed
    for j in judges.values():
        j["pass_rate"] = _rate(j["passed"], j["verdicts"])
        j["first_round_pass_rate"] = _rate(j["first_passed"], j["first"])
    verdicts = sum(j["verdicts"] for j in judges.values())
    costs = [r.cost_usd for r in runs]
    budgeted = [r for r in runs if r.budget_usd]
    return {
        **summary,
        "judges": dict(sorted(judges.items())),
        "pass_rate": _rate(sum(j["passed"] for j in judges.values()), verdicts),
        "run_count": len(runs),
        "runs_ok": sum(r.status == "ok" for r in runs),
        "simulated": any(r.simulated for r in runs),
        "run_cost_usd": {
            "total": round(sum(costs), 9),
            "mean": round(sum(costs) / len(costs), 9) if costs else None,
            **_pcts(costs),
        },
        "run_duration_ms": _pcts([r.duration_ms for r in runs]),
        "budget_share": _pcts([r.cost_usd / (r.budget_usd or 1.0) for r in budgeted]),
    }


COMPARED: tuple[tuple[str, str, str], ...] = (
    ("runs", "run_count", "count"),
    ("runs ok", "runs_ok", "count"),
    ("cost per run (mean)", "run_cost_usd.mean", "usd"),
    ("cost per run (p95)", "run_cost_usd.p95", "usd"),
    ("total cost", "run_cost_usd.total", "usd"),
    ("judge pass rate", "pass_rate", "rate"),
    ("fallback rate", "totals.fallback_rate", "rate"),
    ("escalation rate", "totals.escalation_rate", "rate"),
    ("run duration p50 (ms)", "run_duration_ms.p50", "ms"),
    ("run duration p95 (ms)", "run_duration_ms.p95", "ms"),
    ("tokens in", "totals.input_tokens", "count"),
    ("tokens out", "totals.output_tokens", "count"),
)
"""``--compare`` rows: label, path into :func:`figures`, unit."""


def _at(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def comparison(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``a`` against ``b``: label, unit, both values and ``b``'s change (ratio)."""
    rows = []
    for label, path, unit in COMPARED:
        left, right = _at(a, path), _at(b, path)
        change = (
            right / left - 1.0
            if isinstance(left, int | float) and isinstance(right, int | float) and left
            else None
        )
        rows.append({"label": label, "unit": unit, "a": left, "b": right, "change": change})
    return rows
