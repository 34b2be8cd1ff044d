"""Numeric helpers the trainers share (numpy: the ``eval`` extra)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["rank_auc"]


def rank_auc(scores: NDArray[np.float64], positive: NDArray[np.generic]) -> float:
    """ROC AUC of ``scores`` for the rows where ``positive`` is true (Mann-Whitney ranks).

    Ties are ranked in input order; with no positive or no negative row, 0.5.
    """
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = positive.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return 0.5
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
