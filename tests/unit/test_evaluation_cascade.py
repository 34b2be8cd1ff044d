"""Cascade validators (agentmesh.evaluation.answers / cascade) and the judge's trainer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agentmesh.evaluation.answers import (
    annotation_mismatches,
    close,
    last_number,
    quantities,
)
from agentmesh.evaluation.cascade import SIGNALS, VALIDATORS, CascadeModel, signals
from agentmesh.evaluation.data import Row

PROMPT = "Lewis' street is 490 meters long and repaving costs $194 per meter. What does it cost?"


def test_a_wrong_product_scores_lower_than_the_same_answer_fixed() -> None:
    wrong = "It costs 490 x $194 = $<<490*194=94660>>94,660.\n#### 94660"
    fixed = "It costs 490 x $194 = $<<490*194=95060>>95,060.\n#### 95060"
    check = VALIDATORS["arithmetic"]
    assert check(wrong, PROMPT) == 0.0
    assert check(fixed, PROMPT) == 1.0
    judge = CascadeModel.default()
    assert judge.escalate_score(wrong, PROMPT) > judge.escalate_score(fixed, PROMPT)


def test_rounding_is_not_a_slip_but_a_few_percent_is() -> None:
    assert close(2 / 3, 0.67)
    assert close(7.5, 8)
    assert close(10 / 3, 3.333)
    assert not close(490 * 194, 94660)
    assert not close(38 * 216, 8128)


def test_an_annotation_must_agree_with_the_number_written_after_it() -> None:
    assert annotation_mismatches("<<(2000-1800)/2000=0.1>>100") == 1
    assert annotation_mismatches("<<9*2=18>>18 and <<1/4=0.25>>0.25") == 0
    bad = "So (2000 - 1800) / 2000 = $<<(2000-1800)/2000=0.1>>100 off.\n#### 10"
    good = "So (2000 - 1800) / 2000 = <<(2000-1800)/2000=0.1>>0.1 off.\n#### 10"
    assert VALIDATORS["arithmetic"](bad, "") < VALIDATORS["arithmetic"](good, "")


def test_a_fractional_answer_to_a_count_is_suspicious() -> None:
    check = VALIDATORS["integer_answer"]
    assert check("3.5 + 7.5 + 8.5 = 19.5 and 40 - 19.5 = 20.5\n#### 20.5", "") == 0.0
    assert check("3.5 + 15 + 8.5 = 27 and 40 - 27 = 13\n#### 13", "") == 1.0
    # no stated answer: the last number of the response is read
    assert last_number("So there are 30 players on the defense.") == 30
    assert check("So there are 30 players on the defense.", "") == 1.0
    assert check("I cannot tell.", "") == 0.0


def test_quantities_include_number_words_and_unused_ones_lower_the_score() -> None:
    prompt = "Mary got 18 new plants. She has 2 plants on each of 40 ledges and gives away three."
    assert sorted(quantities(prompt)) == [2, 3, 18, 40]
    forgot = "She has 2 * 40 = 80 plants, gives 40, so 80 - 40 = 40.\n#### 40"
    full = "She has 2 * 40 = 80 + 18 = 98 plants, gives three: 98 - 3 = 95.\n#### 95"
    assert VALIDATORS["uses_inputs"](forgot, prompt) < VALIDATORS["uses_inputs"](full, prompt)
    assert VALIDATORS["all_inputs"](forgot, prompt) == 0.0
    assert VALIDATORS["all_inputs"](full, prompt) == 1.0
    # "half" is used when the working divides by 2
    assert VALIDATORS["uses_inputs"]("10 / 2 = 5\n#### 5", "half of 10 cats") == 1.0


def test_too_few_steps_for_the_quantities_given() -> None:
    prompt = "He bought 38 chicken sausages and 6 more fish sausages than chicken. How many in all?"
    short = "38 + 6 = 44\n#### 44"
    full = "Fish: 38 + 6 = 44. In all: 38 + 44 = 82.\n#### 82"
    assert VALIDATORS["enough_steps"](short, "a 1, b 2, c 3 and d 4") < 1.0
    assert VALIDATORS["enough_steps"](full, prompt) == 1.0
    assert set(signals(full, prompt)) == set(SIGNALS)


def test_judge_with_pairs_saves_loads_and_refuses_unknown_versions(tmp_path: Path) -> None:
    judge = CascadeModel(
        ("arithmetic", "integer_answer"),
        (-1.0, -1.0),
        1.0,
        threshold=0.4,
        pairs=(("arithmetic", "integer_answer", -0.5),),
    )
    assert judge.version == 2
    judge.save(tmp_path / "j.json")
    again = CascadeModel.load(tmp_path / "j.json")
    assert again == judge
    assert again.escalate_score("#### 2.5", "") > again.escalate_score("1 + 1 = 2\n#### 2", "")
    doc = json.loads((tmp_path / "j.json").read_text())
    assert doc["version"] == 2
    assert doc["pairs"] == [["arithmetic", "integer_answer", -0.5]]
    doc["version"] = 7
    (tmp_path / "v7.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="unsupported cascade router version 7"):
        CascadeModel.load(tmp_path / "v7.json")
    with pytest.raises(ValueError, match="unknown cascade signals"):
        CascadeModel(("arithmetic",), (1.0,), 0.0, pairs=(("arithmetic", "nope", 1.0),))


def test_fit_cascade_picks_its_settings_by_cross_validation() -> None:
    pytest.importorskip("numpy")
    from agentmesh.evaluation.cascade_fit import CascadeConfig, fit_cascade

    rng = random.Random(3)
    rows = []
    for _ in range(150):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        weak_ok = rng.random() < 0.6
        shown = a * b if weak_ok else a * b + rng.choice([-3, 7, 11])
        answer = f"{a} * {b} = {shown}\n#### {shown}" if rng.random() < 0.9 else "#### 2.5"
        rows.append(Row(f"{a} boxes of {b}: how many?", weak_ok, True, weak_response=answer))
    config = CascadeConfig(strengths=(0.1, 1.0), repeats=1)
    judge = fit_cascade(rows, config, meta={"note": "synthetic"})
    assert judge.meta["note"] == "synthetic"
    assert {(c["strength"], c["pairs"]) for c in judge.meta["cv"]} == {
        (0.1, 0.0),
        (1.0, 0.0),
        (0.1, 1.0),
        (1.0, 1.0),
    }
    assert judge.meta["cv_mean"] == max(c["mean"] for c in judge.meta["cv"])
    assert judge.meta["cv_mean"] > 0.8
    wrong = judge.escalate_score("12 * 3 = 39\n#### 39", "12 boxes of 3: how many?")
    right = judge.escalate_score("12 * 3 = 36\n#### 36", "12 boxes of 3: how many?")
    assert wrong > right
    with pytest.raises(ValueError, match="at least 20 rows"):
        fit_cascade(rows[:5], config)
