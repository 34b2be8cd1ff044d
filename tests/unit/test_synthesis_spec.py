"""MergeSpec (the YAML face), the registry, and the packing helpers."""

from __future__ import annotations

from collections import deque

import pytest
import yaml

from agentmesh.models import estimate_tokens
from agentmesh.routing import Policy
from agentmesh.synthesis import (
    SYNTHESIZERS,
    BestOfN,
    Compact,
    Item,
    MergeSpec,
    MergeSpecError,
    Refine,
    SynthesisContext,
    TreeParams,
    TreeSummarize,
    Vote,
    VoteParams,
    build_synthesizer,
    split_text,
)
from agentmesh.synthesis.pack import MIN_ROOM_TOKENS, Piece, join, pieces_of, take

from .test_synthesis import mesh_of_fixture, meshes_fixture, model  # noqa: F401 - fixtures

# --------------------------------------------------------------------------- registry and spec


def test_the_registry_names_the_five_strategies() -> None:
    assert dict(SYNTHESIZERS) == {
        "refine": Refine,
        "compact": Compact,
        "vote": Vote,
        "tree_summarize": TreeSummarize,
        "best_of_n": BestOfN,
    }
    for name, cls in SYNTHESIZERS.items():
        assert cls.name == name
        assert cls.stages
        assert cls.__doc__
        built = build_synthesizer(name)
        assert isinstance(built, cls)
        assert built.params == cls.Params()
    with pytest.raises(TypeError):
        SYNTHESIZERS["x"] = Vote  # type: ignore[index]


def test_a_merge_spec_from_yaml() -> None:
    data = yaml.safe_load(
        """
        strategy: vote
        params: {extractor: number, weighting: quality, tie_break: strongest}
        stages:
          judge: {strategy: quality_per_cost, min_tier: 2}
        """
    )
    spec = MergeSpec.from_mapping(data)
    assert spec.stages["judge"] == Policy(strategy="quality_per_cost", min_tier=2)
    built = spec.build()
    assert isinstance(built, Vote)
    assert built.params == VoteParams(
        extractor="number", weighting="quality", tie_break="strongest"
    )
    assert MergeSpec.from_mapping("tree_summarize").build().params == TreeParams()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"strategy": "fusion"},
            "graph.yaml: merge: strategy: unknown synthesis strategy 'fusion'",
        ),
        ({"strategy": "tree_summarize", "params": {"fan_in": 1}}, "params.fan_in: Input should be"),
        (
            {"strategy": "vote", "params": {"extractor": "regex"}},
            "params.extractor: unknown extractor 'regex'; known: choice, exact, number, short",
        ),
        (
            {"strategy": "vote", "params": {"weighting": "loud"}},
            "params.weighting: Input should be",
        ),
        (
            {"strategy": "compact", "params": {"fan_in": 3}},
            "params.fan_in: unknown field",
        ),
        (
            {"strategy": "tree_summarize", "stages": {"lef": {}}},
            "stages.lef: tree_summarize has no stage 'lef'; its stages: leaf, root",
        ),
        (
            {"strategy": "refine", "stages": {"refine": {"min_tier": 0}}},
            "stages.refine.min_tier: Input should be greater than or equal to 1",
        ),
        (
            {"strategy": "refine", "stages": {"refine": {"strategy": "fastest"}}},
            "stages.refine: unknown strategy 'fastest'",
        ),
        ({"strategy": "refine", "extra": 1}, "extra: unknown field"),
        ({"params": {}}, "strategy: required field is missing"),
        (["vote"], "a merge spec is a strategy name or a mapping"),
    ],
)
def test_merge_spec_errors_name_the_source_and_the_field(data: object, message: str) -> None:
    with pytest.raises(MergeSpecError) as info:
        MergeSpec.from_mapping(data, source="graph.yaml: merge")  # type: ignore[arg-type]
    assert str(info.value).startswith("graph.yaml: merge: ")
    assert message.removeprefix("graph.yaml: merge: ") in str(info.value)


def test_merge_spec_has_a_json_schema_for_editors() -> None:
    schema = MergeSpec.model_json_schema()
    assert set(schema["properties"]) == {"strategy", "params", "stages"}
    assert schema["required"] == ["strategy"]


