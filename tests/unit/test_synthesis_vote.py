"""Vote: extraction, majority and quality weighting, tie-breaks; the extractors themselves."""

from __future__ import annotations

import json

import pytest

from agentmesh.routing import Policy
from agentmesh.synthesis import (
    EXTRACTORS,
    ChoiceExtractor,
    Item,
    SynthesisError,
    Vote,
    VoteParams,
)

from .test_synthesis import mesh_of_fixture, meshes_fixture, model  # noqa: F401 - fixtures

# --------------------------------------------------------------------------- vote


async def test_a_clear_majority_needs_no_model_call(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("judge"))
    items = [
        Item("The answer is 42.", "a", "m1"),
        Item("I get 41.", "b", "m2"),
        Item("#### 42", "c", "m3"),
        Item("Answer: 42.0", "d", "m4"),
        Item("It is 40", "e", "m5"),
    ]
    result = await Vote(VoteParams(extractor="number")).synthesize(items, mesh.ctx())
    assert result.text == "The answer is 42.", "the first winner's own reply, not the key"
    prov = result.provenance
    assert prov.answer == "42"
    assert dict(prov.votes) == {"42": ("a", "c", "d"), "41": ("b",), "40": ("e",)}
    assert prov.agreement == pytest.approx(3 / 5)
    assert prov.selected == ("a", "c", "d")
    assert (prov.tie_broken_by, prov.decided_by) == (None, "majority")
    assert result.calls == ()
    assert mesh.gateway.sent == []
    assert mesh.router.requests == []


