"""Train a learned router from per-query correctness rows.

Needs numpy (the ``eval`` extra); the files it writes are read without it.
The cascade judge's trainer lives in :mod:`agentmesh.evaluation.cascade_fit`
(which uses this one to cross-fit its prompt router).

The prompt router is a :class:`~agentmesh.routing.LearnedModel` of version 2:
one linear function of the prompt's word n-grams (binary, scaled by
``1/sqrt(n-grams)``) and the named prompt features, through a sigmoid. It is
trained in three steps, every choice made by cross-validation inside the
training rows only:

1. *Heads*: L2-regularised logistic regressions on the same inputs predict
   "the strong model is right" and "the weak model is right"; their difference
   is the expected gain of calling the strong model (RouteLLM's target). Rows
   whose strong outcome is unknown (traffic where only the weak model answered)
   fall back to "the weak model is wrong". When the rows carry a ``domain``
   (subject), a ridge head learns, from the text, the domain's shrunk average
   gain, and is blended in: subject priors are strong on MMLU, but the router
   only sees the prompt.
2. *Selection*: the regularisation strength and the blend weight with the best
   mean APGR over the folds (or AUC of "weak is wrong" when strong outcomes are
   missing).
3. *Distillation*: one ridge regression from the inputs to the chosen blend,
   fitted on all training rows, so that routing evaluates a single weighted sum
   (tens of microseconds, no numpy); the n-gram table is pruned to the largest
   weights.

The threshold is calibrated to a target share of strong calls: the score
quantile of the training prompts (:func:`calibrate`). The file also records
the training domain (:func:`~agentmesh.evaluation.domain_fit.fit_domain`), what
the out-of-domain guard of the ``learned`` strategy reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agentmesh.evaluation._numeric import rank_auc
from agentmesh.evaluation.data import Row
from agentmesh.evaluation.domain_fit import fit_domain
from agentmesh.evaluation.metrics import apgr as apgr_of
from agentmesh.routing.features import FEATURES, extract, terms
from agentmesh.routing.strategies.adaptive import LearnedModel

__all__ = ["TrainConfig", "TrainResult", "calibrate", "train_router"]

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Trainer options (defaults are what the shipped routers used).

    Attributes:
        order: Longest word n-gram.
        min_df: An n-gram is used when at least this many training prompts have it.
        max_ngrams: Largest n-gram table written to the file (largest weights kept).
        features: Named prompt features added to the n-grams.
        folds: Cross-validation folds inside the training rows.
        seed: Fold assignment seed.
        strengths: L2 strengths (per row, on the mean loss) tried for the heads.
        blends: Weights of the domain-prior head tried (only with a domain column).
        strong_share: Target share of strong calls for the threshold.
        iterations: Gradient steps per fit.
        guard: Record the training domain in the file (the out-of-domain guard).
        guard_quantile: Share of training prompts inside each domain limit.
        fallback: Safe strategy out of domain (``strong`` or ``prior``).
        guard_subject_quantile: Also guard by subject familiarity
            (:class:`~agentmesh.routing.domain.SubjectProfile`), this share of
            training prompts inside its limit; ``None``: off (it did not pay on
            MMLU's subject groups).
    """

    order: int = 2
    min_df: int = 2
    max_ngrams: int = 20000
    features: tuple[str, ...] = tuple(FEATURES)
    folds: int = 5
    seed: int = 0
    strengths: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    blends: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7)
    strong_share: float = 0.5
    iterations: int = 800
    guard: bool = True
    guard_quantile: float = 0.99
    fallback: str = "strong"
    guard_subject_quantile: float | None = None


@dataclass(frozen=True, slots=True)
class TrainResult:
    """The trained model and how it was chosen."""

    model: LearnedModel
    strength: float
    blend: float
    cv: list[dict[str, float]] = field(default_factory=list)
    target: str = "gain"
    distill_corr: float = 1.0


