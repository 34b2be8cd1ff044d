"""The HTML of ``agentmesh trace report``: one self-contained file (inline CSS, JS, SVG).

No CDN, no fonts, no images fetched: the page works offline and from a mail
attachment. Everything is rendered here, in Python; the page's small script
only sorts tables and opens or closes the run details. Values that came from a
trace file are escaped. Figures carry ``data-figure`` names, which the browser
test reads.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from agentmesh.tracing.report.data import NodeView, RunView, comparison

__all__ = ["Side", "render_report"]

PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Side:
    """One set of runs: a label (the file names), its runs and their figures."""

    label: str
    runs: Sequence[RunView]
    figures: Mapping[str, Any]


def _asset(name: str) -> str:
    return resources.files("agentmesh.tracing.report").joinpath(name).read_text("utf-8")


def esc(value: object) -> str:
    """HTML-escaped ``str(value)``."""
    return html.escape(str(value), quote=True)


def usd(value: object, digits: int = 6) -> str:
    """``$0.001234``, or ``-``."""
    return f"${float(value):.{digits}f}" if isinstance(value, int | float) else "-"


def pct(value: object) -> str:
    """``12.5%``, or ``-``."""
    return f"{float(value) * 100:.1f}%" if isinstance(value, int | float) else "-"


def ms(value: object) -> str:
    """``12.3``, or ``-``."""
    return f"{float(value):.1f}" if isinstance(value, int | float) else "-"


def _num(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else esc("-" if value is None else value)


_FORMATS = {"usd": usd, "rate": pct, "ms": ms, "count": _num}
"""How each unit of :data:`~agentmesh.tracing.report.data.COMPARED` is shown."""


def _figure(name: str, text: str) -> str:
    return f'<span data-figure="{esc(name)}">{esc(text)}</span>'


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, name: str, numeric: int = 1
) -> str:
    """A sortable table; cells are HTML already; columns from ``numeric`` on are right-aligned."""
    head = "".join(
        f'<th class="{"num" if i >= numeric else ""}">{esc(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i >= numeric else ""}">{cell}</td>' for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table class="sortable" data-table="{esc(name)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _colors(sides: Sequence[Side]) -> dict[str, str]:
    models = sorted({m for s in sides for m in s.figures["models"]})
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _legend(colors: Mapping[str, str]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{esc(m)}</span>' for m, c in colors.items())
        + "</div>"
    )


def _cards(side: Side) -> str:
    f = side.figures
    t = f["totals"]
    cards = (
        ("runs", f"{f['runs_ok']}/{f['run_count']} ok", "runs"),
        ("total cost", usd(f["run_cost_usd"]["total"]), "total-cost"),
        ("cost per run", usd(f["run_cost_usd"]["mean"]), "cost-per-run"),
        ("judge pass rate", pct(f["pass_rate"]), "pass-rate"),
        ("fallback rate", pct(t["fallback_rate"]), "fallback-rate"),
        ("escalation rate", pct(t["escalation_rate"]), "escalation-rate"),
        ("tokens in / out", f"{t['input_tokens']:,} / {t['output_tokens']:,}", "tokens"),
        ("run p50 / p95 ms", f"{ms(f['run_duration_ms']['p50'])} / "
         f"{ms(f['run_duration_ms']['p95'])}", "run-duration"),
    )  # fmt: skip
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{esc(k)}</div>'
            f'<div class="v">{_figure(n, v)}</div></div>'
            for k, v, n in cards
        )
        + "</div>"
    )


def _routing(side: Side, colors: Mapping[str, str]) -> str:
    rows = []
    for node, stats in side.figures["nodes"].items():
        routed = stats["routing"]
        if not routed:
            continue
        bar = "".join(
            f'<i style="width:{100 * float(r["share"] or 0):.2f}%;'
            f'background:{colors.get(m, "#999")}"'
            f' title="{esc(m)}: {r["decisions"]} decisions ({pct(r["share"])})"></i>'
            for m, r in routed.items()
        )
        shares = ", ".join(
            _figure(f"route-share:{node}:{m}", f"{m} {pct(r['share'])}") for m, r in routed.items()
        )
        rows.append(
            f'<div class="route-row"><div class="name">{esc(node)}</div>'
            f'<div class="stack">{bar}</div><div class="shares">{shares}</div></div>'
        )
    return "".join(rows) or "<p>No routing decisions.</p>"


def _node_table(side: Side) -> str:
    rows = [
        (
            esc(node),
            _num(s["decisions"]),
            _num(s["calls"]),
            _num(s["errors"]),
            _figure(f"fallback-rate:{node}", pct(s["fallback_rate"])),
            _figure(f"escalation-rate:{node}", pct(s["escalation_rate"])),
            _num(s["input_tokens"]),
            _num(s["output_tokens"]),
            _figure(f"node-cost:{node}", usd(s["cost_usd"])),
        )
        for node, s in side.figures["nodes"].items()
    ]
    headers = ("node", "decisions", "calls", "errors", "fallback", "escalation",
               "tokens in", "tokens out", "cost")  # fmt: skip
    return _table(headers, rows, name="nodes")


def _bars(
    values: Mapping[str, float], *, name: str, colors: Mapping[str, str] | None = None
) -> str:
    top = max(values.values(), default=0.0) or 1.0
    return (
        '<div class="bars">'
        + "".join(
            f'<div class="bar-row"><div class="name">{esc(k)}</div><div class="track">'
            f'<i style="width:{100 * v / top:.2f}%;'
            f'background:{(colors or {}).get(k, "#4e79a7")}"></i>'
            f'</div><div class="val">{_figure(f"{name}:{k}", usd(v))}</div></div>'
            for k, v in sorted(values.items(), key=lambda kv: -kv[1])
        )
        + "</div>"
    )


def _model_table(side: Side) -> str:
    rows = [
        (
            esc(model),
            _num(m["decisions"]),
            _num(m["calls"]),
            _num(m["errors"]),
            _num(m["fallbacks"]),
            _num(m["input_tokens"]),
            _num(m["output_tokens"]),
            _figure(f"model-cost:{model}", usd(m["cost_usd"])),
            _figure(f"p50:{model}", ms(m["latency_ms"]["p50"])),
            _figure(f"p95:{model}", ms(m["latency_ms"]["p95"])),
            ms(m["ttft_ms"]["p50"]),
            ms(m["ttft_ms"]["p95"]),
        )
        for model, m in side.figures["models"].items()
    ]
    headers = ("model", "decisions", "calls", "errors", "fallbacks", "tokens in", "tokens out",
               "cost", "p50 ms", "p95 ms", "TTFT p50", "TTFT p95")  # fmt: skip
    return _table(headers, rows, name="models")


def _judges(side: Side) -> str:
    judges = side.figures["judges"]
    if not judges:
        return "<p>No judge in these runs.</p>"
    rows = [
        (
            esc(name),
            esc(j["target"]),
            _num(j["verdicts"]),
            _num(j["passed"]),
            _figure(f"judge-pass-rate:{name}", pct(j["pass_rate"])),
            pct(j["first_round_pass_rate"]),
            _num(j["gave_up"]),
        )
        for name, j in judges.items()
    ]
    headers = (
        "judge",
        "judged node",
        "verdicts",
        "passed",
        "pass rate",
        "first-round pass",
        "gave up",
    )
    return _table(headers, rows, name="judges", numeric=2)


def _burn(side: Side) -> str:
    """Remaining budget over each run's time (spend, when the runs had no budget)."""
    runs = [r for r in side.runs if r.burn]
    if not runs:
        return "<p>No spending recorded.</p>"
    budgeted = all(r.budget_usd for r in runs)
    width, height, pad = 640, 220, 36
    span_ms = max(r.duration_ms for r in runs) or 1.0
    # budget left from the largest budget down to the lowest point reached (zoomed:
    # a run that spends 1% of its budget would otherwise draw a flat line)
    top = max((r.budget_usd or 0.0) if budgeted else r.cost_usd for r in runs) or 1.0
    low = min((r.budget_usd or 0.0) - r.cost_usd for r in runs) if budgeted else 0.0
    low = max(0.0, low - 0.05 * (top - low))
    scale = (top - low) or 1.0

    def point(t: float, value: float) -> str:
        x = pad + (width - 2 * pad) * t / span_ms
        y = height - pad - (height - 2 * pad) * (value - low) / scale
        return f"{x:.1f},{y:.1f}"

    lines = []
    for run in runs:
        budget = run.budget_usd or 0.0
        values = [(0.0, budget if budgeted else 0.0)] + [
            (t, budget - spent if budgeted else spent) for t, spent in run.burn
        ]
        values.append((run.duration_ms, values[-1][1]))
        points = " ".join(point(t, v) for t, v in values)
        lines.append(
            f'<polyline points="{points}"><title>run {esc(run.run_id or run.trace_id[:8])}: '
            f"{usd(run.cost_usd)} of {usd(run.budget_usd)}</title></polyline>"
        )
    what = "budget left (USD)" if budgeted else "spent (USD)"
    share = side.figures["budget_share"]
    axis = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}"/>'
        f'<text x="{pad}" y="{pad - 8}">{esc(what)}: {usd(low, 4)} .. {usd(top, 4)}</text>'
        f'<text x="{width - pad}" y="{height - 10}" text-anchor="end">'
        f"ms since run start (0 .. {span_ms:.0f})</text>"
    )
    note = (
        f"<p>Budget used per run: p50 {_figure('budget-share-p50', pct(share['p50']))}, "
        f"p95 {_figure('budget-share-p95', pct(share['p95']))}.</p>"
        if budgeted
        else "<p>The runs carry no budget: the chart shows money spent.</p>"
    )
    return (
        f'<svg class="burn" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="budget burn-down">{axis}{"".join(lines)}</svg>{note}'
    )


