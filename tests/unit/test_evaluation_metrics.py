from __future__ import annotations

import random

import pytest

from agentmesh.evaluation.metrics import (
    CurvePoint,
    apgr,
    cpt,
    resample,
    routing_curve,
)

WEAK = [True, False, False, True]
STRONG = [True, True, True, False]
SCORES = [0.1, 0.9, 0.5, 0.3]


def test_tiny_case_matches_the_hand_computation() -> None:
    # order by score: +1, +1, -1, 0 -> accuracy .5, .75, 1.0, .75, .75
    curve = routing_curve(SCORES, WEAK, STRONG)
    assert [(p.strong_share, p.accuracy) for p in curve] == [
        (0.0, 0.5),
        (0.25, 0.75),
        (0.5, 1.0),
        (0.75, 0.75),
        (1.0, 0.75),
    ]
    # AUC = 0.25 * (0.625 + 0.875 + 0.875 + 0.75) = 0.78125; gap 0.25
    assert apgr(SCORES, WEAK, STRONG) == pytest.approx((0.78125 - 0.5) / 0.25)
    assert cpt(SCORES, WEAK, STRONG, 0.5) == pytest.approx(0.125)
    assert cpt(SCORES, WEAK, STRONG, 0.8) == pytest.approx(0.2)
    assert [p.threshold for p in curve] == [None, 0.9, 0.5, 0.3, 0.1]


def _synthetic(n: int, seed: int) -> tuple[list[bool], list[bool]]:
    rng = random.Random(seed)
    weak = [rng.random() < 0.6 for _ in range(n)]
    strong = [w or rng.random() < 0.6 for w in weak]
    return weak, strong


def test_constant_scores_are_the_diagonal_exactly() -> None:
    weak, strong = _synthetic(500, 1)
    assert apgr([0.0] * 500, weak, strong) == pytest.approx(0.5)
    assert cpt([0.0] * 500, weak, strong, 0.5) == pytest.approx(0.5)
    assert cpt([0.0] * 500, weak, strong, 0.8) == pytest.approx(0.8)


def test_random_scores_average_one_half() -> None:
    weak, strong = _synthetic(400, 2)
    values = []
    for seed in range(40):
        rng = random.Random(seed)
        values.append(apgr([rng.random() for _ in weak], weak, strong))
    mean = sum(values) / len(values)
    assert mean == pytest.approx(0.5, abs=0.03)
    assert min(values) < 0.5 < max(values)


def test_oracle_figures_are_exact() -> None:
    weak, strong = _synthetic(1000, 3)
    gains = [float(s) - float(w) for w, s in zip(weak, strong, strict=True)]
    n = len(gains)
    wins = gains.count(1.0)
    weak_acc = sum(weak) / n
    strong_acc = sum(strong) / n
    # the oracle climbs one correct answer per strong call, then stays flat
    assert cpt(gains, weak, strong, 0.5) == pytest.approx(0.5 * wins / n)
    assert cpt(gains, weak, strong, 0.8) == pytest.approx(0.8 * wins / n)
    top = wins / n
    auc = top * (weak_acc + strong_acc) / 2 + (1 - top) * strong_acc
    assert apgr(gains, weak, strong) == pytest.approx((auc - weak_acc) / (strong_acc - weak_acc))
    rng = random.Random(0)
    assert apgr(gains, weak, strong) > apgr([rng.random() for _ in gains], weak, strong)


def test_costs_follow_the_calls_made() -> None:
    weak_cost = [1.0, 1.0, 1.0, 1.0]
    strong_cost = [10.0, 20.0, 30.0, 40.0]
    routed = routing_curve(SCORES, WEAK, STRONG, weak_cost=weak_cost, strong_cost=strong_cost)
    assert [p.cost_usd for p in routed] == [4.0, 23.0, 52.0, 91.0, 100.0]
    cascade = routing_curve(
        SCORES, WEAK, STRONG, weak_cost=weak_cost, strong_cost=strong_cost, weak_always=True
    )
    assert [p.cost_usd for p in cascade] == [4.0, 24.0, 54.0, 94.0, 104.0]
    assert routing_curve(SCORES, WEAK, STRONG)[1].cost_usd is None


def test_ties_are_one_point_and_resampling_interpolates() -> None:
    curve = routing_curve([1.0, 1.0, 0.0, 0.0], WEAK, STRONG)
    assert [p.strong_share for p in curve] == [0.0, 0.5, 1.0]
    half = resample(curve, [0.25])[0]
    assert half.accuracy == pytest.approx((curve[0].accuracy + curve[1].accuracy) / 2)
    assert resample([CurvePoint(0.0, 0.5), CurvePoint(1.0, 0.7)], [1.0])[0].accuracy == 0.7


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="no queries"):
        routing_curve([], [], [])
    with pytest.raises(ValueError, match="labels"):
        routing_curve([0.1], [True, False], [True])