class _Design:
    """Sparse n-gram block (CSR as numpy arrays) plus a standardised dense block."""

    def __init__(
        self,
        prompts: Sequence[str],
        vocab: dict[str, int],
        config: TrainConfig,
        mean: Floats,
        std: Floats,
    ) -> None:
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, prompt in enumerate(prompts):
            grams = terms(prompt, config.order)
            scale = 1.0 / math.sqrt(len(grams)) if grams else 0.0
            for g in grams:
                j = vocab.get(g)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
                    vals.append(scale)
        self.n = len(prompts)
        self.vocab_size = len(vocab)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cols = np.asarray(cols, dtype=np.int64)
        self.vals = np.asarray(vals, dtype=np.float64)
        raw = _dense(prompts, config.features)
        self.dense_scale = 1.0 / math.sqrt(max(1, raw.shape[1]))
        self.dense = (raw - mean) / std * self.dense_scale
        self.width = self.vocab_size + self.dense.shape[1]

    def dot(self, w: Floats) -> Floats:
        sparse = np.bincount(
            self.rows, weights=self.vals * w[: self.vocab_size][self.cols], minlength=self.n
        )
        return sparse + self.dense @ w[self.vocab_size :]

    def tdot(self, r: Floats) -> Floats:
        sparse = np.bincount(self.cols, weights=self.vals * r[self.rows], minlength=self.vocab_size)
        return np.concatenate([sparse, self.dense.T @ r])

    def row_norm_max(self) -> float:
        sq = np.bincount(self.rows, weights=self.vals**2, minlength=self.n)
        sq = sq + (self.dense**2).sum(axis=1)
        return float(sq.max()) if self.n else 1.0

    def take(self, index: NDArray[np.int64]) -> _Design:
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[index] = np.arange(len(index))
        keep = pos[self.rows] >= 0
        out = object.__new__(_Design)
        out.n = len(index)
        out.vocab_size = self.vocab_size
        out.rows = pos[self.rows[keep]]
        out.cols = self.cols[keep]
        out.vals = self.vals[keep]
        out.dense_scale = self.dense_scale
        out.dense = self.dense[index]
        out.width = self.width
        return out


def _dense(prompts: Sequence[str], names: tuple[str, ...]) -> Floats:
    if not names:
        return np.zeros((len(prompts), 0))
    return np.array([[extract(p, names)[n] for n in names] for p in prompts], dtype=np.float64)


def _fit(
    x: _Design,
    y: Floats,
    strength: float,
    *,
    loss: str,
    iterations: int,
    weights: Floats | None = None,
) -> tuple[Floats, float]:
    """Nesterov-accelerated gradient descent on mean loss + strength/2 * |w|^2 (bias free)."""
    sample = np.ones(x.n) if weights is None else weights
    total = float(sample.sum()) or 1.0
    curvature = (0.25 if loss == "logistic" else 1.0) * (x.row_norm_max() + 1.0)
    step = 1.0 / (curvature + strength)
    w = np.zeros(x.width)
    b = float(np.average(y, weights=sample)) if loss == "squared" else 0.0
    if loss == "logistic":
        p = min(max(float(np.average(y, weights=sample)), 1e-4), 1 - 1e-4)
        b = math.log(p / (1 - p))
    vw, vb = w.copy(), b
    for k in range(iterations):
        z = x.dot(vw) + vb
        pred = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))) if loss == "logistic" else z
        r = (pred - y) * sample / total
        gw = x.tdot(r) + strength * vw
        gb = float(r.sum())
        w_next = vw - step * gw
        b_next = vb - step * gb
        momentum = k / (k + 3.0)
        vw = w_next + momentum * (w_next - w)
        vb = b_next + momentum * (b_next - b)
        w, b = w_next, b_next
    return w, b


def _sigmoid(z: Floats) -> Floats:
    out: Floats = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
    return out


def _zscore(v: Floats) -> Floats:
    sd = float(v.std())
    out: Floats = (v - v.mean()) / sd if sd > 0 else v - v.mean()
    return out


def _folds(rows: Sequence[Row], k: int, seed: int) -> list[NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.domain or "", []).append(i)
    buckets: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for key in sorted(groups):
        members = np.array(groups[key])
        rng.shuffle(members)
        for j, i in enumerate(members):
            buckets[(j + offset) % k].append(int(i))
        offset += len(members)
    return [np.array(sorted(b), dtype=np.int64) for b in buckets]


def _domain_prior(rows: Sequence[Row], index: NDArray[np.int64], shrink: float = 10.0) -> Floats:
    gains: dict[str, list[float]] = {}
    for i in index:
        row = rows[int(i)]
        if row.strong_value is not None and row.weak_value is not None:
            gains.setdefault(row.domain or "", []).append(row.strong_value - row.weak_value)
    everything = [g for v in gains.values() for g in v]
    mu = sum(everything) / len(everything) if everything else 0.0
    table = {d: (sum(v) + shrink * mu) / (len(v) + shrink) for d, v in gains.items()}
    return np.array([table.get(rows[int(i)].domain or "", mu) for i in index])


