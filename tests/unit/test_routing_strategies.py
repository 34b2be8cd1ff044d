from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.routing import (
    STRATEGIES,
    BudgetLimits,
    InMemoryRoutingState,
    LearnedModel,
    NoRoute,
    Outcome,
    Policy,
    PolicyError,
    Router,
)

from .routing_helpers import catalog, ids, route, spec, why

TIERS = catalog(
    spec("t1", tier=1, price=(0.1, 0.4), family="gpt", quality={"default": 0.5, "math": 0.3}),
    spec("t2", tier=2, price=(1, 4), family="claude", quality={"default": 0.7, "math": 0.6}),
    spec("t3", tier=3, price=(3, 15), family="gpt", quality={"default": 0.85, "math": 0.9}),
    spec("t4", tier=4, price=(15, 75), family="gemini", quality={"default": 0.9, "math": 0.88}),
)


def test_registry_has_every_strategy_of_the_issue() -> None:
    assert set(STRATEGIES) == {
        "round_robin",
        "least_latency",
        "cheapest",
        "quality_per_cost",
        "task",
        "complexity",
        "budget",
        "cascade",
        "consensus",
        "learned",
    }


async def test_cheapest_picks_lowest_worst_case_and_orders_fallbacks() -> None:
    decision = await route(Router(TIERS), "cheapest")
    assert decision.chosen == "t1"
    assert list(decision.fallbacks) == ["t2", "t3", "t4"]
    assert decision.reason == "cheapest capable: t1 ($0.000500 worst case)"


async def test_ties_break_on_cost_then_tier_then_id() -> None:
    twins = catalog(
        spec("b", price=(1, 1)), spec("a", price=(1, 1)), spec("c", tier=2, price=(1, 1))
    )
    assert ids(await route(Router(twins), "cheapest")) == ["a", "b", "c"]
    assert ids(await route(Router(twins), "task", task="x")) == ["a", "b", "c"]


async def test_round_robin_rotates_by_weight() -> None:
    router = Router(catalog(spec("a"), spec("b"), spec("c")))
    policy = Policy(strategy="round_robin", params={"weights": {"a": 2}})
    chosen = [(await router.route(_req(), policy)).chosen for _ in range(8)]
    assert chosen == ["a", "a", "b", "c", "a", "a", "b", "c"]


async def test_round_robin_rotations_are_per_node() -> None:
    router = Router(catalog(spec("a"), spec("b")))
    policy = Policy(strategy="round_robin")
    first = (await router.route(_req(node="n1"), policy)).chosen
    other = (await router.route(_req(node="n2"), policy)).chosen
    assert first == other == "a"


async def test_least_latency_uses_ewma_or_p95_and_explores_unknown_models() -> None:
    state = InMemoryRoutingState()
    router = Router(catalog(spec("steady"), spec("spiky"), spec("new")), state=state)
    for ms in [100.0] * 19:
        await state.observe("steady", latency_ms=ms, error=None)
    for ms in [50.0] * 18 + [2000.0]:
        await state.observe("spiky", latency_ms=ms, error=None)
    explored = await route(router, "least_latency")
    assert explored.chosen == "new"
    assert "explored first" in explored.reason
    ewma = await route(router, "least_latency", params={"explore": False})
    assert ids(ewma)[:2] == ["steady", "spiky"]  # one 2 s spike lifts spiky's EWMA above 100
    p95 = await route(router, "least_latency", params={"metric": "p95", "explore": False})
    assert ids(p95)[:2] == ["steady", "spiky"]
    assert ids(p95)[-1] == "new"


async def test_quality_per_cost_prefers_value() -> None:
    decision = await route(Router(TIERS), "quality_per_cost", task="math")
    assert decision.chosen == "t1"  # 0.3 quality at $0.0005 beats 0.6 at $0.005
    pricey = catalog(
        spec("good", price=(1, 1), quality={"default": 0.9}),
        spec("bad", price=(0.9, 0.9), quality={"default": 0.1}),
    )
    assert (await route(Router(pricey), "quality_per_cost")).chosen == "good"


async def test_task_strategy_classifies_then_picks_best_quality() -> None:
    decision = await route(Router(TIERS), "task", prompt="Solve the equation 3x + 5 = 20")
    assert decision.task == "math"
    assert decision.chosen == "t3"
    assert "task 'math' (rules)" in decision.reason
    given = await route(Router(TIERS), "task", task="poetry", prompt="Solve 2+2")
    assert given.task == "poetry"
    assert given.chosen == "t4"  # default priors: 0.9 beats 0.85


async def test_complexity_maps_levels_to_tiers() -> None:
    router = Router(TIERS)
    easy = await route(router, "complexity", prompt="Capital of France?")
    assert easy.chosen == "t1"
    assert "(low) -> tier 1" in easy.reason
    hard_prompt = (
        "Analyze and compare the trade-offs of three designs step by step, prove the bound, "
        "and justify the plan. " * 6
    )
    hard = await route(router, "complexity", prompt=hard_prompt)
    assert hard.chosen == "t3"
    custom = await route(
        router, "complexity", prompt="Capital of France?", params={"tiers": {"low": 2}}
    )
    assert custom.chosen == "t2"


async def test_complexity_prefers_a_stronger_neighbour_when_its_tier_is_missing() -> None:
    gap = catalog(spec("t1", tier=1), spec("t3", tier=3), spec("t4", tier=4))
    decision = await route(Router(gap), "complexity", prompt="x", params={"tiers": {"low": 2}})
    assert ids(decision) == ["t3", "t1", "t4"]


