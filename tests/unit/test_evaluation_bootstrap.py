from __future__ import annotations

import random

import pytest

from agentmesh.evaluation.metrics import apgr

from .test_evaluation_metrics import SCORES, STRONG, WEAK, _synthetic

np = pytest.importorskip("numpy", reason="bootstrap intervals need numpy (the eval extra)")

from agentmesh.evaluation import bootstrap  # noqa: E402
from agentmesh.evaluation.bootstrap import (  # noqa: E402
    apgr_of_draws,
    bootstrap_apgr,
    draws,
    interval,
)


def test_every_row_once_is_the_exact_apgr() -> None:
    weak, strong = _synthetic(300, 3)
    rng = random.Random(3)
    # rounded scores: many ties, which the vectorised curve must group like the exact one
    scores = [round(rng.random(), 1) for _ in weak]
    once = np.ones((1, 300), dtype=np.int64)
    assert apgr_of_draws(scores, weak, strong, once)[0] == pytest.approx(
        apgr(scores, weak, strong), abs=1e-12
    )
    assert apgr_of_draws(SCORES, WEAK, STRONG, np.ones((1, 4), dtype=np.int64))[0] == (
        pytest.approx(apgr(SCORES, WEAK, STRONG))
    )


def test_a_draw_counts_each_row_as_often_as_it_was_drawn() -> None:
    weak, strong = _synthetic(60, 4)
    rng = random.Random(4)
    scores = [round(rng.random(), 1) for _ in weak]
    (counts,) = draws(60, 5, seed=9)
    assert counts.shape == (5, 60)
    assert (counts.sum(axis=1) == 60).all()
    assert (next(draws(60, 5, seed=9)) == counts).all()
    assert not (next(draws(60, 5, seed=10)) == counts).all()
    values = bootstrap_apgr(scores, weak, strong, 5, seed=9)
    for draw, value in zip(counts, values, strict=True):
        rows = [i for i, c in enumerate(draw) for _ in range(int(c))]
        expected = apgr(
            [scores[i] for i in rows], [weak[i] for i in rows], [strong[i] for i in rows]
        )
        assert value == pytest.approx(expected, abs=1e-12)


def test_draws_come_in_chunks_that_bound_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "_CELLS", 1000)
    chunks = list(draws(300, 10, seed=1))
    assert [c.shape for c in chunks] == [(3, 300), (3, 300), (3, 300), (1, 300)]
    assert all((c.sum(axis=1) == 300).all() for c in chunks)
    weak, strong = _synthetic(300, 6)
    values = bootstrap_apgr([random.Random(i).random() for i in range(300)], weak, strong, 10, 1)
    assert values.shape == (10,)
    assert len(set(values.round(12))) == 10  # ten different draws, not one chunk repeated


def test_paired_intervals_separate_a_real_lead_and_not_a_tie() -> None:
    weak, strong = _synthetic(400, 5)
    rng = random.Random(5)
    gain = [float(s) - float(w) for w, s in zip(weak, strong, strict=True)]
    good = [g + rng.gauss(0, 0.7) for g in gain]  # informative, noisy
    noise = [rng.random() for _ in weak]
    good_draws = bootstrap_apgr(good, weak, strong, 500, seed=0)
    noise_draws = bootstrap_apgr(noise, weak, strong, 500, seed=0)
    low, high = interval(good_draws)
    assert low < apgr(good, weak, strong) < high
    assert interval(good_draws - noise_draws)[0] > 0
    # against another equally uninformative order on the same draws: no lead
    other = [rng.random() for _ in weak]
    low, high = interval(noise_draws - bootstrap_apgr(other, weak, strong, 500, seed=0))
    assert low < 0 < high


def test_bootstrap_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError, match="0 rows"):
        next(draws(0, 10, seed=0))
    with pytest.raises(ValueError, match="3 scores"):
        bootstrap_apgr([0.1, 0.2, 0.3], WEAK, STRONG, 2, seed=0)
    with pytest.raises(ValueError, match="for 4 scores"):
        apgr_of_draws(SCORES, WEAK, STRONG, np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="no draw"):
        interval(np.array([float("nan")]))
    with pytest.raises(ValueError, match="level"):
        interval(np.array([0.5]), level=1.5)
