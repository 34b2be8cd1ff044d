"""How sure an APGR is: paired bootstrap intervals over the test rows (numpy: ``eval`` extra).

One held-out set gives one APGR; on a few hundred rows it moves by several
hundredths with the luck of the split, which decides whether "router A beats
router B" means anything. :func:`bootstrap_apgr` redraws the test rows with
replacement ``resamples`` times and recomputes every router's APGR on each draw
(the two models' accuracies included: they are the denominator). The same draws
serve every router, so the difference between two routers is measured on the
same rows each time (a paired bootstrap): its interval is much narrower than
either router's own, and excluding 0 is the evidence that one is better.

Each draw's APGR is computed exactly like :func:`~agentmesh.evaluation.metrics.apgr`
(one curve point per group of equal scores, trapezoids), vectorised: the rows
are sorted once by score and a draw is a vector of counts per row, so the curve
is a pair of cumulative sums read at the ends of the tie groups. With every
count 1 it reproduces :func:`~agentmesh.evaluation.metrics.apgr` (a test checks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["bootstrap_apgr", "draw_counts", "interval"]

_CHUNK = 100
"""Draws computed together (bounds memory to ``_CHUNK x rows`` floats)."""


def draw_counts(rows: int, resamples: int, seed: int) -> NDArray[np.int64]:
    """``resamples`` draws of ``rows`` rows with replacement, as counts per row.

    Raises:
        ValueError: No rows, or fewer than one draw.
    """
    if rows <= 0 or resamples <= 0:
        raise ValueError(f"bootstrap needs rows and draws, got {rows} rows, {resamples} draws")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, rows, size=(resamples, rows))
    counts = np.zeros((resamples, rows), dtype=np.int64)
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1)
    return counts


def bootstrap_apgr(
    scores: Sequence[float],
    weak_ok: Sequence[bool],
    strong_ok: Sequence[bool],
    counts: NDArray[np.int64],
) -> NDArray[np.float64]:
    """The router's APGR on each draw (``nan`` on a draw where both models score the same).

    Args:
        scores: One score per test row (higher = strong model).
        weak_ok: Whether the weak model answered each row right.
        strong_ok: Whether the strong model did.
        counts: Draws x rows: how often each row is in each draw (:func:`draw_counts`).

    Raises:
        ValueError: Lengths that do not match.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    if len(weak_ok) != n or len(strong_ok) != n or counts.shape[1:] != (n,):
        raise ValueError(
            f"{n} scores, {len(weak_ok)} weak and {len(strong_ok)} strong labels, "
            f"draws of {counts.shape[1:]} rows"
        )
    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    # Index of the last row of each group of equal scores, in score order.
    ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True))
    weak = np.asarray(weak_ok, dtype=np.float64)[order]
    gain = np.asarray(strong_ok, dtype=np.float64)[order] - weak
    out = np.empty(len(counts))
    for start in range(0, len(counts), _CHUNK):
        c = counts[start : start + _CHUNK][:, order].astype(np.float64)
        size = c.sum(axis=1, keepdims=True)
        weak_acc = (c @ weak)[:, None] / size
        gained = np.cumsum(c * gain, axis=1)[:, ends] / size
        share = np.cumsum(c, axis=1)[:, ends] / size
        zero = np.zeros((len(c), 1))
        share = np.hstack([zero, share])
        accuracy = weak_acc + np.hstack([zero, gained])
        area = (np.diff(share, axis=1) * (accuracy[:, 1:] + accuracy[:, :-1]) / 2).sum(axis=1)
        gap = accuracy[:, -1] - weak_acc[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + len(c)] = np.where(gap != 0, (area - weak_acc[:, 0]) / gap, np.nan)
    return out


def interval(values: NDArray[np.float64], level: float = 0.95) -> tuple[float, float]:
    """The (low, high) percentile interval of bootstrapped values (``nan`` draws left out).

    Raises:
        ValueError: No finite value, or a level outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    finite = values[np.isfinite(values)]
    if not len(finite):
        raise ValueError("no draw gave a finite figure (the two models score the same)")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