def _candidates(node: NodeView) -> str:
    out = []
    for d in node.decisions:
        if d.error is not None:
            out.append(f'<div class="err">no model ({esc(d.error)}): {esc(d.reason)}</div>')
        else:
            esc_level = f" · escalation {d.escalation}" if d.escalation else ""
            out.append(
                f"<div><b>{esc(d.chosen)}</b> by {esc(d.strategy)}{esc_level}: "
                f"{esc(d.reason)}</div>"
            )
        rejected = ", ".join(
            f"{esc(m)}" + ("" if math.isnan(s) else f" ({s:.4g})") for m, s in d.rejected
        )
        if rejected:
            out.append(f'<div class="muted">passed over: {rejected}</div>')
        if d.excluded:
            out.append(
                '<div class="muted">excluded: ' + "; ".join(esc(e) for e in d.excluded) + "</div>"
            )
    for v in node.verdicts:
        score = "" if v.score is None else f" {v.score:.2f}"
        cls = "ok" if v.passed else "err"
        why = f": {esc(v.explanation)}" if v.explanation else ""
        out.append(
            f'<div class="{cls}">verdict by {esc(v.judge)}: {esc(v.label)}{score}{why}</div>'
        )
    return "".join(out) or '<span class="muted">no model call</span>'


def _waterfall(run: RunView, colors: Mapping[str, str]) -> str:
    total = run.duration_ms or 1.0
    rows = []
    for node in run.nodes:
        left, width = 100 * node.start_ms / total, max(0.4, 100 * node.duration_ms / total)
        attempts = "".join(
            f'<i class="att{"" if a.ok else " failed"}{" fallback" if a.fallback else ""}" '
            f'style="left:{100 * a.start_ms / total:.2f}%;'
            f"width:{max(0.3, 100 * a.duration_ms / total):.2f}%;"
            f'background:{colors.get(a.model, "#999")}" '
            f'title="{esc(a.model)} attempt {a.attempt}: {"ok" if a.ok else esc(a.error)}, '
            f"{a.duration_ms:.1f} ms, {a.input_tokens}/{a.output_tokens} tokens, {usd(a.cost_usd)}"
            f'{", fallback" if a.fallback else ""}"></i>'
            for a in node.attempts
        )
        state = "failed" if node.error else ""
        rows.append(
            f'<tr class="{state}"><td class="name">{esc(node.label)}<div class="muted">'
            f"{esc(node.kind)}</div></td>"
            f'<td class="track"><i class="span" style="left:{left:.2f}%;width:{width:.2f}%" '
            f'title="{esc(node.label)}: {node.duration_ms:.1f} ms"></i>{attempts}</td>'
            f'<td class="num">{node.duration_ms:.1f}</td><td class="num">{usd(node.cost_usd)}</td>'
            f'<td>{esc(node.model or "-")}</td><td class="why">{_candidates(node)}</td></tr>'
        )
    return (
        '<table class="waterfall"><thead><tr><th>node</th><th>timeline '
        f'(0 .. {run.duration_ms:.1f} ms)</th><th class="num">ms</th><th class="num">cost</th>'
        "<th>model</th><th>why this model, what else</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _runs(side: Side, colors: Mapping[str, str]) -> str:
    out = []
    for index, run in enumerate(side.runs):
        status = "ok" if run.status == "ok" else "err"
        budget = f" of {usd(run.budget_usd)}" if run.budget_usd else ""
        out.append(
            f'<details class="run"{" open" if index == 0 else ""} '
            f'data-run="{esc(run.run_id or "")}">'
            f"<summary><b>{esc(run.workflow)}</b> run {esc(run.run_id or run.trace_id[:12])} "
            f'<span class="{status}">{esc(run.status)}</span> · {run.duration_ms:.1f} ms · '
            f"{usd(run.cost_usd)}{budget} · {run.input_tokens:,}/{run.output_tokens:,} tokens · "
            f"{len(run.nodes)} node executions</summary>{_waterfall(run, colors)}</details>"
        )
    return "".join(out) or "<p>No runs.</p>"


def _side(side: Side, colors: Mapping[str, str]) -> str:
    f = side.figures
    node_costs = {n: float(s["cost_usd"]) for n, s in f["nodes"].items()}
    model_costs = {m: float(s["cost_usd"]) for m, s in f["models"].items()}
    return (
        f'<div class="side" data-side="{esc(side.label)}"><h2>{esc(side.label)}</h2>{_cards(side)}'
        f"<h3>Routing distribution per node</h3>{_routing(side, colors)}"
        f"<h3>Fallback and escalation rates, tokens and cost per node</h3>{_node_table(side)}"
        f"<h3>Cost per node</h3>{_bars(node_costs, name='cost-bar')}"
        f"<h3>Cost per model</h3>{_bars(model_costs, name='model-bar', colors=colors)}"
        f"<h3>Calls, latency and TTFT per model</h3>{_model_table(side)}"
        f"<h3>Judges</h3>{_judges(side)}"
        f"<h3>Budget burn-down</h3>{_burn(side)}"
        "</div>"
    )


def _comparison(a: Side, b: Side) -> str:
    rows = [
        (
            esc(r["label"]),
            _figure(f"compare-a:{r['label']}", _FORMATS[r["unit"]](r["a"])),
            _figure(f"compare-b:{r['label']}", _FORMATS[r["unit"]](r["b"])),
            "-" if r["change"] is None else f"{r['change'] * 100:+.1f}%",
        )
        for r in comparison(a.figures, b.figures)
    ]
    nodes = sorted(set(a.figures["nodes"]) | set(b.figures["nodes"]))
    per_node = [
        (
            esc(n),
            usd(a.figures["nodes"].get(n, {}).get("cost_usd")),
            usd(b.figures["nodes"].get(n, {}).get("cost_usd")),
            ", ".join(a.figures["nodes"].get(n, {}).get("routing", {})) or "-",
            ", ".join(b.figures["nodes"].get(n, {}).get("routing", {})) or "-",
        )
        for n in nodes
    ]
    return (
        '<section id="compare"><h2>A/B comparison</h2>'
        f"<p>A: {esc(a.label)} · B: {esc(b.label)}</p>"
        + _table(("figure", "A", "B", "B vs A"), rows, name="compare")
        + "<h3>Cost and models per node</h3>"
        + _table(
            ("node", "A cost", "B cost", "A models", "B models"), per_node, name="compare-nodes"
        )
        + "</section>"
    )


def render_report(sides: Sequence[Side], *, compare: bool = False) -> str:
    """The whole page for ``sides`` (two sides compared when ``compare``)."""
    colors = _colors(sides)
    runs = sum(len(s.runs) for s in sides)
    simulated = any(s.figures.get("simulated") for s in sides)
    banner = (
        '<p class="sim">Simulated: these runs used scripted models; answers, latencies and '
        "costs are the simulator's.</p>"
        if simulated
        else ""
    )
    parts = [_comparison(sides[0], sides[1])] if compare and len(sides) == 2 else []
    parts.append(
        f'<section id="figures" class="{"two" if len(sides) == 2 else "one"}">'
        + "".join(_side(s, colors) for s in sides)
        + "</section>"
    )
    parts.append(
        '<section id="runs"><h2>Runs <button type="button" id="toggle-runs">open all</button></h2>'
        + "".join(
            (f"<h3>{esc(s.label)}</h3>" if len(sides) > 1 else "") + _runs(s, colors) for s in sides
        )
        + "</section>"
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"agentmesh report: {runs} runs"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_asset('report.css')}</style></head><body>"
        f'<header><h1>{esc(title)}</h1><p class="muted">'
        f"from {esc(', '.join(s.label for s in sides))}"
        f" · generated {generated}</p>{banner}{_legend(colors)}</header>"
        f"<main>{''.join(parts)}</main>"
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )
