"""``agentmesh trace summary``: the figures an operator watches, from a trace file.

Per node: decisions, the routing distribution over models, calls, errors,
fallback rate (calls made on a fallback model / calls), escalation rate
(decisions above escalation level 0 / decisions), tokens and cost. Per model:
decisions, calls, errors by type, fallback calls, tokens, cost, and p50/p95
latency of successful calls (nearest rank). Gateway controls: response-cache
lookups, hits, hit rate and the cost the hits saved; local rate-limiter waits;
hedged attempts and how many the hedge won. Rates are ``None`` when there is
nothing to divide by.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmesh.tracing.attributes import (
    COST_USD,
    ERROR_TYPE,
    ESCALATION_LEVEL,
    FALLBACK,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    ROUTE_CHOSEN,
)
from agentmesh.tracing.controls import (
    CACHE_HIT,
    CACHE_SAVED_USD,
    HEDGE_MODEL,
    HEDGE_WINNER,
    RATELIMIT_WAIT_S,
)
from agentmesh.tracing.reader import SpanRecord
from agentmesh.tracing.tree import CHAT, ROUTE, model_of, span_type, traces

__all__ = ["percentile", "render_summary", "summarize"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class _Calls:
    decisions: int = 0
    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, record: SpanRecord) -> None:
        attrs = record.attributes
        self.calls += 1
        if attrs.get(FALLBACK):
            self.fallbacks += 1
        if record.failed:
            self.errors[str(attrs.get(ERROR_TYPE, "error"))] += 1
            return
        self.input_tokens += int(attrs.get(GEN_AI_USAGE_INPUT_TOKENS, 0))
        self.output_tokens += int(attrs.get(GEN_AI_USAGE_OUTPUT_TOKENS, 0))
        self.cost_usd += float(attrs.get(COST_USD, 0.0))
        self.latencies.append(record.duration_ms)

    def report(self) -> dict[str, Any]:
        errors = sum(self.errors.values())
        return {
            "decisions": self.decisions,
            "calls": self.calls,
            "errors": errors,
            "error_types": dict(sorted(self.errors.items())),
            "fallbacks": self.fallbacks,
            "fallback_rate": _rate(self.fallbacks, self.calls),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 9),
        }


@dataclass
class _Node(_Calls):
    no_route: int = 0
    escalations: int = 0
    routing: Counter[str] = field(default_factory=Counter)
    models: dict[str, _Calls] = field(default_factory=lambda: defaultdict(_Calls))

    def report(self) -> dict[str, Any]:
        out = super().report()
        routed = sum(self.routing.values())
        out["no_route"] = self.no_route
        out["escalations"] = self.escalations
        out["escalation_rate"] = _rate(self.escalations, self.decisions)
        out["routing"] = {
            model: {"decisions": n, "share": _rate(n, routed)}
            for model, n in self.routing.most_common()
        }
        out["models"] = {
            model: {k: v for k, v in stats.report().items() if k != "decisions"}
            for model, stats in sorted(self.models.items())
        }
        return out


@dataclass
class _Controls:
    lookups: int = 0
    hits: int = 0
    saved_usd: float = 0.0
    waits: int = 0
    waited_s: float = 0.0
    hedges: int = 0
    hedge_wins: int = 0

    def add(self, record: SpanRecord) -> None:
        attrs = record.attributes
        if CACHE_HIT in attrs:
            self.lookups += 1
            if attrs[CACHE_HIT]:
                self.hits += 1
                self.saved_usd += float(attrs.get(CACHE_SAVED_USD, 0.0))
        if RATELIMIT_WAIT_S in attrs:
            self.waits += 1
            self.waited_s += float(attrs[RATELIMIT_WAIT_S])
        if HEDGE_MODEL in attrs:
            self.hedges += 1
            self.hedge_wins += attrs.get(HEDGE_WINNER) == attrs[HEDGE_MODEL]

    def report(self) -> dict[str, Any]:
        return {
            "cache": {
                "lookups": self.lookups,
                "hits": self.hits,
                "hit_rate": _rate(self.hits, self.lookups),
                "saved_usd": round(self.saved_usd, 9),
            },
            "rate_limit": {"waits": self.waits, "waited_s": round(self.waited_s, 4)},
            "hedge": {"hedged": self.hedges, "won_by_hedge": self.hedge_wins},
        }


def summarize(records: Sequence[SpanRecord]) -> dict[str, Any]:
    """The summary of every trace in ``records``, as a JSON-ready mapping."""
    nodes: dict[str, _Node] = defaultdict(_Node)
    models: dict[str, _Calls] = defaultdict(_Calls)
    total = _Node()
    controls = _Controls()
    grouped = traces(records)
    for trace in grouped:
        for record in trace.spans:
            controls.add(record)
            kind = span_type(record)
            if kind == ROUTE:
                node = nodes[trace.node_of(record) or "-"]
                escalated = bool(record.attributes.get(ESCALATION_LEVEL))
                for counted in (node, total):
                    counted.decisions += 1
                    counted.escalations += escalated
                    counted.no_route += record.failed
                chosen = record.attributes.get(ROUTE_CHOSEN)
                if not record.failed and chosen is not None:
                    node.routing[str(chosen)] += 1
                    models[str(chosen)].decisions += 1
            elif kind == CHAT:
                name, model = trace.node_of(record) or "-", model_of(record)
                targets: tuple[_Calls, ...] = (
                    nodes[name],
                    nodes[name].models[model],
                    models[model],
                    total,
                )
                for target in targets:
                    target.add(record)
    model_reports = {}
    for model, stats in sorted(models.items()):
        report = stats.report()
        report["latency_ms"] = {
            "p50": percentile(stats.latencies, 50),
            "p95": percentile(stats.latencies, 95),
        }
        model_reports[model] = report
    totals = total.report()
    for key in ("routing", "models"):
        totals.pop(key)
    return {
        "traces": len(grouped),
        "runs": len({t.run_id() for t in grouped if t.run_id() is not None}),
        "spans": len(records),
        "totals": totals,
        "controls": controls.report(),
        "nodes": {name: stats.report() for name, stats in sorted(nodes.items())},
        "models": model_reports,
    }


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


_COUNTS = ("DECISIONS", "CALLS", "ERRORS", "FALLBACK", "ESCALATE", "TOKENS IN/OUT", "COST USD")


def render_summary(summary: dict[str, Any], *, width: int | None = None) -> str:
    """The summary as text tables (what ``trace summary`` prints without ``--json``).

    Args:
        summary: What :func:`summarize` returned.
        width: Most characters per line (the last columns wrap); ``None``: whole lines.
    """
    from agentmesh._table import table_text  # rich, only when a table is drawn

    t = summary["totals"]
    head = (
        f"{summary['traces']} traces ({summary['runs']} runs), {summary['spans']} spans: "
        f"{t['decisions']} decisions ({t['no_route']} without a model), {t['calls']} calls, "
        f"{t['errors']} errors, fallback rate {_pct(t['fallback_rate'])}, "
        f"escalation rate {_pct(t['escalation_rate'])}, tokens "
        f"{t['input_tokens']}/{t['output_tokens']}, cost ${t['cost_usd']:.6f}"
    )
    c = summary.get("controls")
    if c is not None and (
        c["cache"]["lookups"] or c["rate_limit"]["waits"] or c["hedge"]["hedged"]
    ):
        head += (
            f"\ncache: {c['cache']['hits']}/{c['cache']['lookups']} hits "
            f"({_pct(c['cache']['hit_rate'])}), saved ${c['cache']['saved_usd']:.6f}; "
            f"rate-limit waits: {c['rate_limit']['waits']} ({c['rate_limit']['waited_s']:.2f} s); "
            f"hedged: {c['hedge']['hedged']} (won by the hedge: {c['hedge']['won_by_hedge']})"
        )
    nodes = table_text(
        ("NODE", *_COUNTS, "ROUTED TO"),
        (
            (
                name,
                str(n["decisions"]),
                str(n["calls"]),
                str(n["errors"]),
                _pct(n["fallback_rate"]),
                _pct(n["escalation_rate"]),
                f"{n['input_tokens']}/{n['output_tokens']}",
                f"{n['cost_usd']:.6f}",
                ", ".join(
                    f"{m} {r['decisions']} ({_pct(r['share'])})" for m, r in n["routing"].items()
                )
                or "-",
            )
            for name, n in summary["nodes"].items()
        ),
        wrap=("ROUTED TO",),
        right=_COUNTS,
        width=width,
    )
    model_counts = (*_COUNTS[:4], *_COUNTS[5:], "P50 MS", "P95 MS")
    models = table_text(
        ("MODEL", *model_counts, "ERROR TYPES"),
        (
            (
                name,
                str(m["decisions"]),
                str(m["calls"]),
                str(m["errors"]),
                str(m["fallbacks"]),
                f"{m['input_tokens']}/{m['output_tokens']}",
                f"{m['cost_usd']:.6f}",
                _ms(m["latency_ms"]["p50"]),
                _ms(m["latency_ms"]["p95"]),
                ", ".join(f"{k} {v}" for k, v in m["error_types"].items()) or "-",
            )
            for name, m in summary["models"].items()
        ),
        wrap=("ERROR TYPES",),
        right=model_counts,
        width=width,
    )
    return f"{head}\n\n{nodes}\n{models}".rstrip("\n")
