"""Cascade validators (agentmesh.evaluation.answers / cascade) and the judge's trainer."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Sequence
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


def test_judge_reads_prompt_difficulty_and_response_words(tmp_path: Path) -> None:
    from agentmesh.evaluation.cascade import PROMPT_SIGNAL, response_terms
    from agentmesh.routing.strategies.adaptive import LearnedModel

    router = LearnedModel((), (), 0.0, ngrams={"compound": 2.0, "interest": 2.0}, ngram_order=1)
    router.save(tmp_path / "prompt.json")
    judge = CascadeModel(
        ("arithmetic", PROMPT_SIGNAL),
        (-2.0, 1.0),
        0.5,
        words={"however": 1.5},
        prompt_router=router,
        prompt_router_file="prompt.json",
    )
    assert judge.version == 3
    answer = "2 * 3 = 6\n#### 6"
    # the same answer is riskier for a harder question, and riskier when it hedges
    assert judge.escalate_score(answer, "compound interest on 2 for 3 years") > (
        judge.escalate_score(answer, "2 boxes of 3 apples")
    )
    assert judge.escalate_score("However, " + answer, "2 boxes") > judge.escalate_score(
        answer, "2 boxes"
    )
    assert response_terms("It costs $12.") == {"it", "costs", "$", "0", "."}
    judge.save(tmp_path / "judge.json")
    doc = json.loads((tmp_path / "judge.json").read_text())
    assert (doc["version"], doc["prompt_router"]) == (3, "prompt.json")
    assert CascadeModel.load(tmp_path / "judge.json") == judge
    with pytest.raises(ValueError, match="needs a prompt router"):
        CascadeModel((PROMPT_SIGNAL,), (1.0,), 0.0)
    # version-1 files (no pairs, no words) still load
    v1 = {"format": "agentmesh-cascade-router", "signals": ["arithmetic"], "weights": [-1.0]}
    (tmp_path / "v1.json").write_text(json.dumps({**v1, "version": 1, "bias": 0.0}))
    assert CascadeModel.load(tmp_path / "v1.json").version == 1


def test_fit_cascade_cross_fits_the_prompt_signal_and_weighs_words() -> None:
    pytest.importorskip("numpy")
    from agentmesh.evaluation.cascade import PROMPT_SIGNAL
    from agentmesh.evaluation.cascade_fit import CascadeConfig, fit_cascade
    from agentmesh.routing.strategies.adaptive import LearnedModel

    scored: list[tuple[frozenset[str], str]] = []

    def train_prompt(rows: Sequence[Row]) -> LearnedModel:
        seen = frozenset(r.prompt for r in rows)

        class Spy(LearnedModel):
            def logit(self, text: str) -> float:
                scored.append((seen, text))
                return 1.0 if "hard" in text else 0.0

        return Spy((), (), 0.0)

    rng = random.Random(5)
    rows = []
    for i in range(120):
        hard = rng.random() < 0.4
        weak_ok = rng.random() < (0.3 if hard else 0.9)
        words = "hmm, " if not weak_ok and rng.random() < 0.5 else ""
        answer = f"{words}{i} + 1 = {i + 1}\n#### {i + 1}"
        rows.append(Row(f"q{i} {'hard' if hard else 'easy'}", weak_ok, True, weak_response=answer))
    full = LearnedModel((), (), 0.0, ngrams={"hard": 4.0}, ngram_order=1)
    config = CascadeConfig(strengths=(1.0,), pairs=(False,), repeats=1, response_words=20)
    config = dataclasses.replace(config, min_df=2, word_strengths=(1.0,))
    judge = fit_cascade(
        rows, config, prompt_router=full, prompt_router_file="p.json", train_prompt=train_prompt
    )
    # every training score came from a router that did not see that row
    assert scored
    assert all(text not in seen for seen, text in scored)
    assert judge.version == 3
    assert PROMPT_SIGNAL in judge.signals
    assert judge.meta["prompt_signal"] == "cross-fitted"
    assert judge.words.get("hmm", 0.0) > 0
    answer = "5 + 1 = 6\n#### 6"
    assert judge.escalate_score(answer, "q hard") > judge.escalate_score(answer, "q easy")