async def test_budget_strategy_downgrades_as_the_budget_is_used() -> None:
    router = Router(TIERS, budgets=BudgetLimits(run_usd=1.0))
    fresh = await route(router, "budget", run_id="r", task="math")
    assert fresh.chosen == "t3"
    await router.release(fresh)
    await router.state.reserve([("run:r", 1.0)], 0.6)
    half = await route(router, "budget", run_id="r", task="math")
    assert half.chosen == "t2"
    assert why(half, "t3") == "budget run:r 60% used: tier 3 above 2"
    await router.release(half)
    await router.state.reserve([("run:r", 1.0)], 0.25)
    late = await route(router, "budget", run_id="r", task="math")
    assert late.chosen == "t1"
    assert "tiers <= 1" in late.reason


async def test_budget_strategy_without_budgets_is_best_quality() -> None:
    decision = await route(Router(TIERS), "budget", task="math")
    assert decision.chosen == "t3"
    assert decision.reason.startswith("no budget set")


async def test_cascade_climbs_one_rung_per_escalation() -> None:
    router = Router(TIERS)
    rungs = [(await route(router, "cascade", escalation=e)).chosen for e in range(4)]
    assert rungs == ["t1", "t2", "t3", "t4"]
    second = await route(router, "cascade", escalation=1)
    assert list(second.fallbacks) == ["t3", "t4"]
    assert why(second, "t1") == "cascade rung 1 is below escalation level 1"
    with pytest.raises(NoRoute, match="t4: cascade rung 4 is below escalation level 4"):
        await route(router, "cascade", escalation=4)


async def test_cascade_with_an_explicit_ladder() -> None:
    decision = await route(Router(TIERS), "cascade", params={"ladder": ["t2", "t4"]})
    assert decision.chosen == "t2"
    assert why(decision, "t1") == "not on the cascade ladder"
    assert list(decision.fallbacks) == ["t4"]


async def test_consensus_selects_k_diverse_models() -> None:
    decision = await route(Router(TIERS), "consensus", task="math", params={"k": 3})
    assert decision.selected == ("t3", "t4", "t2")  # best gpt, gemini, claude
    assert decision.chosen == "t3"
    assert "across family claude, gemini, gpt" in decision.reason
    by_quality = await route(
        Router(TIERS), "consensus", task="math", params={"k": 2, "diverse_by": "none"}
    )
    assert by_quality.selected == ("t3", "t4")
    few = await route(Router(TIERS), "consensus", max_tier=1, params={"k": 3})
    assert few.selected == ("t1",)
    assert "only 1 eligible" in few.reason


async def test_learned_strategy_reads_its_model_file(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    LearnedModel(features=("math",), weights=(10.0,), bias=-2.0, threshold=0.5).save(path)
    router = Router(TIERS)
    strong = await route(
        router, "learned", prompt="solve 3 + 4 = x", params={"model_file": str(path)}
    )
    assert strong.chosen == "t4"
    assert "p(strong)=" in strong.reason
    assert "strongest" in strong.reason
    weak = await route(router, "learned", prompt="hello there", params={"model_file": str(path)})
    assert weak.chosen == "t1"
    forced = await route(
        router, "learned", prompt="hello", params={"model_file": str(path), "threshold": 0.0}
    )
    assert forced.chosen == "t4"


def test_learned_model_round_trips_and_rejects_bad_files(tmp_path: Path) -> None:
    model = LearnedModel(features=("math", "code"), weights=(1.0, -1.0), bias=0.5, threshold=0.4)
    path = tmp_path / "m.json"
    model.save(path)
    assert LearnedModel.load(path) == model
    assert 0 < model.score("def f(): return 1") < model.score("solve 2 + 2")
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    with pytest.raises(ValueError, match="not a learned router"):
        LearnedModel.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="unknown features"):
        LearnedModel(features=("telepathy",), weights=(1.0,), bias=0.0)
    with pytest.raises(ValueError, match="1 features but 2 weights"):
        LearnedModel(features=("math",), weights=(1.0, 2.0), bias=0.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"strategy": "fastest"}, "unknown strategy 'fastest'"),
        ({"strategy": "consensus", "params": {"k": 1}}, "k"),
        ({"strategy": "cheapest", "params": {"x": 1}}, "x"),
        ({"strategy": "cheapest", "min_tier": 3, "max_tier": 2}, "min_tier 3 is above max_tier 2"),
        ({"strategy": "cheapest", "require": ["telepathy"]}, "require"),
        ({"strategy": "cheapest", "colour": "red"}, "colour"),
        ({"strategy": "learned", "params": {}}, "model_file"),
    ],
)
def test_bad_policies_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        Policy.from_mapping(data, source="graphs/x.yaml nodes.plan.policy")
    assert str(info.value).startswith("graphs/x.yaml nodes.plan.policy:")


async def test_recorded_judge_scores_move_the_task_choice() -> None:
    router = Router(TIERS)
    before = await route(router, "task", task="math")
    assert before.chosen == "t3"
    for _ in range(20):
        await router.record(before, Outcome("t3", latency_ms=10, quality=0.1))
    after = await route(router, "task", task="math")
    assert after.chosen == "t4"


def _req(**fields: object):  # type: ignore[no-untyped-def]
    from .routing_helpers import request

    return request(**fields)
