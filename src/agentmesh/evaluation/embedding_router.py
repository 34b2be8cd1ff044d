"""A router on prompt embeddings: ridge regression of the strong model's gain (numpy: ``eval``).

The features are a catalog model's embeddings of the prompt
(:mod:`agentmesh.evaluation.embeddings`), standardised; the target is the
gain of calling the strong model (strong quality minus weak quality, RouteLLM's
target); the L2 strength is chosen by the mean APGR over cross-validation
folds inside the training rows, as the n-gram trainer does. Its out-of-domain
measure is the cosine distance to the nearest of the training prompts' vectors,
over its ``quantile`` among the training prompts (leave-one-out), like the
n-gram router's guard (1 = the edge of the domain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from agentmesh.evaluation.data import Row
from agentmesh.evaluation.metrics import apgr

__all__ = ["EmbeddingRouter", "fit_embedding_router"]

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EmbeddingRouter:
    """Standardised embeddings -> linear score of the gain, plus the training domain.

    Attributes:
        mean: Training mean of each dimension.
        scale: Training standard deviation of each (floored).
        weights: Ridge weights on the standardised dimensions.
        bias: Intercept (the mean gain).
        strength: The L2 strength chosen.
        cv: Mean APGR over the folds for each strength tried.
        anchors: Unit-length training vectors (the nearest-neighbour guard).
        limit: Nearest-neighbour cosine distance at the guard's quantile.
    """

    mean: Floats
    scale: Floats
    weights: Floats
    bias: float
    strength: float
    cv: dict[float, float] = field(default_factory=dict)
    anchors: Floats = field(default_factory=lambda: np.zeros((0, 0)))
    limit: float = 1.0

    def score(self, vectors: NDArray[np.floating]) -> Floats:
        """The predicted gain of each row (higher: send to the strong model)."""
        out: Floats = ((vectors - self.mean) / self.scale) @ self.weights + self.bias
        return out

    def distance(self, vectors: NDArray[np.floating]) -> Floats:
        """Nearest-neighbour cosine distance to the training prompts, over the limit."""
        unit = _unit(np.asarray(vectors, dtype=np.float64))
        nearest = 1.0 - (unit @ self.anchors.T).max(axis=1)
        out: Floats = nearest / self.limit
        return out


def _unit(v: Floats) -> Floats:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    out: Floats = v / np.maximum(norms, 1e-12)
    return out


def _ridge(x: Floats, y: Floats, strength: float) -> tuple[Floats, float]:
    bias = float(y.mean())
    gram = x.T @ x + strength * len(x) * np.eye(x.shape[1])
    w = np.asarray(np.linalg.solve(gram, x.T @ (y - bias)), dtype=np.float64)
    return w, bias


def fit_embedding_router(
    vectors: NDArray[np.floating],
    rows: Sequence[Row],
    *,
    strengths: Sequence[float] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
    folds: int = 5,
    seed: int = 0,
    quantile: float = 0.99,
) -> EmbeddingRouter:
    """Fit on rows with both outcomes known (see the module docstring).

    Raises:
        ValueError: Fewer than 20 usable rows, or one vector count and row count that differ.
    """
    if len(vectors) != len(rows):
        raise ValueError(f"{len(vectors)} vectors for {len(rows)} rows")
    keep = [
        i for i, r in enumerate(rows) if r.weak_value is not None and r.strong_value is not None
    ]
    if len(keep) < 20:
        raise ValueError(f"need at least 20 rows with both outcomes, got {len(keep)}")
    raw = np.asarray(vectors, dtype=np.float64)[keep]
    weak = np.array([rows[i].weak_value or 0.0 for i in keep])
    strong = np.array([rows[i].strong_value or 0.0 for i in keep])
    mean = raw.mean(axis=0)
    scale = np.maximum(raw.std(axis=0), 1e-6)
    x = (raw - mean) / scale
    y = strong - weak
    order = np.random.default_rng(seed).permutation(len(x))
    parts = [order[k::folds] for k in range(folds)]
    cv: dict[float, float] = {}
    for strength in strengths:
        values = []
        for k, test in enumerate(parts):
            train = np.concatenate([p for j, p in enumerate(parts) if j != k])
            w, b = _ridge(x[train], y[train], strength)
            values.append(
                apgr((x[test] @ w + b).tolist(), weak[test].tolist(), strong[test].tolist())
            )
        cv[strength] = float(np.nanmean(values))
    best = max(cv, key=lambda s: cv[s])
    w, b = _ridge(x, y, best)
    anchors = _unit(raw)
    similarity = anchors @ anchors.T
    np.fill_diagonal(similarity, -np.inf)  # leave one out: a prompt is not its own neighbour
    nearest = 1.0 - similarity.max(axis=1)
    limit = max(float(np.quantile(nearest, quantile)), 1e-6)
    return EmbeddingRouter(mean, scale, w, b, best, cv, anchors, limit)
