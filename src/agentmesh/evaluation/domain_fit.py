"""Fit a learned router's training-domain summary (numpy: the ``eval`` extra).

:func:`fit_domain` turns training rows into the
:class:`~agentmesh.routing.domain.DomainGuard` a router file keeps: the
vocabulary of n-grams at least ``min_df`` prompts share, the features' mean and
spread, and the two limits, each a quantile of the training prompts' own values.
The novelty limit is cross-fitted: each fold's prompts are measured against the
vocabulary of the other folds, as a new prompt would be (measured against a
vocabulary that includes it, every prompt would look familiar). With a
``subject_quantile`` and rows naming at least two subjects (the ``domain``
column), :func:`fit_subjects` adds the subjects' naive Bayes profile, its limit
cross-fitted the same way. It is off by default: measured on MMLU's subject
groups it did not pay (``models/routers/README.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agentmesh.evaluation.data import Row
from agentmesh.routing.domain import DomainGuard, SubjectProfile, vocabulary_bits
from agentmesh.routing.features import FEATURES, extract, terms

__all__ = ["fit_domain", "fit_subjects", "prior_win_rate"]

_FLOOR = 0.05
_MIN_LIMIT = 1e-3


def _vocabulary(grams: Sequence[set[str]], min_df: int) -> list[str]:
    df: dict[str, int] = {}
    for found in grams:
        for g in found:
            df[g] = df.get(g, 0) + 1
    return sorted(g for g, c in df.items() if c >= min_df)


def fit_subjects(
    grams: Sequence[set[str]], subjects: Sequence[str], min_df: int = 2, smoothing: float = 0.1
) -> SubjectProfile:
    """A naive Bayes profile of ``subjects`` over the prompts' n-grams (``min_df`` prompts share).

    Raises:
        ValueError: Fewer than two distinct subjects.
    """
    names = sorted(set(subjects))
    if len(names) < 2:
        raise ValueError(f"need at least two subjects, got {len(names)}")
    index = {s: i for i, s in enumerate(names)}
    shared = set(_vocabulary(grams, min_df))
    counts: dict[str, dict[int, int]] = {}
    totals = [0] * len(names)
    prompts = [0] * len(names)
    for found, subject in zip(grams, subjects, strict=True):
        i = index[subject]
        prompts[i] += 1
        for g in found & shared:
            per = counts.setdefault(g, {})
            per[i] = per.get(i, 0) + 1
            totals[i] += 1
    width = smoothing * len(shared)
    return SubjectProfile(
        subjects=tuple(names),
        log_prior=tuple(math.log(n / len(subjects)) for n in prompts),
        log_denominator=tuple(math.log(t + width) for t in totals),
        counts={g: tuple(sorted(per.items())) for g, per in counts.items()},
        smoothing=smoothing,
    )


def prior_win_rate(rows: Sequence[Row]) -> float:
    """Share of rows where the strong model beat the weak one, ties counted half (0.5: none)."""
    pairs = [
        (r.strong_value, r.weak_value)
        for r in rows
        if r.strong_value is not None and r.weak_value is not None
    ]
    if not pairs:
        return 0.5
    return sum(1.0 if s > w else 0.5 if s == w else 0.0 for s, w in pairs) / len(pairs)


def fit_domain(
    rows: Sequence[Row],
    *,
    features: tuple[str, ...] = tuple(FEATURES),
    order: int = 2,
    min_df: int = 2,
    quantile: float = 0.99,
    fallback: str = "strong",
    folds: int = 5,
    seed: int = 0,
    subject_quantile: float | None = None,
) -> DomainGuard:
    """The domain summary of ``rows``' prompts (see the module docstring).

    ``subject_quantile`` (e.g. 0.95) adds the subject profile when the rows name
    two subjects or more; ``None`` (the default) leaves it out.

    Raises:
        ValueError: Fewer than ``2 * folds`` rows, a quantile outside (0, 1], or
            an unknown fallback.
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"the guard quantile must be in (0, 1], got {quantile}")
    if subject_quantile is not None and not 0 < subject_quantile < 1:
        raise ValueError(f"the subject quantile must be in (0, 1), got {subject_quantile}")
    prompts = [r.prompt for r in rows]
    if len(prompts) < 2 * folds:
        raise ValueError(f"need at least {2 * folds} prompts to fit a domain, got {len(prompts)}")
    grams = [terms(p, order) for p in prompts]
    vocabulary = vocabulary_bits(_vocabulary(grams, min_df))
    raw = np.array([[extract(p, features)[f] for f in features] for p in prompts])
    raw = raw.reshape(len(prompts), len(features))
    mean = raw.mean(axis=0)
    std = np.maximum(raw.std(axis=0), _FLOOR)
    distances = (
        np.sqrt((((raw - mean) / std) ** 2).mean(axis=1)) if features else np.zeros(len(prompts))
    )
    feature_limit = max(float(np.quantile(distances, quantile)), _MIN_LIMIT)
    order_of = np.random.default_rng(seed).permutation(len(prompts))
    labels = [r.domain or "" for r in rows]
    subjects = subject_quantile is not None and all(labels) and len(set(labels)) >= 2
    novelty = np.zeros(len(prompts))
    confidence = np.ones(len(prompts))
    for k in range(folds):
        held = set(order_of[k::folds].tolist())
        rest = [g for i, g in enumerate(grams) if i not in held]
        if subjects:
            rest_labels = [s for i, s in enumerate(labels) if i not in held]
            fold_profile = fit_subjects(rest, rest_labels, min_df)
            for i in held:
                confidence[i] = fold_profile.confidence(grams[i])
        probe = DomainGuard(
            features=(),
            mean=(),
            std=(),
            feature_limit=1.0,
            vocabulary=bytes(vocabulary_bits(_vocabulary(rest, min_df))),
            novelty_limit=1.0,
            order=order,
        )
        for i in held:
            novelty[i] = probe.novelty(grams[i])
    novelty_limit = max(float(np.quantile(novelty, quantile)), _MIN_LIMIT)
    profile = fit_subjects(grams, labels, min_df) if subjects else None
    subject_limit = (
        float(np.quantile(confidence, 1 - subject_quantile))
        if subjects and subject_quantile is not None
        else 0.0
    )
    ratios = np.maximum(novelty / novelty_limit, distances / feature_limit)
    if profile is not None:
        ratios = np.maximum(ratios, subject_limit / confidence)
    typical = float(np.median(ratios))
    return DomainGuard(
        features=features,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        feature_limit=feature_limit,
        vocabulary=bytes(vocabulary),
        novelty_limit=novelty_limit,
        order=order,
        quantile=quantile,
        fallback=fallback,
        prior=prior_win_rate(rows),
        rows=len(prompts),
        typical=typical,
        subjects=profile,
        subject_limit=subject_limit,
        subject_quantile=0.95 if subject_quantile is None else subject_quantile,
    )
