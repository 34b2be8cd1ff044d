"""One evaluation: routers scored on test rows, RouteLLM's metrics, costs, baselines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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

__all__ = ["Comparison", "Prices", "RouterResult", "evaluate", "render_table"]

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
class Comparison:
    """The first router's APGR minus another's, with its paired bootstrap interval.

    Attributes:
        router: The other router.
        difference: First router's APGR minus the other's, on the test rows.
        low: Lower bound of the 95% interval of the difference.
        high: Upper bound.
    """

    router: str
    difference: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "router": self.router,
            "apgr_difference": round(self.difference, 4),
            "ci95": [round(self.low, 4), round(self.high, 4)],
        }


@dataclass(frozen=True, slots=True)
class RouterResult:
    """Metrics of one router on the test rows.

    ``apgr_ci`` (95% bootstrap interval) and ``comparisons`` (the first router
    against each other one) are filled when the evaluation bootstraps.
    """

    name: str
    note: str
    apgr: float
    cpt50: float
    cpt80: float
    curve: list[CurvePoint]
    scores: list[float] = field(default_factory=list)
    weak_always: bool = False
    operating_point: CurvePoint | None = None
    apgr_ci: tuple[float, float] | None = None
    comparisons: tuple[Comparison, ...] = ()
    out_of_domain: int | None = None
    median_distance: float | None = None

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
        if self.apgr_ci is not None:
            out["apgr_ci95"] = [round(self.apgr_ci[0], 4), round(self.apgr_ci[1], 4)]
        if self.comparisons:
            out["versus"] = [c.to_dict() for c in self.comparisons]
        if self.out_of_domain is not None:
            out["out_of_domain_rows"] = self.out_of_domain
        if self.median_distance is not None:
            out["median_domain_distance"] = round(self.median_distance, 4)
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
    test: Dataset,
    routers: Sequence[Scorer],
    prices: Prices | None = None,
    *,
    resamples: int = 0,
    seed: int = 0,
) -> tuple[dict[str, Any], list[RouterResult]]:
    """Score ``test`` with each router; returns (summary, per-router results).

    Args:
        test: The rows to evaluate on.
        routers: The routers; the first is compared with each other one.
        prices: Catalog prices, for costs.
        resamples: Bootstrap draws of the test rows for 95% intervals of every
            APGR and of the first router's differences (0: none; needs numpy).
        seed: Seed of the draws.

    Raises:
        ValueError: No test row has both models' outcomes.
        ImportError: ``resamples`` without numpy (the ``eval`` extra).
    """
    rows = list(test.labelled)
    if not rows:
        raise ValueError(f"{test.source}: no row has both models' outcomes")
    weak_ok = [r.weak_value or 0.0 for r in rows]
    strong_ok = [r.strong_value or 0.0 for r in rows]
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
                **_domain(router, rows),
            )
        )
    if resamples:
        results = _with_intervals(results, weak_ok, strong_ok, resamples, seed)
    summary: dict[str, Any] = {
        "test": test.source,
        "rows": len(rows),
        "strong": test.strong,
        "weak": test.weak,
        "weak_accuracy": round(weak_acc, 4),
        "strong_accuracy": round(strong_acc, 4),
        "kind": test.kind,
        **({"scale": test.extra["scale"]} if "scale" in test.extra else {}),
    }
    if prices is not None and weak_cost is not None and strong_cost is not None:
        summary["prices"] = {
            "strong_model": prices.strong.id,
            "weak_model": prices.weak.id,
            "all_weak_usd": round(sum(weak_cost), 6),
            "all_strong_usd": round(sum(strong_cost), 6),
        }
    if resamples:
        summary["bootstrap"] = {"resamples": resamples, "seed": seed, "level": 0.95}
    return summary, results


def _domain(router: Scorer, rows: Sequence[Row]) -> dict[str, Any]:
    """How many test rows lie outside a guarded router's domain, and their median distance."""
    if router.distances is None:
        return {}
    found = sorted(router.distances(rows))
    middle = len(found) // 2
    median = found[middle] if len(found) % 2 else (found[middle - 1] + found[middle]) / 2
    return {"out_of_domain": sum(d > 1.0 for d in found), "median_distance": median}