class _Teacher:
    """The heads of step 1, fitted on some rows, scoring others."""

    def __init__(self, rows: Sequence[Row], x: _Design, config: TrainConfig) -> None:
        self.rows = rows
        self.x = x
        self.config = config
        # qualities in [0, 1]: graded rows give soft targets to the logistic heads
        self.weak = np.array([r.weak_value or 0.0 for r in rows])
        self.strong = np.array([r.strong_value or 0.0 for r in rows])
        self.has_weak = np.array([r.weak_value is not None for r in rows])
        self.has_strong = np.array([r.strong_value is not None for r in rows])
        self.has_domain = any(r.domain for r in rows) and bool(self.has_strong.all())
        self.gain_target = bool(self.has_strong[self.has_weak].mean() > 0.5)

    def fit_predict(
        self, train: NDArray[np.int64], test: NDArray[np.int64], strength: float
    ) -> dict[str, Floats]:
        xt, xv = self.x.take(train), self.x.take(test)
        iters = self.config.iterations
        out: dict[str, Floats] = {}
        mask_w = self.has_weak[train].astype(np.float64)
        ww, bw = _fit(
            xt, self.weak[train], strength, loss="logistic", iterations=iters, weights=mask_w
        )
        pw = _sigmoid(xv.dot(ww) + bw)
        if self.gain_target:
            mask_s = self.has_strong[train].astype(np.float64)
            ws, bs = _fit(
                xt, self.strong[train], strength, loss="logistic", iterations=iters, weights=mask_s
            )
            out["gain"] = _sigmoid(xv.dot(ws) + bs) - pw
        else:
            out["gain"] = 1.0 - pw
        if self.has_domain:
            prior = _domain_prior(self.rows, train)
            wp, bp = _fit(xt, prior, strength * 0.3, loss="squared", iterations=iters)
            out["prior"] = xv.dot(wp) + bp
        return out


def _blend(heads: dict[str, Floats], blend: float) -> Floats:
    gain = _zscore(heads["gain"])
    if "prior" not in heads or blend == 0:
        return gain
    out: Floats = blend * _zscore(heads["prior"]) + (1 - blend) * gain
    return out


