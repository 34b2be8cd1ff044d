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

Two optional inputs (a version-3 judge):

- *Prompt difficulty*: given the shipped prompt router (``prompt_router``), its
  logit becomes the signal :data:`~agentmesh.evaluation.cascade.PROMPT_SIGNAL`
  (in the pairwise products too). Its training values are cross-fitted: each
  training row is scored by a prompt router trained on the other folds, never
  by one that saw the row; inside cross-validation this is nested (the held-out
  fold is scored by a router trained on the other folds, their rows by routers
  trained within them). At inference the given router scores the prompt.
- *Response words* (``config.response_words``): binary presence of the most
  frequent :func:`~agentmesh.evaluation.cascade.response_terms` of the weak
  answers (vocabulary from the training fold only), with their own L2 strength
  (``config.word_strengths``, chosen by cross-validation as well).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agentmesh.evaluation._numeric import rank_auc
from agentmesh.evaluation.cascade import (
    PROMPT_SIGNAL,
    SIGNALS,
    CascadeModel,
    response_terms,
    signal_matrix,
)
from agentmesh.evaluation.data import Row
from agentmesh.evaluation.metrics import apgr as apgr_of
from agentmesh.evaluation.trainer import TrainConfig, train_router
from agentmesh.routing.strategies.adaptive import LearnedModel

__all__ = ["CascadeConfig", "cascade_cv", "fit_cascade", "oof_logits"]