def _with_intervals(
    results: Sequence[RouterResult],
    weak_ok: Sequence[float],
    strong_ok: Sequence[float],
    resamples: int,
    seed: int,
) -> list[RouterResult]:
    """Every result with its APGR interval; the first with its paired differences."""
    from agentmesh.evaluation.bootstrap import bootstrap_apgr, interval

    # the same seed: every router is scored on the same draws (paired differences)
    draws = [bootstrap_apgr(r.scores, weak_ok, strong_ok, resamples, seed) for r in results]
    first, first_draws = results[0], draws[0]
    comparisons = tuple(
        Comparison(other.name, first.apgr - other.apgr, *interval(first_draws - other_draws))
        for other, other_draws in zip(results[1:], draws[1:], strict=True)
    )
    return [
        replace(r, apgr_ci=interval(d), comparisons=comparisons if k == 0 else ())
        for k, (r, d) in enumerate(zip(results, draws, strict=True))
    ]


def render_table(summary: dict[str, Any], results: Sequence[RouterResult]) -> str:
    """The human-readable report."""
    from agentmesh._table import table_text  # rich, only when a table is drawn

    measure = "" if summary.get("kind", "correctness") == "correctness" else " mean quality"
    scale = f", scale {summary['scale']}" if "scale" in summary else ""
    lines = [
        f"{summary['test']}: {summary['rows']} {summary.get('kind', 'correctness')} rows"
        f"{scale}; weak {summary['weak']}{measure} "
        f"{summary['weak_accuracy']:.3f}, strong {summary['strong']}{measure} "
        f"{summary['strong_accuracy']:.3f}",
    ]
    prices = summary.get("prices")
    if prices:
        lines.append(
            f"cost of all-weak ({prices['weak_model']}) ${prices['all_weak_usd']:.4f}, "
            f"all-strong ({prices['strong_model']}) ${prices['all_strong_usd']:.4f}"
        )
    lines.append("")
    boot = "bootstrap" in summary
    w = max(len(r.name) for r in results)
    numbers = ("APGR", *(("APGR 95% CI",) if boot else ()), "CPT50", "CPT80", "cost@CPT50")
    rows = []
    for r in results:
        cost = ""
        if r.curve[0].cost_usd is not None:
            at = resample(r.curve, [r.cpt50])[0]
            cost = f"${at.cost_usd:.4f}" if at.cost_usd is not None else ""
        ci = (f"{r.apgr_ci[0]:.3f}-{r.apgr_ci[1]:.3f}" if r.apgr_ci is not None else "",)
        rows.append(
            (
                r.name,
                f"{r.apgr:.3f}",
                *(ci if boot else ()),
                f"{r.cpt50:.1%}",
                f"{r.cpt80:.1%}",
                cost,
                r.note
                + (
                    ""
                    if r.out_of_domain is None
                    else f"; {r.out_of_domain} rows out of domain, median distance "
                    f"{r.median_distance or 0.0:.2f}"
                ),
            )
        )
    lines.append(table_text(("router", *numbers, "note"), rows, right=numbers).rstrip("\n"))
    if boot:
        lines.append("")
        lines.append(
            f"APGR of {results[0].name} minus each other router "
            f"(paired bootstrap, {summary['bootstrap']['resamples']} draws, 95% interval):"
        )
        for c in results[0].comparisons:
            verdict = "better" if c.low > 0 else "worse" if c.high < 0 else "not separable"
            lines.append(
                f"  vs {c.router:<{w - 3}} {c.difference:+.3f}  [{c.low:+.3f}, {c.high:+.3f}]  "
                f"{verdict}"
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