def train_router(
    rows: Sequence[Row],
    config: TrainConfig | None = None,
    *,
    meta: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    cross_validate: bool = True,
) -> TrainResult:
    """Train a version-2 :class:`LearnedModel` on ``rows`` (see the module docstring).

    ``cross_validate=False`` skips step 2 when the grid has one setting (one
    strength, and one blend or no domain): what the cascade trainer's
    cross-fitted prompt routers use. The result's ``cv`` is then empty.

    Raises:
        ValueError: Fewer than 20 rows with the weak model's outcome, or
            ``cross_validate=False`` with more than one setting to choose from.
    """
    config = config or TrainConfig()
    rows = [r for r in rows if r.weak_value is not None]
    if len(rows) < 20:
        raise ValueError(f"need at least 20 rows with the weak model's outcome, got {len(rows)}")
    say = progress or (lambda _: None)
    prompts = [r.prompt for r in rows]
    df: dict[str, int] = {}
    for p in prompts:
        for g in terms(p, config.order):
            df[g] = df.get(g, 0) + 1
    vocab_list = sorted(g for g, c in df.items() if c >= config.min_df)
    vocab = {g: i for i, g in enumerate(vocab_list)}
    raw = _dense(prompts, config.features)
    mean = raw.mean(axis=0) if raw.size else np.zeros(0)
    std = raw.std(axis=0) if raw.size else np.zeros(0)
    std = np.maximum(std, 0.05)  # features are ~[0, 1]: no blow-up on near-constant ones
    x = _Design(prompts, vocab, config, mean, std)
    teacher = _Teacher(rows, x, config)
    say(
        f"{len(rows)} rows, {len(vocab)} n-grams, "
        f"target {'gain' if teacher.gain_target else 'weak wrong'}"
    )
    folds = _folds(rows, config.folds, config.seed)
    blends = config.blends if teacher.has_domain else (0.0,)
    cv: list[dict[str, float]] = []
    if not cross_validate and (len(config.strengths) != 1 or len(blends) != 1):
        raise ValueError("without cross-validation, give one strength (and one blend)")
    for strength in config.strengths if cross_validate else ():
        per_blend: dict[float, list[float]] = {b: [] for b in blends}
        for k, test in enumerate(folds):
            train = np.concatenate([f for j, f in enumerate(folds) if j != k])
            heads = teacher.fit_predict(train, test, strength)
            for blend in blends:
                score = _blend(heads, blend)
                if teacher.gain_target:
                    value = apgr_of(
                        score.tolist(),
                        [rows[int(i)].weak_value or 0.0 for i in test],
                        [rows[int(i)].strong_value or 0.0 for i in test],
                    )
                else:
                    value = rank_auc(score, 1.0 - teacher.weak[test])
                per_blend[blend].append(value)
        for blend, values in per_blend.items():
            cv.append(
                {
                    "strength": strength,
                    "blend": blend,
                    "mean": float(np.mean(values)),
                    "sd": float(np.std(values)),
                }
            )
            say(f"strength {strength:g} blend {blend:g}: {np.mean(values):.3f}")
    fixed = {"strength": config.strengths[0], "blend": blends[0], "mean": math.nan, "sd": math.nan}
    best = max(cv, key=lambda c: c["mean"]) if cv else fixed
    everything = np.arange(len(rows), dtype=np.int64)
    target = _blend(teacher.fit_predict(everything, everything, best["strength"]), best["blend"])
    w, b = _fit(x, target, 1e-5, loss="squared", iterations=config.iterations * 2)
    corr = float(np.corrcoef(x.dot(w) + b, target)[0, 1])
    ngram_w = w[: len(vocab)]
    keep = np.argsort(-np.abs(ngram_w))[: config.max_ngrams]
    ngrams = {vocab_list[int(j)]: round(float(ngram_w[j]), 5) for j in keep if ngram_w[j] != 0}
    dense_w = w[len(vocab) :] * x.dense_scale / std
    bias = b - float((dense_w * mean).sum())
    model = LearnedModel(
        features=config.features,
        weights=tuple(round(float(v), 6) for v in dense_w),
        bias=round(bias, 6),
        ngrams=ngrams,
        ngram_order=config.order,
    )
    threshold = calibrate(model, prompts, config.strong_share)
    info: dict[str, Any] = {
        "trainer": "agentmesh train-router",
        "rows": len(rows),
        "target": "gain" if teacher.gain_target else "weak_wrong",
        "strength": best["strength"],
        "blend": best["blend"],
        "cv_metric": "apgr" if teacher.gain_target else "auc_weak_wrong",
        "cv_mean": round(best["mean"], 4) if cv else None,
        "cv_sd": round(best["sd"], 4) if cv else None,
        "distill_corr": round(corr, 4),
        "strong_share": config.strong_share,
        "calibration": calibration_table(model, prompts),
        **(meta or {}),
    }
    domain = None
    if config.guard:
        domain = fit_domain(
            rows,
            features=config.features,
            order=config.order,
            min_df=config.min_df,
            quantile=config.guard_quantile,
            fallback=config.fallback,
            seed=config.seed,
            subject_quantile=config.guard_subject_quantile,
        )
    model = LearnedModel(
        features=model.features,
        weights=model.weights,
        bias=model.bias,
        threshold=threshold,
        meta=tuple(info.items()),
        ngrams=model.ngrams,
        ngram_order=model.ngram_order,
        domain=domain,
    )
    return TrainResult(
        model, best["strength"], best["blend"], cv, info["target"], distill_corr=corr
    )


def calibrate(model: LearnedModel, prompts: Sequence[str], strong_share: float) -> float:
    """The threshold that sends ``strong_share`` of ``prompts`` to the strong model.

    Raises:
        ValueError: ``strong_share`` outside [0, 1] or no prompts.
    """
    if not 0 <= strong_share <= 1:
        raise ValueError(f"strong share must be in [0, 1], got {strong_share}")
    if not prompts:
        raise ValueError("no prompts to calibrate on")
    scores = np.sort(np.array([model.score(p) for p in prompts]))
    if strong_share <= 0:
        return min(1.0, float(scores[-1]) + 1e-9)
    index = max(0, min(len(scores) - 1, round(len(scores) * (1 - strong_share))))
    return float(scores[index])


def calibration_table(model: LearnedModel, prompts: Sequence[str]) -> dict[str, float]:
    """Thresholds for strong-call shares 10%, 20%, ... 90% of ``prompts``."""
    return {
        f"{share / 10:.1f}": round(calibrate(model, prompts, share / 10), 6)
        for share in range(1, 10)
    }
