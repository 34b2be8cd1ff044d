"""One evaluation: routers scored on test rows, RouteLLM's metrics, costs, baselines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmesh.evaluation.data import Dataset, Row
from agentmesh.evaluation.metrics import (
    CurvePoint,
    apgr_of_curve,
    cpt_of_curve,
    resample,
    routing_curve,
)
from agentmesh.evaluation.routers import Scorer
from agentmesh.models.spec import ModelSpec
from agentmesh.models.tokens import estimate_tokens

__all__ = ["Prices", "RouterResult", "evaluate", "render_table"]

SHARES = tuple(i / 20 for i in range(21))
"""Strong-call shares at which curves are printed (every 5%)."""


@dataclass(frozen=True, slots=True)
class Prices:
    """Catalog prices of the two models (USD per million tokens) and output-size assumptions.

    Attributes:
        strong: The strong model's catalog entry.
        weak: The weak model's catalog entry.
        output_tokens: Output tokens per answer when the data has no responses.
    """

    strong: ModelSpec
    weak: ModelSpec
    output_tokens: int = 256

    def costs(self, rows: Sequence[Row]) -> tuple[list[float], list[float]]:
        """Per-query cost on the weak and on the strong model."""
        weak: list[float] = []
        strong: list[float] = []
        for r in rows:
            prompt = estimate_tokens(r.prompt)
            out_w = estimate_tokens(r.weak_response) if r.weak_response else self.output_tokens
            out_s = estimate_tokens(r.strong_response) if r.strong_response else self.output_tokens
            weak.append(self.weak.cost(prompt, out_w))
            strong.append(self.strong.cost(prompt, out_s))
        return weak, strong


@dataclass(frozen=True, slots=True)
class RouterResult:
    """Metrics of one router on the test rows."""

    name: str
    note: str
    apgr: float
    cpt50: float
    cpt80: float
    curve: list[CurvePoint]
    scores: list[float] = field(default_factory=list)
    weak_always: bool = False
    operating_point: CurvePoint | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures and the curve every 5% of strong calls."""
        out: dict[str, Any] = {
            "router": self.name,
            "note": self.note,
            "apgr": round(self.apgr, 4),
            "cpt50": round(self.cpt50, 4),
            "cpt80": round(self.cpt80, 4),
            "weak_always": self.weak_always,
            "curve": [_point(p) for p in resample(self.curve, SHARES)],
        }
        if self.operating_point is not None:
            out["at_threshold"] = _point(self.operating_point)
        return out


def _point(p: CurvePoint) -> dict[str, Any]:
    out: dict[str, Any] = {
        "strong_share": round(p.strong_share, 4),
        "accuracy": round(p.accuracy, 4),
    }
    if p.cost_usd is not None:
        out["cost_usd"] = round(p.cost_usd, 6)
    if p.threshold is not None:
        out["threshold"] = round(p.threshold, 6)
    return out


def evaluate(
    test: Dataset, routers: Sequence[Scorer], prices: Prices | None = None
) -> tuple[dict[str, Any], list[RouterResult]]:
    """Score ``test`` with each router; returns (summary, per-router results).

    Raises:
        ValueError: No test row has both models' outcomes.
    """
    rows = list(test.labelled)
    if not rows:
        raise ValueError(f"{test.source}: no row has both models' outcomes")
    weak_ok = [bool(r.weak_ok) for r in rows]
    strong_ok = [bool(r.strong_ok) for r in rows]
    weak_acc = sum(weak_ok) / len(rows)
    strong_acc = sum(strong_ok) / len(rows)
    weak_cost = strong_cost = None
    if prices is not None:
        weak_cost, strong_cost = prices.costs(rows)
    results: list[RouterResult] = []
    for router in routers:
        scores = router.score(rows)
        curve = routing_curve(
            scores,
            weak_ok,
            strong_ok,
            weak_cost=weak_cost,
            strong_cost=strong_cost,
            weak_always=router.weak_always,
        )
        operating = None
        if router.threshold is not None:
            operating = next(
                (
                    p
                    for p in reversed(curve)
                    if p.threshold is not None and p.threshold >= router.threshold
                ),
                curve[0],
            )
        results.append(
            RouterResult(
                router.name,
                router.note,
                apgr_of_curve(curve, weak_acc, strong_acc),
                cpt_of_curve(curve, weak_acc, strong_acc, 0.5),
                cpt_of_curve(curve, weak_acc, strong_acc, 0.8),
                curve,
                scores,
                router.weak_always,
                operating,
            )
        )
    summary: dict[str, Any] = {
        "test": test.source,
        "rows": len(rows),
        "strong": test.strong,
        "weak": test.weak,
        "weak_accuracy": round(weak_acc, 4),
        "strong_accuracy": round(strong_acc, 4),
    }
    if prices is not None and weak_cost is not None and strong_cost is not None:
        summary["prices"] = {
            "strong_model": prices.strong.id,
            "weak_model": prices.weak.id,
            "all_weak_usd": round(sum(weak_cost), 6),
            "all_strong_usd": round(sum(strong_cost), 6),
        }
    return summary, results


def render_table(summary: dict[str, Any], results: Sequence[RouterResult]) -> str:
    """The human-readable report."""
    lines = [
        f"{summary['test']}: {summary['rows']} rows; weak {summary['weak']} "
        f"{summary['weak_accuracy']:.3f}, strong {summary['strong']} "
        f"{summary['strong_accuracy']:.3f}",
    ]
    prices = summary.get("prices")
    if prices:
        lines.append(
            f"cost of all-weak ({prices['weak_model']}) ${prices['all_weak_usd']:.4f}, "
            f"all-strong ({prices['strong_model']}) ${prices['all_strong_usd']:.4f}"
        )
    lines.append("")
    lines.append(f"{'router':<34} {'APGR':>6} {'CPT50':>7} {'CPT80':>7}  {'cost@CPT50':>10}  note")
    for r in results:
        cost = ""
        if r.curve[0].cost_usd is not None:
            at = resample(r.curve, [r.cpt50])[0]
            cost = f"${at.cost_usd:.4f}" if at.cost_usd is not None else ""
        lines.append(
            f"{r.name:<34} {r.apgr:>6.3f} {r.cpt50:>7.1%} {r.cpt80:>7.1%}  {cost:>10}  {r.note}"
        )
    for r in results:
        if r.operating_point is not None:
            p = r.operating_point
            lines.append(
                f"{r.name} at its own threshold: {p.strong_share:.1%} strong calls, "
                f"accuracy {p.accuracy:.3f}"
                + (f", ${p.cost_usd:.4f}" if p.cost_usd is not None else "")
            )
    return "\n".join(lines)