async def test_quality_weights_come_from_the_routing_matrix(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(
        model("weak-1", 1, quality={"math": 0.3}),
        model("weak-2", 1, quality={"math": 0.3}),
        model("strong", 3, quality={"math": 0.9}),
    )
    items = [
        Item("Answer: 12", "a", "weak-1"),
        Item("Answer: 12", "b", "weak-2"),
        Item("Answer: 15", "c", "strong"),
    ]
    ctx = mesh.ctx(task="math")
    majority = await Vote(VoteParams(extractor="number")).synthesize(items, ctx)
    assert majority.text == "Answer: 12"
    weighted = await Vote(VoteParams(extractor="number", weighting="quality")).synthesize(
        items, ctx
    )
    assert (weighted.text, weighted.provenance.answer) == ("Answer: 15", "15")
    assert dict(weighted.provenance.weights) == pytest.approx({"12": 0.6, "15": 0.9})
    assert weighted.provenance.agreement == pytest.approx(0.9 / 1.5)
    assert weighted.provenance.decided_by == "quality"
    assert weighted.calls == ()


async def test_quality_weights_follow_observed_judge_scores(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("a", 1, quality={"qa": 0.5}), model("b", 1, quality={"qa": 0.5}))
    await mesh.router.state.add_quality("qa", "b", 0.0, 20)  # b was judged wrong 20 times
    items = [Item("Answer: yes", "x", "a"), Item("Answer: no", "y", "b")]
    result = await Vote(VoteParams(weighting="quality", tie_break="strongest")).synthesize(
        items, mesh.ctx(task="qa")
    )
    assert result.text == "Answer: yes"
    assert result.provenance.weights["no"] == pytest.approx(0.5 * 5 / 25)
    assert result.provenance.tie_broken_by is None


async def test_models_outside_the_catalog_weigh_their_score_or_the_default_prior(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    items = [
        Item("Answer: A", "x", "external", score=0.9),
        Item("Answer: B", "y", None),
        Item("Answer: B", "z", "other-external"),
    ]
    result = await Vote(VoteParams(extractor="choice", weighting="quality")).synthesize(
        items, mesh.ctx()
    )
    assert dict(result.provenance.weights) == pytest.approx({"A": 0.9, "B": 1.0})
    assert result.text == "Answer: B"


async def test_all_disagreeing_votes_are_settled_by_a_judge_call(mesh_of) -> None:  # type: ignore[no-untyped-def]
    verdict = json.dumps({"best": 2, "reasons": "Paris is the capital."})
    mesh = mesh_of(model("judge", 3, replies=[{"match": "tied in a vote", "reply": verdict}]))
    items = [Item("Lyon", "a", "m1"), Item("Paris.", "b", "m2"), Item("Marseille", "c", "m3")]
    result = await Vote().synthesize(items, mesh.ctx(question="Capital of France?"))
    assert (result.text, result.provenance.answer) == ("Paris.", "paris")
    prov = result.provenance
    assert (prov.tie_broken_by, prov.decided_by, prov.reasons) == (
        "judge",
        "judge",
        "Paris is the capital.",
    )
    assert prov.agreement == pytest.approx(1 / 3)
    assert len(prov.votes) == 3
    assert [(c.stage, c.model) for c in result.calls] == [("judge", "judge")]
    (request,) = mesh.calls_to("judge")
    text = str(request.messages[-1].content)
    assert "Candidate 1:\nAnswer: lyon\nGiven by: a" in text
    assert "Candidate 3:" in text
    roles = {r.role for r in mesh.router.requests}
    assert roles == {"merge:judge"}


async def test_only_the_tied_answers_go_to_the_judge(mesh_of) -> None:  # type: ignore[no-untyped-def]
    verdict = json.dumps({"best": 1, "reasons": "first"})
    mesh = mesh_of(model("judge", reply=verdict))
    items = ["Answer: B", "Answer: A", "Answer: A", "Answer: B", "Answer: C"]
    result = await Vote(VoteParams(extractor="choice")).synthesize(items, mesh.ctx())
    assert result.text == "Answer: B", (
        "B appeared first among the tied, and the judge chose candidate 1"
    )
    (request,) = mesh.calls_to("judge")
    text = str(request.messages[-1].content)
    assert "Answer: B" in text
    assert "Answer: A" in text
    assert "Answer: C" not in text
    assert result.provenance.agreement == pytest.approx(2 / 5)


async def test_a_tie_can_go_to_the_strongest_model_without_a_call(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("small", 1), model("big", 4), model("mid", 2))
    items = [Item("Rome", "a", "small"), Item("Paris", "b", "big"), Item("Lyon", "c", "mid")]
    result = await Vote(VoteParams(tie_break="strongest")).synthesize(items, mesh.ctx())
    assert result.text == "Paris"
    assert result.provenance.tie_broken_by == "strongest"
    assert "(big)" in result.provenance.reasons
    assert result.calls == ()
    assert mesh.gateway.sent == []


async def test_an_invalid_tie_judgement_falls_back_to_the_strongest_model(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("judge", 1, reply='{"best": 9, "reasons": "?"}'), model("big", 4))
    items = [Item("Rome", "a", "judge"), Item("Paris", "b", "big")]
    result = await Vote().synthesize(items, mesh.ctx())
    assert result.text == "Paris"
    assert result.provenance.tie_broken_by == "strongest"
    assert "judge answer invalid" in result.provenance.notes[-1]
    assert "there are 2 candidates" in result.provenance.reasons
    assert len(result.calls) == 1


async def test_a_failing_judge_fails_the_vote_with_the_votes_kept(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("judge", down=True))
    with pytest.raises(SynthesisError, match="stage 'judge' failed") as info:
        await Vote().synthesize(["yes", "no"], mesh.ctx())
    assert info.value.calls[-1].error == "unavailable"
    assert [c.source for c in info.value.provenance.contributors] == ["#1", "#2"]


async def test_items_without_an_answer_abstain(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    items = ["It is 7.", "no idea", "Answer: 7", "I cannot say"]
    result = await Vote(VoteParams(extractor="number")).synthesize(items, mesh.ctx())
    assert result.text == "It is 7."
    assert result.provenance.abstained == ("#2", "#4")
    assert result.provenance.agreement == 1.0
    with pytest.raises(SynthesisError, match="no answer could be extracted") as info:
        await Vote(VoteParams(extractor="number")).synthesize(["none", "nope"], mesh.ctx())
    assert info.value.provenance.abstained == ("#1", "#2")


async def test_a_custom_extractor_can_be_plugged_in_from_python(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))

    def verdict(text: str) -> str | None:
        return "pass" if "PASS" in text else "fail" if "FAIL" in text else None

    result = await Vote(extractor=verdict).synthesize(
        ["tests: PASS", "FAIL (flaky)", "PASS", "?"], mesh.ctx()
    )
    assert result.text == "tests: PASS"
    assert dict(result.provenance.votes) == {"pass": ("#1", "#3"), "fail": ("#2",)}


async def test_a_vote_of_one_is_that_one(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    result = await Vote(VoteParams(extractor="choice")).synthesize(
        [Item("The answer is (C).", "only", "m")], mesh.ctx()
    )
    assert (result.text, result.provenance.agreement) == ("The answer is (C).", 1.0)
    assert result.provenance.selected == ("only",)


async def test_the_judge_stage_has_its_own_policy(mesh_of) -> None:  # type: ignore[no-untyped-def]
    verdict = json.dumps({"best": 1, "reasons": "ok"})
    mesh = mesh_of(model("cheap", 1, reply=verdict), model("strong", 3, reply=verdict))
    ctx = mesh.ctx(stages={"judge": Policy(strategy="cheapest", min_tier=3)})
    result = await Vote().synthesize(["x", "y"], ctx)
    assert result.models == ("strong",)


async def test_the_output_is_the_winners_original_text_and_the_key_stays_in_provenance(
    mesh_of,
) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    items = [Item("java", "a", score=0.2), Item("[Java]", "b", score=0.9), Item("Python", "c")]
    result = await Vote().synthesize(items, mesh.ctx())
    assert result.text == "[Java]", "the best-scored member's reply"
    prov = result.provenance
    assert prov.answer == "java"
    assert prov.to_dict()["answer"] == prov.answer
    assert prov.selected == ("a", "b")
    unscored = [Item("[x] Yes.", "a"), Item("yes", "b"), Item("no", "c")]
    first = await Vote().synthesize(unscored, mesh.ctx())
    assert first.text == "[x] Yes.", "unscored: the first member, its leading '[' kept"


# --------------------------------------------------------------------------- extractors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 1,200.50 dollars", "1200.5"),
        ("#### 72", "72"),
        ("So 2 + 2 = 4", "4"),
        ("First 3 apples, then 5 more: 8", "8"),
        ("Answer: **-0.0**", "0"),
        ("It costs $3.", "3"),
        ("2023-2024 saw 15 launches", "15"),
        ("answer is 7, not 9", "7"),
        ("no number at all", None),
    ],
)
def test_number_extractor(text: str, expected: str | None) -> None:
    assert EXTRACTORS["number"](text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (B).", "B"),
        ("Answer: d", "D"),
        ("The answer is a bit unclear, but I'd say (c)", "C"),
        ("B) because the others are wrong", "B"),
        ("b", "B"),
        ("I pick option C.", "C"),
        ("Nothing fits.", None),
        ("The answer is E.", None),
    ],
)
def test_choice_extractor(text: str, expected: str | None) -> None:
    assert EXTRACTORS["choice"](text) == expected


def test_choice_extractor_letters_are_configurable() -> None:
    assert ChoiceExtractor("ABCDE")("The answer is E.") == "E"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower.", "eiffel tower"),
        ("Final answer: **Paris**!", "paris"),
        ('\n\n  "An apple"  \nsecond line', "apple"),
        ("  Mount   Everest ", "mount everest"),
        ("", None),
        ("  ...  ", None),
    ],
)
def test_short_answer_extractor(text: str, expected: str | None) -> None:
    assert EXTRACTORS["short"](text) == expected


def test_exact_extractor_strips_only() -> None:
    assert EXTRACTORS["exact"]("  Same Text. ") == "Same Text."
    assert EXTRACTORS["exact"]("   ") is None