async def test_merge_spec_stage_policies_override_the_context(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("cheap", 1), model("strong", 3))
    spec = MergeSpec.from_mapping(
        {"strategy": "refine", "stages": {"refine": {"strategy": "cheapest", "min_tier": 3}}}
    )
    ctx = mesh.ctx(stages={"refine": Policy(strategy="cheapest", max_tier=1)})
    result = await spec.synthesize(["a", "b"], ctx)
    assert result.models == ("strong",)
    plain = await Refine().synthesize(["a", "b"], ctx)
    assert plain.models == ("cheap",)


def test_context_checks_its_numbers(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    with pytest.raises(ValueError, match="max_output_tokens"):
        SynthesisContext(mesh.caller, max_output_tokens=0)
    with pytest.raises(ValueError, match="token_margin"):
        SynthesisContext(mesh.caller, token_margin=1.0)
    ctx = SynthesisContext(mesh.caller, policy=Policy(min_tier=1))
    assert ctx.policy_for("leaf") == Policy(min_tier=1)
    assert "Combine the material" in ctx.goal
    assert SynthesisContext(mesh.caller, question="Q?", instructions="In French.").goal == (
        "Q?\nIn French."
    )


# --------------------------------------------------------------------------- packing


def test_split_text_prefers_paragraphs_then_sentences() -> None:
    paragraphs = [" ".join(f"P{p} sentence {s} is here." for s in range(5)) for p in range(4)]
    text = "\n\n".join(paragraphs)
    limit = estimate_tokens(paragraphs[0]) + 2
    pieces = split_text(text, limit, estimate_tokens)
    assert pieces == paragraphs
    halves = split_text(paragraphs[0], limit // 2, estimate_tokens)
    assert len(halves) >= 2
    assert all(p.endswith(".") for p in halves)
    assert " ".join(halves) == paragraphs[0]


def test_split_text_hard_splits_text_without_boundaries() -> None:
    blob = "x7" * 3000
    pieces = split_text(blob, 100, estimate_tokens)
    assert "".join(pieces) == blob
    assert all(estimate_tokens(p) <= 100 for p in pieces)
    assert len(pieces) > 10
    with pytest.raises(ValueError, match="0 tokens"):
        split_text(blob, 0, estimate_tokens)


def test_split_text_respects_a_plugged_in_counter() -> None:
    def chars(text: str) -> int:
        return len(text)

    pieces = split_text("alpha beta gamma delta epsilon", 12, chars)
    assert pieces == ["alpha beta", "gamma delta", "epsilon"]


def test_take_packs_in_order_and_splits_a_piece_that_cannot_fit() -> None:
    def chars(text: str) -> int:
        return len(text)

    queue = deque(Piece(f"piece-{n}-of-the-queue", (f"s{n}",)) for n in range(6))
    size = len(queue[0].text)
    first = take(queue, 2 * size + len("\n\n") + 1 + 2, chars)  # two and a join, with slack
    assert [p.sources for p in first] == [("s0",), ("s1",)]
    assert join(first) == "piece-0-of-the-queue\n\npiece-1-of-the-queue"
    capped = take(queue, 1000, estimate_tokens, most=3)
    assert [p.sources for p in capped] == [("s2",), ("s3",), ("s4",)]
    big = deque([Piece(" ".join(["word"] * 200), ("big",)), Piece("next", ("n",))])
    head = take(big, 50, estimate_tokens)
    assert len(head) == 1
    assert head[0].sources == ("big",)
    assert estimate_tokens(head[0].text) <= 50
    assert big[0].sources == ("big",)
    assert big[-1].sources == ("n",)
    with pytest.raises(ValueError, match="at least"):
        take(big, MIN_ROOM_TOKENS - 1, estimate_tokens)


def test_pieces_are_labelled_with_source_model_and_part() -> None:
    items = [Item("short", "a", "m1"), Item(" ".join(["long words"] * 100), "b")]
    pieces, notes = pieces_of(items, 60, estimate_tokens, labelled=True)
    assert pieces[0] == Piece("[a, model m1]\nshort", ("a",))
    assert pieces[1].text.startswith("[b, part 1 of ")
    assert all(estimate_tokens(p.text) <= 60 for p in pieces)
    assert notes
    assert notes[0].startswith("split b into")
