"""RouteLLM's router metrics, computed exactly (pure Python).

A router gives each query a score (higher = more in need of the strong model).
Sending the top ``k`` queries to the strong model and the rest to the weak one
gives a point (``k / n`` strong calls, accuracy). Sweeping ``k`` from 0 to ``n``
gives the curve; queries with equal scores cannot be separated by a threshold,
so the curve has one point per distinct score and is straight in between (the
expected curve under random tie-breaking: a constant router is the diagonal).

- **APGR**: (area under the curve - weak accuracy) / (strong accuracy - weak
  accuracy), trapezoids over [0, 1]. Random routing scores 0.5 in expectation.
- **CPT(x%)**: the smallest share of strong calls at which the curve reaches
  weak + x% of the gap (linear between points). RouteLLM interpolates the
  inverse of the curve, which assumes it rises monotonically; the first
  crossing is the same on a monotone curve and well defined on any other.
- **Cost** at each point: the catalog price of every call made (a cascade
  also pays the weak call of every query it escalates).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CurvePoint",
    "apgr",
    "apgr_of_curve",
    "cpt",
    "cpt_of_curve",
    "resample",
    "routing_curve",
]


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One threshold of a router: ``score >= threshold`` goes to the strong model.

    Attributes:
        strong_share: Share of queries sent to the strong model.
        accuracy: Accuracy of the routed answers.
        cost_usd: Total cost of the calls made, when prices are known.
        threshold: Lowest score sent to the strong model (``None`` at share 0).
    """

    strong_share: float
    accuracy: float
    cost_usd: float | None = None
    threshold: float | None = None


def routing_curve(
    scores: Sequence[float],
    weak_ok: Sequence[float],
    strong_ok: Sequence[float],
    *,
    weak_cost: Sequence[float] | None = None,
    strong_cost: Sequence[float] | None = None,
    weak_always: bool = False,
) -> list[CurvePoint]:
    """The exact curve: one point at share 0 and one after each group of equal scores.

    Args:
        scores: One score per query.
        weak_ok: Whether the weak model answered each query right (or its
            quality in [0, 1], for graded data: accuracy is then mean quality).
        strong_ok: Whether the strong model did (or its quality).
        weak_cost: Cost of each query on the weak model (with ``strong_cost``: costs).
        strong_cost: Cost of each query on the strong model.
        weak_always: The weak model is called for every query (a cascade).

    Raises:
        ValueError: Sequences of different lengths, or no queries.
    """
    n = len(scores)
    if n == 0:
        raise ValueError("no queries to evaluate")
    if len(weak_ok) != n or len(strong_ok) != n:
        raise ValueError(f"{n} scores but {len(weak_ok)} weak and {len(strong_ok)} strong labels")
    priced = weak_cost is not None and strong_cost is not None
    if priced and (len(weak_cost or ()) != n or len(strong_cost or ()) != n):
        raise ValueError("one cost per query is needed")
    order = sorted(range(n), key=lambda i: -scores[i])
    correct = float(sum(float(w) for w in weak_ok))
    cost = float(sum(weak_cost)) if weak_cost is not None and strong_cost is not None else 0.0
    points = [CurvePoint(0.0, correct / n, cost if priced else None, None)]
    k = 0
    while k < n:
        group = scores[order[k]]
        while k < n and scores[order[k]] == group:
            i = order[k]
            correct += float(strong_ok[i]) - float(weak_ok[i])
            if weak_cost is not None and strong_cost is not None:
                cost += strong_cost[i] - (0.0 if weak_always else weak_cost[i])
            k += 1
        points.append(CurvePoint(k / n, correct / n, cost if priced else None, float(group)))
    return points


def _auc(points: Sequence[CurvePoint]) -> float:
    return sum(
        (b.strong_share - a.strong_share) * (a.accuracy + b.accuracy) / 2
        for a, b in itertools.pairwise(points)
    )


def apgr_of_curve(points: Sequence[CurvePoint], weak_acc: float, strong_acc: float) -> float:
    """APGR of a curve given the two models' accuracies (``nan`` when they are equal)."""
    gap = strong_acc - weak_acc
    return (_auc(points) - weak_acc) / gap if gap else float("nan")


def cpt_of_curve(
    points: Sequence[CurvePoint], weak_acc: float, strong_acc: float, fraction: float
) -> float:
    """Share of strong calls where the curve first recovers ``fraction`` of the gap."""
    target = weak_acc + fraction * (strong_acc - weak_acc)
    previous = points[0]
    if previous.accuracy >= target - 1e-12:
        return 0.0
    for point in points[1:]:
        if point.accuracy >= target - 1e-12:
            rise = point.accuracy - previous.accuracy
            t = (target - previous.accuracy) / rise if rise > 0 else 1.0
            return previous.strong_share + t * (point.strong_share - previous.strong_share)
        previous = point
    return 1.0


def apgr(scores: Sequence[float], weak_ok: Sequence[float], strong_ok: Sequence[float]) -> float:
    """APGR of ``scores`` on queries with these outcomes."""
    n = len(scores)
    points = routing_curve(scores, weak_ok, strong_ok)
    weak = sum(float(w) for w in weak_ok) / n
    strong = sum(float(s) for s in strong_ok) / n
    return apgr_of_curve(points, weak, strong)


def cpt(
    scores: Sequence[float],
    weak_ok: Sequence[float],
    strong_ok: Sequence[float],
    fraction: float,
) -> float:
    """CPT(``fraction``) of ``scores``: the share of strong calls that recovers that much gap."""
    n = len(scores)
    points = routing_curve(scores, weak_ok, strong_ok)
    weak = sum(float(w) for w in weak_ok) / n
    strong = sum(float(s) for s in strong_ok) / n
    return cpt_of_curve(points, weak, strong, fraction)


def resample(points: Sequence[CurvePoint], shares: Sequence[float]) -> list[CurvePoint]:
    """The curve at the given strong-call shares (linear between its points)."""
    out: list[CurvePoint] = []
    j = 0
    for share in shares:
        while j < len(points) - 2 and points[j + 1].strong_share < share:
            j += 1
        a, b = points[j], points[min(j + 1, len(points) - 1)]
        span = b.strong_share - a.strong_share
        t = 0.0 if span <= 0 else min(1.0, max(0.0, (share - a.strong_share) / span))
        cost = None
        if a.cost_usd is not None and b.cost_usd is not None:
            cost = a.cost_usd + t * (b.cost_usd - a.cost_usd)
        threshold = b.threshold if share > a.strong_share else a.threshold
        out.append(CurvePoint(share, a.accuracy + t * (b.accuracy - a.accuracy), cost, threshold))
    return out
