"""Synthesis strategies over scripted models: refine, compact, tree, best-of-N, resilience.

The harness here (``Mesh``) is shared with the other ``test_synthesis_*`` files.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agentmesh.models import (
    Catalog,
    ClientContext,
    Gateway,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    Provider,
    ScriptedClient,
    Unavailable,
    estimate_message_tokens,
    estimate_tokens,
)
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience import Call, ResiliencePolicy, ResilientCaller
from agentmesh.routing import BudgetLimits, Policy, RouteDecision, Router, RouteRequest
from agentmesh.synthesis import (
    PICK_BEST_SCHEMA,
    BestOfN,
    BestOfNParams,
    Compact,
    CompactParams,
    Item,
    MergeSpec,
    NothingToSynthesize,
    Refine,
    SynthesisContext,
    SynthesisError,
    Synthesizer,
    TreeParams,
    TreeSummarize,
    Vote,
)
from agentmesh.testing import scripted_model

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- harness


class FlakyClient(ScriptedClient):
    """A scripted model that serves ``after`` calls, then is down for good."""

    def __init__(self, spec: ModelSpec, ctx: ClientContext | None, after: int | None) -> None:
        super().__init__(spec, ctx)
        self.after = after

    async def _admit(self) -> None:
        await super()._admit()
        if self.after is not None and self.calls > self.after:
            raise self.error(Unavailable, f"down after {self.after} calls", status_code=503)


class RecordingGateway(Gateway):
    """Records every request sent and the peak number of calls in flight."""

    def __init__(self, catalog: Catalog, fail_after: Mapping[str, int]) -> None:
        def factory(spec: ModelSpec, ctx: ClientContext) -> FlakyClient:
            return FlakyClient(spec, ctx, fail_after.get(spec.id))

        super().__init__(catalog, factories={Provider.SCRIPTED: factory})
        self.sent: list[tuple[str, ModelRequest]] = []
        self.attributes: list[object] = []
        self.in_flight = 0
        self.peak = 0

    async def invoke(
        self, model_id: str, request: ModelRequest, *, attributes: object = None
    ) -> ModelResponse:
        self.sent.append((model_id, request))
        self.attributes.append(attributes)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super().invoke(model_id, request)
        finally:
            self.in_flight -= 1


class SpyRouter(Router):
    """Records every route request (probes included)."""

    def __init__(self, catalog: Catalog, **kwargs: Any) -> None:
        super().__init__(catalog, **kwargs)
        self.requests: list[RouteRequest] = []

    async def route(self, request: RouteRequest, policy: Policy | None = None) -> RouteDecision:
        self.requests.append(request)
        return await super().route(request, policy)


class SpyCaller(ResilientCaller):
    """Records the span attributes of every call."""

    attributes: list[dict[str, Any]]

    async def call(self, call: Call) -> Any:
        self.attributes.append(dict(call.attributes))
        return await super().call(call)


class Mesh:
    """Scripted catalog + router + recording gateway + caller, with a fake sleep."""

    def __init__(
        self,
        *specs: ModelSpec,
        fail_after: Mapping[str, int] | None = None,
        budgets: BudgetLimits | None = None,
    ) -> None:
        self.catalog = Catalog(specs, source="<synthesis test>")
        self.gateway = RecordingGateway(self.catalog, fail_after or {})
        self.router = SpyRouter(self.catalog, budgets=budgets)
        self.slept: list[float] = []
        self.caller = SpyCaller(
            self.router, self.gateway, ResiliencePolicy(), sleep=self._sleep, rng=random.Random(3)
        )
        self.caller.attributes = []

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def ctx(self, **fields: Any) -> SynthesisContext:
        fields.setdefault("question", "What should we do?")
        fields.setdefault("node", "merge_node")
        fields.setdefault("policy", Policy(strategy="cheapest"))
        return SynthesisContext(self.caller, **fields)

    def calls_to(self, model_id: str) -> list[ModelRequest]:
        return [r for m, r in self.gateway.sent if m == model_id]

    def assert_every_request_fits(self) -> None:
        for model_id, request in self.gateway.sent:
            window = self.catalog[model_id].context_window
            used = estimate_message_tokens(request.messages) + (request.max_tokens or 0)
            assert used <= window, f"{model_id}: {used} tokens > window {window}"


def model(model_id: str, tier: int = 1, *, window: int = 100_000, out: int = 2000, **behavior: Any):  # type: ignore[no-untyped-def]
    fields: dict[str, Any] = {
        "pricing": {"input": float(tier), "output": float(2 * tier)},
        "context_window": window,
        "max_output_tokens": min(out, window),
        "family": behavior.pop("family", "fam"),
        "quality": behavior.pop("quality", {}),
    }
    behavior.setdefault("reply", f"summary by {model_id}")
    return scripted_model(model_id, tier=tier, fields=fields, **behavior)


@pytest.fixture(name="meshes")
async def meshes_fixture() -> AsyncIterator[list[Mesh]]:
    made: list[Mesh] = []
    yield made
    for mesh in made:
        await mesh.gateway.aclose()


@pytest.fixture(name="mesh_of")
def mesh_of_fixture(meshes: list[Mesh]):  # type: ignore[no-untyped-def]
    """Builds a Mesh over the given specs; gateways are closed after the test."""

    def build(*specs: ModelSpec, **kwargs: Any) -> Mesh:
        mesh = Mesh(*specs, **kwargs)
        meshes.append(mesh)
        return mesh

    return build


def paragraph(tag: str, sentences: int) -> str:
    """Text of roughly 10 tokens per sentence, each sentence marked with ``tag`` and its number."""
    return " ".join(
        f"Fact {tag}-{n} says the measured value rose again this quarter." for n in range(sentences)
    )


def last_user(request: ModelRequest) -> str:
    return str(request.messages[-1].content)


STRATEGIES: list[Synthesizer[Any]] = [Refine(), Compact(), TreeSummarize(), BestOfN(), Vote()]


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
async def test_empty_input_is_a_clear_error_for_every_strategy(mesh_of, strategy) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    with pytest.raises(NothingToSynthesize, match="nothing to synthesize") as info:
        await strategy.synthesize([], mesh.ctx())
    assert info.value.strategy == strategy.name
    with pytest.raises(NothingToSynthesize, match="2 blank item"):
        await strategy.synthesize(["", "  \n"], mesh.ctx())
    assert mesh.gateway.sent == []


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.name)
async def test_one_item_is_returned_as_is_without_a_call(mesh_of, strategy) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    item = Item("Paris", source="branch-a", model="m")
    result = await strategy.synthesize([item, Item("   ", source="empty")], mesh.ctx())
    assert result.text == "Paris", "vote too: the reply itself, not its match key"
    assert result.calls == ()
    assert result.cost_usd == 0
    assert [(c.source, c.model) for c in result.provenance.contributors] == [("branch-a", "m")]
    assert result.provenance.notes == ("dropped blank item empty",)
    assert mesh.gateway.sent == []
    assert mesh.router.requests == [], "not even a routing probe"


# --------------------------------------------------------------------------- refine


async def test_refine_folds_each_next_item_into_the_running_answer(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(
        model(
            "m",
            replies=[
                {"match": "gamma", "reply": "answer-3"},
                {"match": "beta", "reply": "answer-2"},
            ],
        )
    )
    items = [Item("alpha", "a", "x"), Item("beta", "b", "y"), Item("gamma", "c", "z")]
    result = await Refine().synthesize(items, mesh.ctx(question="Q?"))
    assert result.text == "answer-3"
    assert [c.stage for c in result.calls] == ["refine", "refine"]
    first, second = (last_user(r) for r in mesh.calls_to("m"))
    assert "Answer so far:\nalpha" in first
    assert "New material:\nbeta" in first
    assert "Answer so far:\nanswer-2" in second
    assert "New material:\ngamma" in second
    assert [c.sources for c in result.calls] == [("a", "b"), ("a", "b", "c")]
    assert [c.source for c in result.provenance.contributors] == ["a", "b", "c"]
    assert result.models == ("m",)
    assert result.cost_usd > 0
    assert result.tokens > 0


async def test_refine_splits_an_item_larger_than_the_window(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("small", window=700, out=100))
    big = paragraph("big", 120)  # ~1,400 tokens: twice the window
    assert estimate_tokens(big) > 700
    result = await Refine().synthesize(["Start.", big], mesh.ctx(max_output_tokens=100))
    assert len(result.calls) > 2
    assert any("split #2 into" in n for n in result.provenance.notes)
    mesh.assert_every_request_fits()
    sent = "\n".join(last_user(r) for r in mesh.calls_to("small"))
    assert all(f"Fact big-{n} " in sent for n in range(120)), "every sentence was refined in"


# --------------------------------------------------------------------------- compact


async def test_compact_makes_fewer_calls_than_refine_on_the_same_inputs(mesh_of) -> None:  # type: ignore[no-untyped-def]
    items = [Item(paragraph(f"i{n}", 5), f"branch-{n}", "m") for n in range(8)]
    refine_mesh = mesh_of(model("m", window=600, out=100))
    compact_mesh = mesh_of(model("m", window=600, out=100))
    refined = await Refine().synthesize(items, refine_mesh.ctx(max_output_tokens=100))
    compacted = await Compact().synthesize(items, compact_mesh.ctx(max_output_tokens=100))
    assert len(refined.calls) == len(refine_mesh.gateway.sent) == 7
    assert 1 < len(compacted.calls) == len(compact_mesh.gateway.sent) < len(refined.calls)
    assert compacted.cost_usd < refined.cost_usd
    compact_mesh.assert_every_request_fits()
    covered = [s for c in compacted.calls for s in c.sources]
    assert set(covered) == {f"branch-{n}" for n in range(8)}


async def test_compact_answers_the_first_pack_then_refines_with_the_others(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    items = [Item(paragraph(f"i{n}", 2), f"b{n}") for n in range(5)]
    result = await Compact(CompactParams(max_pack_tokens=60)).synthesize(items, mesh.ctx())
    stages = [c.stage for c in result.calls]
    assert stages[0] == "answer"
    assert set(stages[1:]) == {"refine"}
    assert len(stages) >= 3
    first = last_user(mesh.gateway.sent[0][1])
    assert first.startswith("Question: What should we do?")
    assert "[b0]\nFact i0-0" in first
    assert "Answer so far:\nsummary by m" in last_user(mesh.gateway.sent[1][1])


async def test_compact_with_everything_in_one_window_is_one_call(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    items = [Item(f"Answer {n}.", f"b{n}", "m") for n in range(6)]
    result = await Compact().synthesize(items, mesh.ctx())
    assert [c.stage for c in result.calls] == ["answer"]
    assert result.calls[0].sources == tuple(f"b{n}" for n in range(6))
    assert all(
        f"[b{n}, model m]\nAnswer {n}." in last_user(mesh.gateway.sent[0][1]) for n in range(6)
    )


async def test_compact_packs_for_the_smallest_window_the_stage_may_use(mesh_of) -> None:  # type: ignore[no-untyped-def]
    items = [Item(paragraph(f"i{n}", 4), f"b{n}") for n in range(6)]
    both = mesh_of(model("tiny", 1, window=600, out=100), model("big", 2, window=50_000))
    result = await Compact().synthesize(items, both.ctx(max_output_tokens=100))
    assert len(result.calls) > 1, "packed for tiny's window, the smaller one"
    both.assert_every_request_fits()
    only_big = mesh_of(model("tiny", 1, window=600, out=100), model("big", 2, window=50_000))
    strong = Policy(strategy="cheapest", min_tier=2)
    result = await Compact().synthesize(
        items, only_big.ctx(max_output_tokens=100, stages={"answer": strong, "refine": strong})
    )
    assert len(result.calls) == 1
    assert result.models == ("big",)


async def test_compact_splits_an_item_larger_than_the_window(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("small", window=600, out=80))
    big = paragraph("huge", 150)
    result = await Compact().synthesize(
        [Item("Short note.", "n"), Item(big, "doc", "writer")], mesh.ctx(max_output_tokens=80)
    )
    assert any(n.startswith("split doc into") for n in result.provenance.notes)
    assert len(result.calls) >= 3
    mesh.assert_every_request_fits()
    sent = "\n".join(last_user(r) for r in mesh.calls_to("small"))
    assert all(f"Fact huge-{n} " in sent for n in range(150))
    assert "[doc, model writer, part 2 of" in sent
    assert not [a for c in result.calls for a in c.attempts if a.error_type]


async def test_a_window_too_small_for_any_material_is_a_synthesis_error(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m", window=175, out=100))  # the prompt alone takes ~62 tokens
    with pytest.raises(SynthesisError, match=r"leaves .* for material") as info:
        await Compact().synthesize(["a", "b"], mesh.ctx(max_output_tokens=100))
    assert info.value.stage == "answer"
    assert mesh.gateway.sent == []


# --------------------------------------------------------------------------- tree


async def test_tree_leaves_run_concurrently_then_one_root(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m", latency_ms=20))
    items = [Item(f"Finding {n}.", f"b{n}") for n in range(8)]
    result = await TreeSummarize(TreeParams(fan_in=2)).synthesize(items, mesh.ctx())
    assert mesh.gateway.peak == 4, "the four leaves of level 0 were in flight together"
    assert [(c.stage, c.level) for c in result.calls] == [("leaf", 0)] * 4 + [("leaf", 1)] * 2 + [
        ("root", 2)
    ]
    assert result.calls[-1].sources == tuple(f"b{n}" for n in range(8))
    assert {c.sources for c in result.calls[:4]} == {
        (f"b{2 * k}", f"b{2 * k + 1}") for k in range(4)
    }
    assert "[summary 2.1]" in last_user(mesh.gateway.sent[-1][1])


async def test_tree_concurrency_can_be_bounded(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m", latency_ms=10))
    items = [f"Finding {n}." for n in range(8)]
    await TreeSummarize(TreeParams(fan_in=2, max_concurrency=2)).synthesize(items, mesh.ctx())
    assert mesh.gateway.peak == 2


async def test_tree_routes_leaves_and_root_to_different_tiers_from_yaml(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("cheap", 1), model("mid", 2), model("strong", 3))
    spec = MergeSpec.from_mapping(
        {
            "strategy": "tree_summarize",
            "params": {"fan_in": 3},
            "stages": {
                "leaf": {"strategy": "cheapest"},
                "root": {"strategy": "cheapest", "min_tier": 3},
            },
        }
    )
    result = await spec.synthesize([f"Finding {n}." for n in range(9)], mesh.ctx())
    assert [(c.stage, c.model) for c in result.calls] == [("leaf", "cheap")] * 3 + [
        ("root", "strong")
    ]
    assert result.models == ("cheap", "strong")


async def test_tree_with_few_items_is_one_root_call(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    result = await TreeSummarize().synthesize(["a", "b", "c"], mesh.ctx())
    assert [(c.stage, c.level) for c in result.calls] == [("root", 0)]


async def test_a_failing_leaf_fails_the_tree_with_every_call_made(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("leafy", 1), model("root", 3), fail_after={"leafy": 2})
    ctx = mesh.ctx(
        stages={
            "leaf": Policy(strategy="cheapest", max_tier=1),
            "root": Policy(strategy="cheapest", min_tier=3),
        }
    )
    with pytest.raises(SynthesisError, match="1 of 3 leaf summaries of level 0 failed") as info:
        await TreeSummarize(TreeParams(fan_in=2)).synthesize([f"f{n}" for n in range(6)], ctx)
    error = info.value
    assert error.stage == "leaf"
    assert sorted(c.ok for c in error.calls) == [False, True, True]
    failed = next(c for c in error.calls if not c.ok)
    assert failed.model is None
    assert failed.error == "unavailable"
    assert failed.attempts
    assert [c.source for c in error.provenance.contributors] == [f"#{n}" for n in range(1, 7)]
    assert not mesh.calls_to("root")


# --------------------------------------------------------------------------- best of N


async def test_best_of_n_judge_picks_with_reasons_as_json(mesh_of) -> None:  # type: ignore[no-untyped-def]
    verdict = json.dumps({"best": 2, "reasons": "Candidate 2 is correct and complete."})
    mesh = mesh_of(model("judge", replies=[{"match": "Candidate 2:", "reply": verdict}]))
    items = [Item("Seven.", "a", "m1"), Item("Eight: 2, 3, 5, 7, 11, 13, 17, 19.", "b", "m2")]
    result = await BestOfN(BestOfNParams(criteria="correctness")).synthesize(items, mesh.ctx())
    assert result.text == "Eight: 2, 3, 5, 7, 11, 13, 17, 19."
    prov = result.provenance
    assert (prov.selected, prov.decided_by) == (("b",), "judge")
    assert prov.reasons == "Candidate 2 is correct and complete."
    assert [c.stage for c in result.calls] == ["judge"]
    (request,) = mesh.calls_to("judge")
    assert request.response_format is not None
    assert dict(request.response_format.schema or {}) == dict(PICK_BEST_SCHEMA)
    assert "Candidate 1:\nSeven." in last_user(request)
    assert "Criteria: correctness" in last_user(request)
    judge_routes = [r for r in mesh.router.requests if r.role == "merge:judge"]
    assert judge_routes
    assert all("json" in r.capabilities for r in judge_routes)


@pytest.mark.parametrize(
    "answer",
    ['{"best": 3, "reasons": "the third"}', '{"best": "2"}', '["best", 1]', '{"pick": "two"}'],
)
async def test_best_of_n_invalid_judgement_falls_back_to_the_strongest_model(
    mesh_of, answer
) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("judge", reply=answer), model("weak", 1), model("strong", 4))
    items = [Item("From weak.", "a", "weak"), Item("From strong.", "b", "strong")]
    result = await BestOfN().synthesize(items, mesh.ctx())
    assert result.text == "From strong."
    assert result.provenance.decided_by == "strongest"
    assert "judge answer invalid" in result.provenance.reasons
    assert result.provenance.notes
    assert "strongest model (b, strong)" in result.provenance.notes[-1]
    assert len(result.calls) == 1


async def test_best_of_n_cuts_candidates_to_fit_the_judge_window(mesh_of) -> None:  # type: ignore[no-untyped-def]
    verdict = json.dumps({"best": 1, "reasons": "first"})
    mesh = mesh_of(model("judge", window=800, out=100, reply=verdict))
    items = [paragraph(f"c{n}", 40) for n in range(3)]  # ~450 tokens each
    result = await BestOfN().synthesize(items, mesh.ctx(max_output_tokens=100))
    assert result.text == items[0], "the winner is returned whole, not cut"
    assert any("cut to" in n for n in result.provenance.notes)
    mesh.assert_every_request_fits()


# --------------------------------------------------------------------------- resilience, routing


async def test_a_model_failing_mid_synthesis_falls_back_and_the_synthesis_completes(
    mesh_of,
) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("cheap", 1), model("backup", 2), fail_after={"cheap": 1})
    result = await Refine().synthesize([f"item {n}" for n in range(4)], mesh.ctx())
    assert [c.model for c in result.calls] == ["cheap", "backup", "backup"]
    second = result.calls[1]
    assert [(a.model, a.outcome) for a in second.attempts][-1] == ("backup", "ok")
    assert any(a.model == "cheap" and a.error_type == "unavailable" for a in second.attempts)
    assert second.attempts[-1].reason.startswith("fallback after unavailable on cheap")
    assert mesh.slept, "retries backed off (through the injected sleep)"


async def test_a_step_no_model_can_serve_raises_with_the_partial_provenance(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("only", 1), fail_after={"only": 1})
    items = [Item(f"item {n}", f"b{n}", "x") for n in range(3)]
    with pytest.raises(SynthesisError, match="stage 'refine' failed") as info:
        await Refine().synthesize(items, mesh.ctx())
    error = info.value
    assert error.stage == "refine"
    assert error.strategy == "refine"
    assert [(c.ok, c.model) for c in error.calls] == [(True, "only"), (False, None)]
    assert error.calls[-1].error == "unavailable"
    assert error.cost_usd == pytest.approx(error.calls[0].cost_usd)
    assert [c.source for c in error.provenance.contributors] == ["b0", "b1", "b2"]
    assert isinstance(error.__cause__, Exception)


async def test_every_step_is_routed_as_the_merge_node_with_stage_role_run_and_attributes(
    mesh_of,
) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    ctx = mesh.ctx(node="merge_answers", run_id="run-7", task="qa", max_output_tokens=300)
    await TreeSummarize(TreeParams(fan_in=2)).synthesize(["a", "b", "c", "d"], ctx)
    requests = mesh.router.requests
    assert {r.node for r in requests} == {"merge_answers"}
    assert {r.role for r in requests} == {"merge:leaf", "merge:root"}
    assert {(r.run_id, r.task, r.max_output_tokens) for r in requests} == {("run-7", "qa", 300)}
    assert all(r.prompt_tokens and r.prompt_tokens > 0 for r in requests)
    assert mesh.caller.attributes == [
        {
            "agentmesh.synthesis.strategy": "tree_summarize",
            "agentmesh.synthesis.stage": "leaf",
            "agentmesh.synthesis.items": 2,
            "agentmesh.synthesis.level": 0,
        }
    ] * 2 + [
        {
            "agentmesh.synthesis.strategy": "tree_summarize",
            "agentmesh.synthesis.stage": "root",
            "agentmesh.synthesis.items": 2,
            "agentmesh.synthesis.level": 1,
        }
    ]
    assert {r.max_tokens for _, r in mesh.gateway.sent} == {300}


async def test_the_run_budget_applies_to_synthesis_steps(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m", 1), budgets=BudgetLimits(run_usd=0.0001))
    with pytest.raises(SynthesisError, match="budget run:r1") as info:
        await Compact().synthesize(["a" * 50, "b" * 50], mesh.ctx(run_id="r1"))
    assert info.value.stage == "answer"
    assert mesh.gateway.sent == []
    assert "needs up to" in str(info.value)


async def test_the_remaining_node_budget_shrinks_with_each_step(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    await Refine().synthesize(["a", "b", "c"], mesh.ctx(remaining_budget_usd=1.0))
    budgets = [r.remaining_budget_usd for r in mesh.router.requests]
    assert budgets[0] == 1.0
    assert budgets[-1] is not None
    assert budgets[-1] < 1.0


# --------------------------------------------------------------------------- prompts per model


async def test_library_prompts_render_the_variant_of_each_model_tried(mesh_of) -> None:  # type: ignore[no-untyped-def]
    library = PromptLibrary(ROOT / "prompts")
    mesh = mesh_of(
        model("tiny-gemma", 1, family="gemma", reply="A short answer."),
        model("claude-ish", 2, family="claude", reply="A careful answer."),
        fail_after={"tiny-gemma": 1},
    )
    ctx = mesh.ctx(prompts=library, question="Is coffee good for health?")
    result = await Compact(CompactParams(max_pack_tokens=40)).synthesize(
        [paragraph("x", 2), paragraph("y", 2), paragraph("z", 2)], ctx
    )
    gemma_first = mesh.calls_to("tiny-gemma")[0]
    assert gemma_first.prompt is not None
    assert gemma_first.prompt.endswith("Answer:")
    assert gemma_first.stop == ("\nQuestion:", "\n\n")
    claude = mesh.calls_to("claude-ish")
    assert claude, "the fallback to another family was rendered with its own variant"
    assert claude[0].prompt is None
    assert "<material>" in last_user(claude[0])
    assert result.calls[-1].model == "claude-ish"


async def test_packing_counts_the_longest_prompt_variant_of_the_stage(mesh_of) -> None:  # type: ignore[no-untyped-def]
    library = PromptLibrary(ROOT / "prompts")
    mesh = mesh_of(
        model("a-few-shot", 1, family="gemma", window=700, out=80),
        model("b-chatty", 1, family="claude", window=700, out=80),
    )
    items = [Item(paragraph(f"i{n}", 4), f"b{n}") for n in range(8)]
    ctx = mesh.ctx(prompts=library, max_output_tokens=80, token_margin=0.0)
    result = await Compact().synthesize(items, ctx)
    assert len(result.calls) > 1
    assert result.models == ("a-few-shot",), "the longer few-shot prompt is the one sent"
    mesh.assert_every_request_fits()
    assert not [a for c in result.calls for a in c.attempts if a.error_type]


async def test_library_judge_prompt_carries_the_output_schema(mesh_of) -> None:  # type: ignore[no-untyped-def]
    library = PromptLibrary(ROOT / "prompts")
    verdict = json.dumps({"best": 1, "reasons": "right"})
    mesh = mesh_of(model("gpt-ish", family="gpt", reply=verdict))
    result = await BestOfN().synthesize(["one", "two"], mesh.ctx(prompts=library))
    (request,) = mesh.calls_to("gpt-ish")
    assert "### Candidates" in last_user(request)
    assert request.response_format is not None
    assert dict(request.response_format.schema or {}) == dict(PICK_BEST_SCHEMA)
    assert result.provenance.selected == ("#1",)


def test_the_shipped_pick_best_schema_is_the_one_the_code_validates() -> None:
    shipped = json.loads((ROOT / "prompts" / "schemas" / "pick_best.json").read_text())
    assert shipped == json.loads(json.dumps(dict(PICK_BEST_SCHEMA)))


async def test_results_are_json_ready_and_carry_trace_attributes(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    result = await Refine().synthesize([Item("a", "b1", "m"), Item("b", "b2", "m")], mesh.ctx())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["provenance"]["contributors"] == [
        {"source": "b1", "model": "m"},
        {"source": "b2", "model": "m"},
    ]
    assert data["calls"][0]["stage"] == "refine"
    assert data["calls"][0]["attempts"]
    assert data["cost_usd"] == result.cost_usd > 0
    attributes = result.trace_attributes()
    assert attributes["agentmesh.synthesis.strategy"] == "refine"
    assert attributes["agentmesh.synthesis.calls"] == 1
    assert attributes["agentmesh.synthesis.contributors"] == "b1,b2"
    assert attributes["agentmesh.synthesis.models"] == "m"


async def test_step_attributes_reach_the_traced_model_call(mesh_of) -> None:  # type: ignore[no-untyped-def]
    mesh = mesh_of(model("m"))
    items = [Item("alpha", "a", "x"), Item("beta", "b", "y")]
    await Refine().synthesize(items, mesh.ctx(question="Q?"))
    sent = mesh.gateway.attributes[-1]
    assert isinstance(sent, dict)
    assert sent["agentmesh.synthesis.strategy"] == "refine"
    assert sent["agentmesh.synthesis.stage"] == "refine"
    assert sent["agentmesh.attempt"] == 1
    assert sent["agentmesh.node.name"] == mesh.ctx().node
