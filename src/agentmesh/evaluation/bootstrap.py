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
Draws are made and scored in chunks of at most ~2 million row-draws, so memory
does not grow with the number of draws.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

__all__ = ["apgr_of_draws", "bootstrap_apgr", "draws", "interval"]

_CELLS = 2_000_000
"""Rows x draws held at once: memory stays ~100 MB however large the test set."""
_MAX_CHUNK = 100


def draws(rows: int, resamples: int, seed: int) -> Iterator[NDArray[np.int64]]:
    """``resamples`` draws of ``rows`` rows with replacement, as counts per row, in chunks.

    The same arguments give the same draws (each chunk has its own seeded
    generator), so every router evaluated with them is scored on the same draws.

    Raises:
        ValueError: No rows, or fewer than one draw.
    """
    if rows <= 0 or resamples <= 0:
        raise ValueError(f"bootstrap needs rows and draws, got {rows} rows, {resamples} draws")
    chunk = max(1, min(_MAX_CHUNK, _CELLS // rows))
    for k, start in enumerate(range(0, resamples, chunk)):
        size = min(chunk, resamples - start)
        picks = np.random.default_rng([seed, k]).integers(0, rows, size=(size, rows))
        cells = (np.arange(size)[:, None] * rows + picks).ravel()
        yield np.bincount(cells, minlength=size * rows).reshape(size, rows)


def bootstrap_apgr(
    scores: Sequence[float],
    weak_ok: Sequence[float],
    strong_ok: Sequence[float],
    resamples: int,
    seed: int,
) -> NDArray[np.float64]:
    """The router's APGR on each of the :func:`draws` (``nan`` where both models score the same).

    Raises:
        ValueError: Lengths that do not match, no rows, or no draws.
    """
    curve = _SortedRows(scores, weak_ok, strong_ok)
    chunks = [curve.apgr(c) for c in draws(len(curve.weak), resamples, seed)]
    return np.concatenate(chunks)


def apgr_of_draws(
    scores: Sequence[float],
    weak_ok: Sequence[float],
    strong_ok: Sequence[float],
    counts: NDArray[np.int64],
) -> NDArray[np.float64]:
    """The router's APGR on given draws (draws x rows: how often each row is in each draw).

    Raises:
        ValueError: Lengths that do not match.
    """
    return _SortedRows(scores, weak_ok, strong_ok).apgr(counts)


class _SortedRows:
    """The test rows sorted once by score, with the ends of the groups of equal scores."""

    def __init__(
        self, scores: Sequence[float], weak_ok: Sequence[float], strong_ok: Sequence[float]
    ) -> None:
        s = np.asarray(scores, dtype=np.float64)
        if len(weak_ok) != len(s) or len(strong_ok) != len(s):
            raise ValueError(
                f"{len(s)} scores but {len(weak_ok)} weak and {len(strong_ok)} strong labels"
            )
        self.order = np.argsort(-s, kind="stable")
        ordered = s[self.order]
        # index of the last row of each group of equal scores, in score order
        self.ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
        self.weak = np.asarray(weak_ok, dtype=np.float64)[self.order]
        self.gain = np.asarray(strong_ok, dtype=np.float64)[self.order] - self.weak

    def apgr(self, counts: NDArray[np.int64]) -> NDArray[np.float64]:
        if counts.ndim != 2 or counts.shape[1] != len(self.weak):
            raise ValueError(f"draws of {counts.shape[1:]} rows for {len(self.weak)} scores")
        c = counts[:, self.order].astype(np.float64)
        size = c.sum(axis=1, keepdims=True)
        weak_acc = (c @ self.weak)[:, None] / size
        zero = np.zeros((len(c), 1))
        share = np.hstack([zero, np.cumsum(c, axis=1)[:, self.ends] / size])
        gained = np.hstack([zero, np.cumsum(c * self.gain, axis=1)[:, self.ends] / size])
        accuracy = weak_acc + gained
        area = (np.diff(share, axis=1) * (accuracy[:, 1:] + accuracy[:, :-1]) / 2).sum(axis=1)
        gap = accuracy[:, -1] - weak_acc[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            out: NDArray[np.float64] = np.where(gap != 0, (area - weak_acc[:, 0]) / gap, np.nan)
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