Floats = NDArray[np.float64]
Index = NDArray[np.int64]
Columns = Callable[[Index, Index], tuple[Floats, Floats]]
"""``(train rows, test rows) -> (their extra signal columns)``, computed per fold."""
PromptTrainer = Callable[[Sequence[Row]], LearnedModel]


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
        response_words: Size of the response-word vocabulary (0: no word features).
        min_df: A term enters the vocabulary when at least this many answers have it.
        word_strengths: L2 strengths of the word weights tried (standardised inputs).
    """

    strengths: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    pairs: tuple[bool, ...] = (False, True)
    folds: int = 5
    repeats: int = 3
    seed: int = 0
    strong_share: float = 0.3
    response_words: int = 0
    min_df: int = 5
    word_strengths: tuple[float, ...] = (3.0, 10.0, 30.0)


def _expand(raw: Floats, pairs: bool) -> tuple[Floats, list[tuple[int, int]]]:
    if not pairs:
        return raw, []
    index = list(itertools.combinations(range(raw.shape[1]), 2))
    products = np.stack([raw[:, i] * raw[:, j] for i, j in index], axis=1)
    return np.hstack([raw, products]), index


def _logistic(
    x: Floats, y: Floats, strength: float | Floats, iterations: int = 60
) -> tuple[Floats, float]:
    """Newton's method on mean log-loss + sum(strength/2 * w^2) (bias not penalised).

    ``strength`` is one value, or one per column.
    """
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    w = np.zeros(d + 1)
    penalty = np.diag(np.append(np.broadcast_to(np.asarray(strength, dtype=np.float64), d), 0.0))
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


def _folds(n: int, folds: int, seed: int) -> list[Index]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[k::folds]) for k in range(folds)]


def _vocabulary(terms: Sequence[frozenset[str]], index: Index, size: int, min_df: int) -> list[str]:
    """The ``size`` terms most answers of ``index`` have (at least ``min_df``; ties by name)."""
    df: dict[str, int] = {}
    for i in index:
        for t in terms[int(i)]:
            df[t] = df.get(t, 0) + 1
    ranked = sorted((t for t, c in df.items() if c >= min_df), key=lambda t: (-df[t], t))
    return ranked[:size]


def _presence(terms: Sequence[frozenset[str]], vocabulary: Sequence[str]) -> Floats:
    column = {t: j for j, t in enumerate(vocabulary)}
    out = np.zeros((len(terms), len(vocabulary)))
    for i, have in enumerate(terms):
        for t in have:
            j = column.get(t)
            if j is not None:
                out[i, j] = 1.0
    return out


def oof_logits(
    rows: Sequence[Row], index: Index, train_prompt: PromptTrainer, folds: int, seed: int
) -> Floats:
    """Out-of-fold prompt-router logits of ``rows[index]``.

    Each row is scored by a router that ``train_prompt`` fitted on the other
    folds of ``index`` (``folds`` folds, permutation seed ``seed``).
    """
    out = np.zeros(len(index))
    for test in _folds(len(index), folds, seed):
        train = np.setdiff1d(np.arange(len(index)), test)
        router = train_prompt([rows[int(index[i])] for i in train])
        out[test] = [router.logit(rows[int(index[i])].prompt) for i in test]
    return out


def cascade_cv(
    raw: Floats,
    weak_ok: Sequence[bool],
    strong_ok: Sequence[bool | None],
    config: CascadeConfig,
    *,
    columns: Columns | None = None,
    terms: Sequence[frozenset[str]] | None = None,
) -> list[dict[str, float]]:
    """Mean and spread of the fold metric for every (strength, pairs, words) of ``config``.

    Args:
        raw: One row of :data:`SIGNALS` per answer.
        weak_ok: Whether each weak answer was right.
        strong_ok: Whether the strong model was right (``None``: unknown; then AUC).
        config: The grid and the folds.
        columns: Extra signals computed per fold from its training rows only
            (the cross-fitted prompt difficulty); they enter the products too.
        terms: Each answer's :func:`response_terms` (with ``config.response_words``).
    """
    weak = np.array([bool(w) for w in weak_ok])
    known = all(s is not None for s in strong_ok)
    strong = [bool(s) for s in strong_ok]
    y = (~weak).astype(np.float64)
    n = len(weak)
    fold_sets = []
    for r in range(config.repeats):
        fold_sets += _folds(n, config.folds, config.seed + r)
    trains = [np.setdiff1d(np.arange(n), test) for test in fold_sets]
    extra = [columns(tr, te) if columns else None for tr, te in zip(trains, fold_sets, strict=True)]
    words = terms is not None and config.response_words > 0
    word_blocks = [
        _presence(terms, _vocabulary(terms, tr, config.response_words, config.min_df))
        if terms is not None and words
        else np.zeros((n, 0))
        for tr in trains
    ]
    out: list[dict[str, float]] = []
    for pairs in config.pairs:
        designs = []
        for train, test, cols, block in zip(trains, fold_sets, extra, word_blocks, strict=True):
            base = raw
            if cols is not None:
                base = np.hstack([raw, np.zeros((n, cols[0].shape[1]))])
                base[train, raw.shape[1] :], base[test, raw.shape[1] :] = cols
            x, _ = _expand(base, pairs)
            designs.append((np.hstack([x, block]), x.shape[1]))
        for strength in config.strengths:
            for word_strength in config.word_strengths if words else (0.0,):
                values = []
                for test, train, (x, width) in zip(fold_sets, trains, designs, strict=True):
                    mean, std = _standardise(x[train])
                    penalty = np.where(np.arange(x.shape[1]) < width, strength, word_strength)
                    w, b = _logistic((x[train] - mean) / std, y[train], penalty)
                    score = ((x[test] - mean) / std) @ w + b
                    if known:
                        t = test.tolist()
                        values.append(
                            apgr_of(
                                score.tolist(), [bool(weak[i]) for i in t], [strong[i] for i in t]
                            )
                        )
                    else:
                        values.append(rank_auc(score, ~weak[test]))
                result = {"strength": strength, "pairs": float(pairs)}
                if words:
                    result["word_strength"] = word_strength
                undefined = bool(np.isnan(values).all())
                result["mean"] = 0.5 if undefined else float(np.nanmean(values))
                result["sd"] = 0.0 if undefined else float(np.nanstd(values))
                out.append(result)
    return out


def _prompt_trainer(router: LearnedModel) -> PromptTrainer:
    """Train prompt routers as the given one was (its ``meta.strength``, default settings)."""
    strength = dict(router.meta).get("strength")
    if not isinstance(strength, int | float):
        raise ValueError("the prompt router's meta has no 'strength' to retrain it with")
    # the cross-fitted routers only score prompts: no domain summary to fit
    config = TrainConfig(strengths=(float(strength),), order=router.ngram_order, guard=False)

    def train(rows: Sequence[Row]) -> LearnedModel:
        return train_router(rows, config, cross_validate=False).model

    return train


def fit_cascade(
    rows: Sequence[Row],
    config: CascadeConfig | None = None,
    *,
    strong_share: float | None = None,
    meta: dict[str, Any] | None = None,
    prompt_router: LearnedModel | None = None,
    prompt_router_file: str | None = None,
    train_prompt: PromptTrainer | None = None,
) -> CascadeModel:
    """Fit a :class:`CascadeModel` on rows with the weak model's responses and outcomes.

    Args:
        rows: Training rows (rows without a weak response or outcome are skipped).
        config: Grid and folds (default :class:`CascadeConfig`).
        strong_share: Overrides ``config.strong_share`` (threshold calibration).
        meta: Extra entries for the file's ``meta``.
        prompt_router: A prompt router trained on these rows: its logit becomes the
            signal :data:`PROMPT_SIGNAL` (cross-fitted for training, see the module).
        prompt_router_file: Its path relative to the judge's file (what ``save`` writes).
        train_prompt: How the cross-fitted routers are trained (default: the
            trainer with the given router's ``meta.strength``).

    Raises:
        ValueError: Fewer than 20 usable rows, or a prompt router without a way to retrain it.
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
    columns: Columns | None = None
    if prompt_router is not None:
        fit_prompt = train_prompt or _prompt_trainer(prompt_router)

        def columns(train: Index, test: Index) -> tuple[Floats, Floats]:
            router = fit_prompt([usable[int(i)] for i in train])
            held = np.array([router.logit(usable[int(i)].prompt) for i in test])
            inner = oof_logits(usable, train, fit_prompt, config.folds, config.seed)
            return inner[:, None], held[:, None]

    terms = [response_terms(r.weak_response or "") for r in usable]
    cv = cascade_cv(
        raw,
        weak_ok,
        [r.strong_ok for r in usable],
        config,
        columns=columns,
        terms=terms if config.response_words > 0 else None,
    )
    best = max(cv, key=lambda c: c["mean"])
    names = SIGNALS
    everything = np.arange(len(usable), dtype=np.int64)
    if prompt_router is not None:
        names = (*SIGNALS, PROMPT_SIGNAL)
        logits = oof_logits(usable, everything, fit_prompt, config.folds, config.seed)
        raw = np.hstack([raw, logits[:, None]])
    x, index = _expand(raw, bool(best["pairs"]))
    width = x.shape[1]
    vocabulary: list[str] = []
    if config.response_words > 0:
        vocabulary = _vocabulary(terms, everything, config.response_words, config.min_df)
        x = np.hstack([x, _presence(terms, vocabulary)])
    mean, std = _standardise(x)
    y = np.array([0.0 if ok else 1.0 for ok in weak_ok])
    penalty = np.where(
        np.arange(x.shape[1]) < width, best["strength"], best.get("word_strength", 0.0)
    )
    w, b = _logistic((x - mean) / std, y, penalty)
    weights = w / std
    bias = b - float((weights * mean).sum())
    k = len(names)
    pairs = tuple(
        (names[i], names[j], round(float(v), 6))
        for (i, j), v in zip(index, weights[k:width], strict=True)
        if v != 0
    )
    words = {t: round(float(v), 6) for t, v in zip(vocabulary, weights[width:], strict=True)}
    model = CascadeModel(
        names,
        tuple(round(float(v), 6) for v in weights[:k]),
        round(bias, 6),
        pairs=pairs,
        words={t: v for t, v in words.items() if v != 0},
        prompt_router=prompt_router,
        prompt_router_file=prompt_router_file,
    )
    scores = sorted(model.escalate_score(r.weak_response or "", r.prompt) for r in usable)
    cut = scores[max(0, min(len(scores) - 1, round(len(scores) * (1 - share))))]
    info = {
        "trainer": "agentmesh train-router --cascade",
        "rows": len(usable),
        "strength": best["strength"],
        "pairs": bool(best["pairs"]),
        **({"word_strength": best["word_strength"]} if "word_strength" in best else {}),
        **({"response_words": len(vocabulary)} if vocabulary else {}),
        **({"prompt_signal": "cross-fitted"} if prompt_router is not None else {}),
        "cv_metric": "apgr" if all(r.strong_ok is not None for r in usable) else "auc_weak_wrong",
        "cv_mean": round(best["mean"], 4),
        "cv_sd": round(best["sd"], 4),
        "cv": [{k: round(v, 4) for k, v in c.items()} for c in cv],
        "strong_share": share,
        **(meta or {}),
    }
    if not math.isfinite(cut):
        cut = 0.5
    return CascadeModel(
        model.signals,
        model.weights,
        model.bias,
        cut,
        info,
        model.pairs,
        model.words,
        model.prompt_router,
        model.prompt_router_file,
    )
