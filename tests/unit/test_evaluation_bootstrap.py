from __future__ import annotations

import random

import pytest

from agentmesh.evaluation.metrics import apgr

from .test_evaluation_metrics import SCORES, STRONG, WEAK, _synthetic

np = pytest.importorskip("numpy", reason="bootstrap intervals need numpy (the eval extra)")

from agentmesh.evaluation.bootstrap import bootstrap_apgr, draw_counts, interval  # noqa: E402


def test_bootstrap_with_every_row_once_is_the_exact_apgr() -> None:
    weak, strong = _synthetic(300, 3)
    rng = random.Random(3)
    # rounded scores: many ties, which the vectorised curve must group like the exact one
    scores = [round(rng.random(), 1) for _ in weak]
    once = np.ones((1, 300), dtype=np.int64)
    assert bootstrap_apgr(scores, weak, strong, once)[0] == pytest.approx(
        apgr(scores, weak, strong), abs=1e-12
    )
    assert bootstrap_apgr(SCORES, WEAK, STRONG, np.ones((1, 4), dtype=np.int64))[0] == (
        pytest.approx(apgr(SCORES, WEAK, STRONG))
    )


def test_a_draw_counts_each_row_as_often_as_it_was_drawn() -> None:
    weak, strong = _synthetic(60, 4)
    rng = random.Random(4)
    scores = [round(rng.random(), 1) for _ in weak]
    counts = draw_counts(60, 5, seed=9)
    assert counts.shape == (5, 60)
    assert (counts.sum(axis=1) == 60).all()
    assert (draw_counts(60, 5, seed=9) == counts).all()
    assert not (draw_counts(60, 5, seed=10) == counts).all()
    values = bootstrap_apgr(scores, weak, strong, counts)
    for draw, value in zip(counts, values, strict=True):
        rows = [i for i, c in enumerate(draw) for _ in range(int(c))]
        expected = apgr(
            [scores[i] for i in rows], [weak[i] for i in rows], [strong[i] for i in rows]
        )
        assert value == pytest.approx(expected, abs=1e-12)


def test_paired_intervals_separate_a_real_lead_and_not_a_tie() -> None:
    weak, strong = _synthetic(400, 5)
    rng = random.Random(5)
    gain = [float(s) - float(w) for w, s in zip(weak, strong, strict=True)]
    good = [g + rng.gauss(0, 0.7) for g in gain]  # informative, noisy
    noise = [rng.random() for _ in weak]
    counts = draw_counts(400, 500, seed=0)
    good_draws = bootstrap_apgr(good, weak, strong, counts)
    noise_draws = bootstrap_apgr(noise, weak, strong, counts)
    low, high = interval(good_draws)
    assert low < apgr(good, weak, strong) < high
    assert interval(good_draws - noise_draws)[0] > 0
    # a router against itself with a different but equally uninformative order: no lead
    other = [rng.random() for _ in weak]
    low, high = interval(noise_draws - bootstrap_apgr(other, weak, strong, counts))
    assert low < 0 < high


def test_bootstrap_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError, match="0 rows"):
        draw_counts(0, 10, seed=0)
    with pytest.raises(ValueError, match="3 scores"):
        bootstrap_apgr([0.1, 0.2, 0.3], WEAK, STRONG, draw_counts(4, 2, seed=0))
    with pytest.raises(ValueError, match="no draw"):
        interval(np.array([float("nan")]))
    with pytest.raises(ValueError, match="level"):
        interval(np.array([0.5]), level=1.5)
