"""Fit a cascade judge (:class:`~agentmesh.evaluation.cascade.CascadeModel`) on weak responses.

Needs numpy (the ``eval`` extra); the file it writes is scored without it.

The judge is an L2-regularised logistic regression of "the weak answer is
wrong" on the standardised :data:`~agentmesh.evaluation.cascade.SIGNALS`,
optionally with every pairwise product of them. The regularisation strength
and whether to use the products are chosen by repeated k-fold cross-validation
inside the given rows (mean APGR over the folds when the strong model's outcome
is known, else AUC of "weak is wrong"). The chosen model is refitted on all rows
and written back in raw signal units (weights divided by the standard deviation,
the means folded into the bias), so that scoring is a plain weighted sum.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agentmesh.evaluation.cascade import SIGNALS, CascadeModel, signal_matrix
from agentmesh.evaluation.data import Row
from agentmesh.evaluation.metrics import apgr as apgr_of

__all__ = ["CascadeConfig", "cascade_cv", "fit_cascade"]

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CascadeConfig:
    """Options of :func:`fit_cascade` (defaults are what the shipped judge used).

    Attributes:
        strengths: L2 strengths (on the mean loss, standardised inputs) tried.
        pairs: Whether to try pairwise products of signals (False, True: both tried).
        folds: Cross-validation folds.
        repeats: Fold assignments (seeds ``seed .. seed + repeats - 1``) averaged over.
        seed: First fold seed.
        strong_share: Share of the training answers escalated at the file's threshold.
    """

    strengths: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    pairs: tuple[bool, ...] = (False, True)
    folds: int = 5
    repeats: int = 3
    seed: int = 0
    strong_share: float = 0.3


def _expand(raw: Floats, pairs: bool) -> tuple[Floats, list[tuple[int, int]]]:
    if not pairs:
        return raw, []
    index = list(itertools.combinations(range(raw.shape[1]), 2))
    products = np.stack([raw[:, i] * raw[:, j] for i, j in index], axis=1)
    return np.hstack([raw, products]), index


def _logistic(x: Floats, y: Floats, strength: float, iterations: int = 60) -> tuple[Floats, float]:
    """Newton's method on mean log-loss + strength/2 * |w|^2 (bias not penalised)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.eye(d + 1) * strength
    penalty[-1, -1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) / n + penalty @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb / n + penalty + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    return w[:-1], float(w[-1])


def _standardise(train: Floats) -> tuple[Floats, Floats]:
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)


def _auc(scores: Floats, positive: NDArray[np.bool_]) -> float:
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return 0.5
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def cascade_cv(
    raw: Floats,
    weak_ok: Sequence[bool],
    strong_ok: Sequence[bool | None],
    config: CascadeConfig,
) -> list[dict[str, float]]:
    """Mean and spread of the fold metric for every (strength, pairs) of ``config``.

    Args:
        raw: One row of :data:`SIGNALS` per answer.
        weak_ok: Whether each weak answer was right.
        strong_ok: Whether the strong model was right (``None``: unknown; then AUC).
        config: The grid and the folds.
    """
    weak = np.array([bool(w) for w in weak_ok])
    known = all(s is not None for s in strong_ok)
    strong = [bool(s) for s in strong_ok]
    y = (~weak).astype(np.float64)
    n = len(weak)
    fold_sets = []
    for r in range(config.repeats):
        order = np.random.default_rng(config.seed + r).permutation(n)
        fold_sets += [np.sort(order[k :: config.folds]) for k in range(config.folds)]
    out: list[dict[str, float]] = []
    for pairs in config.pairs:
        x, _ = _expand(raw, pairs)
        for strength in config.strengths:
            values = []
            for test in fold_sets:
                train = np.setdiff1d(np.arange(n), test)
                mean, std = _standardise(x[train])
                w, b = _logistic((x[train] - mean) / std, y[train], strength)
                score = ((x[test] - mean) / std) @ w + b
                if known:
                    t = test.tolist()
                    values.append(
                        apgr_of(score.tolist(), [bool(weak[i]) for i in t], [strong[i] for i in t])
                    )
                else:
                    values.append(_auc(score, ~weak[test]))
            out.append(
                {
                    "strength": strength,
                    "pairs": float(pairs),
                    "mean": float(np.nanmean(values)) if not np.isnan(values).all() else 0.5,
                    "sd": float(np.nanstd(values)) if not np.isnan(values).all() else 0.0,
                }
            )
    return out


def fit_cascade(
    rows: Sequence[Row],
    config: CascadeConfig | None = None,
    *,
    strong_share: float | None = None,
    meta: dict[str, Any] | None = None,
) -> CascadeModel:
    """Fit a :class:`CascadeModel` on rows with the weak model's responses and outcomes.

    Args:
        rows: Training rows (rows without a weak response or outcome are skipped).
        config: Grid and folds (default :class:`CascadeConfig`).
        strong_share: Overrides ``config.strong_share`` (threshold calibration).
        meta: Extra entries for the file's ``meta``.

    Raises:
        ValueError: Fewer than 20 usable rows.
    """
    config = config or CascadeConfig()
    share = config.strong_share if strong_share is None else strong_share
    if not 0 <= share <= 1:
        raise ValueError(f"strong share must be in [0, 1], got {share}")
    usable = [r for r in rows if r.weak_response is not None and r.weak_ok is not None]
    if len(usable) < 20:
        raise ValueError(f"need at least 20 rows with a weak response, got {len(usable)}")
    raw = np.array(signal_matrix([(r.weak_response or "", r.prompt) for r in usable]))
    weak_ok = [bool(r.weak_ok) for r in usable]
    cv = cascade_cv(raw, weak_ok, [r.strong_ok for r in usable], config)
    best = max(cv, key=lambda c: c["mean"])
    x, index = _expand(raw, bool(best["pairs"]))
    mean, std = _standardise(x)
    y = np.array([0.0 if ok else 1.0 for ok in weak_ok])
    w, b = _logistic((x - mean) / std, y, best["strength"])
    weights = w / std
    bias = b - float((weights * mean).sum())
    k = len(SIGNALS)
    pairs = tuple(
        (SIGNALS[i], SIGNALS[j], round(float(v), 6))
        for (i, j), v in zip(index, weights[k:], strict=True)
        if v != 0
    )
    model = CascadeModel(
        SIGNALS, tuple(round(float(v), 6) for v in weights[:k]), round(bias, 6), pairs=pairs
    )
    scores = sorted(model.escalate_score(r.weak_response or "", r.prompt) for r in usable)
    cut = scores[max(0, min(len(scores) - 1, round(len(scores) * (1 - share))))]
    info = {
        "trainer": "agentmesh train-router --cascade",
        "rows": len(usable),
        "strength": best["strength"],
        "pairs": bool(best["pairs"]),
        "cv_metric": "apgr" if all(r.strong_ok is not None for r in usable) else "auc_weak_wrong",
        "cv_mean": round(best["mean"], 4),
        "cv_sd": round(best["sd"], 4),
        "cv": [{k: round(v, 4) for k, v in c.items()} for c in cv],
        "strong_share": share,
        **(meta or {}),
    }
    if not math.isfinite(cut):
        cut = 0.5
    return CascadeModel(model.signals, model.weights, model.bias, cut, info, model.pairs)
