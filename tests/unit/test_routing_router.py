from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.models import Catalog, Gateway
from agentmesh.resilience import LLMClassifier, ResilientCaller
from agentmesh.routing import (
    InMemoryRoutingState,
    MatrixError,
    Outcome,
    Policy,
    QualityCell,
    Router,
    RouteRequest,
    RoutingMatrix,
    RuleClassifier,
    load_policy,
)
from agentmesh.testing import scripted_model

from .routing_helpers import catalog, route, spec

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")


@pytest.mark.parametrize(
    ("prompt", "task"),
    [
        ("Solve the equation 3x + 5 = 20", "math"),
        ("Fix this bug in my Python function:\n```def f(x): return x +```", "code"),
        ("Extract the fields name and email as JSON", "extraction"),
        ("Summarize this article in three key points", "summarization"),
        ("Translate 'good morning' in French", "translation"),
        ("Write a short poem about the sea", "writing"),
        ("Hello there", "general"),
    ],
)
async def test_rule_classifier_tasks(prompt: str, task: str) -> None:
    verdict = await RuleClassifier().classify(prompt)
    assert verdict.task == task
    assert verdict.source == "rules"


async def test_rule_classifier_complexity_levels() -> None:
    rules = RuleClassifier()
    assert (await rules.classify("Capital of France?")).level == "low"
    hard = "Analyze the trade-offs, prove the bound and justify the design step by step. " * 5
    verdict = await rules.classify(hard)
    assert verdict.level == "high"
    assert 0.6 <= verdict.complexity <= 1.0


async def test_llm_classifier_asks_a_cheap_model_through_the_router() -> None:
    judge = scripted_model(
        "judge", reply='{"task": "math", "complexity": "high"}', fields={"pricing": {"output": 1}}
    )
    pricey = scripted_model("pricey", tier=3, fields={"pricing": {"output": 50}})
    models = Catalog([judge, pricey])
    state = InMemoryRoutingState()
    async with Gateway(models) as gateway:
        classifier = LLMClassifier(_caller(Router(models, state=state), gateway))
        verdict = await classifier.classify("what is 2+2")
        assert (verdict.task, verdict.level, verdict.source) == ("math", "high", "llm:judge")
        router = Router(models, state=state, classifier=classifier)
        decision = await router.route(RouteRequest(prompt="what is 2+2"), Policy(strategy="task"))
        assert decision.task == "math"
    stats = (await state.snapshot(["judge"])).stats["judge"]
    assert stats.calls == 2, "each classification call is recorded like any other"


async def _no_sleep(_: float) -> None:
    return None


def _caller(router: Router, gateway: Gateway) -> ResilientCaller:
    """The classifier's own call path: the resilient caller over a rules-classifying router."""
    return ResilientCaller(router, gateway, sleep=_no_sleep)


async def test_llm_classifier_falls_back_to_rules_and_says_why() -> None:
    down = scripted_model("down", down=True, fail_with="timeout")
    models = Catalog([down])
    async with Gateway(models) as gateway:
        verdict = await LLMClassifier(_caller(Router(models), gateway)).classify("Solve 3x = 9")
    assert verdict.task == "math"
    assert verdict.source == "rules (llm fallback)"
    assert "no classifier answer (timeout)" in verdict.evidence
    assert "down (timeout)" in verdict.evidence, "every attempt is named"


async def test_llm_classifier_rejects_unparseable_answers() -> None:
    chatty = scripted_model("chatty", reply='{"guess": "I think it is maths"}')
    models = Catalog([chatty])
    async with Gateway(models) as gateway:
        verdict = await LLMClassifier(_caller(Router(models), gateway)).classify("Solve 3x = 9")
    assert verdict.source == "rules (llm fallback)"
    assert "chatty answered" in verdict.evidence


def test_matrix_blends_prior_with_observations() -> None:
    matrix = RoutingMatrix(prior_weight=4)
    s = spec("m", quality={"math": 0.8})
    assert matrix.estimate(s, "math", None) == 0.8
    assert matrix.estimate(s, "math", QualityCell(total=2.0, count=4)) == pytest.approx(0.65)
    assert matrix.estimate(spec("bare"), "math", None) == 0.5


async def test_matrix_file_round_trip(tmp_path: Path) -> None:
    state = InMemoryRoutingState()
    await state.add_quality("math", "a", 1.5, 2)
    await state.add_quality("code", "b", 0.9)
    path = tmp_path / "matrix.json"
    await RoutingMatrix(prior_weight=3).save(state, path)
    document = json.loads(path.read_text())
    assert document["cells"]["math"]["a"] == {"mean": 0.75, "count": 2}
    fresh = InMemoryRoutingState()
    loaded = await RoutingMatrix.load(path, fresh)
    assert loaded.prior_weight == 3
    table = await fresh.quality_table()
    assert table["math"]["a"] == QualityCell(1.5, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ('{"format": "other"}', "not a routing matrix"),
        ('{"format": "agentmesh-routing-matrix", "cells": []}', "'cells' must be a mapping"),
        (
            '{"format": "agentmesh-routing-matrix", '
            '"cells": {"m": {"a": {"mean": 2, "count": 1}}}}',
            "mean in",
        ),
        ('{"format": "agentmesh-routing-matrix", "cells": {"m": {"a": {}}}}', "numeric"),
    ],
)
async def test_bad_matrix_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(MatrixError, match=message):
        await RoutingMatrix.load(path, InMemoryRoutingState())


async def test_record_feeds_statistics_back() -> None:
    router = Router(catalog(spec("a")))
    decision = await route(router)
    await router.record(decision, Outcome("a", latency_ms=120.0))
    await router.record(decision, Outcome("a", error="rate_limited"))
    stats = (await router.state.snapshot(["a"])).stats["a"]
    assert (stats.calls, stats.errors, stats.ewma_latency_ms) == (2, 1, 120.0)


async def test_decision_explains_itself_as_json() -> None:
    router = Router(catalog(spec("a", caps=()), spec("b")))
    decision = await route(router, require=frozenset({"json"}), node="plan", role="planner")
    data = decision.to_dict()
    assert data["chosen"] == "b"
    assert data["strategy"] == "cheapest"
    assert data["excluded"] == [{"model": "a", "why": "lacks json", "by": "capability"}]
    assert data["candidates"][0]["model"] == "b"
    assert (data["node"], data["role"]) == ("plan", "planner")
    assert data["decision_id"]


def test_empty_catalog_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        Router(Catalog([]))


def test_policy_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("strategy: consensus\nmin_tier: 2\nrequire: [json]\nparams: {k: 2}\n")
    policy = load_policy(path)
    assert (policy.strategy, policy.min_tier, policy.params) == ("consensus", 2, {"k": 2})
    path.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="a policy is a mapping"):
        load_policy(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_route_explains_the_decision(capsys) -> None:
    code, out, _ = run(capsys, "route", "--models", SIM, "--strategy", "cheapest", "--prompt", "hi")
    assert code == 0
    assert out.splitlines()[0] == "chosen:    sim-nano"
    assert "reason:    cheapest capable" in out


def test_cli_route_json(capsys) -> None:
    code, out, _ = run(
        capsys,
        "route",
        "--models",
        SIM,
        "--strategy",
        "task",
        "--prompt",
        "Solve 3x+5=20",
        "--json",
    )
    data = json.loads(out)
    assert code == 0
    assert data["chosen"] == "sim-opus"
    assert data["task"] == "math"
    assert {"chosen", "strategy", "reason", "candidates", "excluded", "fallbacks"} <= set(data)
    assert data["candidates"][0] == {"model": "sim-opus", "score": 0.9, "note": "quality 0.90"}


def test_cli_route_with_a_policy_file(capsys, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("strategy: cheapest\nmin_tier: 3\n")
    code, out, _ = run(
        capsys, "route", "--models", SIM, "--policy", str(policy), "--prompt", "hi", "--json"
    )
    data = json.loads(out)
    assert code == 0
    assert data["chosen"] == "sim-4o"
    assert {"model": "sim-nano", "why": "tier 1 below minimum 3", "by": "tier"} in data["excluded"]


def test_cli_route_no_route_lists_exclusions(capsys) -> None:
    code, out, _ = run(
        capsys,
        "route", "--models", str(ROOT / "models" / "local.yaml"),
        "--strategy", "cheapest", "--prompt", "hi", "--require", "tools", "--json",
    )  # fmt: skip
    assert code == 1
    data = json.loads(out)
    assert data["error"]["type"] == "NoRoute"
    assert data["excluded"] == [{"model": "gemma", "why": "lacks tools", "by": "capability"}]


def test_cli_route_bad_policy_is_a_usage_error(capsys, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("strategy: fastest\n")
    code, _, err = run(capsys, "route", "--models", SIM, "--policy", str(policy), "--prompt", "x")
    assert code == 2
    assert "unknown strategy 'fastest'" in err
    assert "p.yaml" in err


async def test_a_request_s_run_budget_replaces_the_router_s_per_run_limit() -> None:
    from agentmesh.routing import BudgetExceeded, BudgetLimits

    router = Router(catalog(spec("a", price=(1.0, 2.0))), budgets=BudgetLimits(run_usd=100.0))
    # worst case: 1000 prompt + 1000 output tokens = $0.003
    first = await route(router, run_id="r", run_budget_usd=0.004)
    assert first.budget_keys == ("run:r",)
    with pytest.raises(BudgetExceeded, match=r"run:r"):
        await route(router, run_id="r", run_budget_usd=0.004)
    other = await route(router, run_id="other")  # the router's own limit applies
    assert other.chosen == "a"


async def test_an_unrecorded_decision_s_reservation_lapses_after_the_budget_lease() -> None:
    from agentmesh.routing import BudgetExceeded, BudgetLimits
    from agentmesh.testing.conformance import FakeClock

    clock = FakeClock()
    router = Router(
        catalog(spec("a", price=(1.0, 2.0))),
        state=InMemoryRoutingState(clock=clock),
        budgets=BudgetLimits(global_usd=0.004, lease_s=60.0),
    )
    first = await route(router)  # worst case $0.003, held for 60 s
    with pytest.raises(BudgetExceeded, match="global"):
        await route(router)
    clock.now += 61.0  # the process that held it never settled (e.g. it was killed)
    second = await route(router)
    await router.record(second, Outcome(model="a", latency_ms=1.0, cost_usd=0.001))
    clock.now += 3600.0  # a settled cost never lapses
    spent = (await router.state.snapshot([], budget_keys=["global"])).spent["global"]
    assert spent == pytest.approx(0.001)
    assert first.decision_id != second.decision_id


def test_budget_lease_must_be_positive() -> None:
    from agentmesh.routing import BudgetLimits

    with pytest.raises(ValueError, match="lease_s"):
        BudgetLimits(lease_s=0)


def test_route_and_ask_read_a_policy_file_with_the_same_loader(capsys, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("strategy: cheapest\nmin_tier: 3\nresilience: {retry: {max_attempts: 2}}\n")
    for command in ("route", "ask"):
        code, out, err = run(
            capsys, command, "--models", SIM, "--policy", str(policy), "--prompt", "hi", "--json"
        )
        assert code == 0, f"{command}: {err}"
        data = json.loads(out)
        assert data.get("chosen", data.get("model")) == "sim-4o", command
    policy.write_text("strategy: cheapest\nresilience: {retry: {max_attempts: 0}}\n")
    for command in ("route", "ask"):
        code, _, err = run(
            capsys, command, "--models", SIM, "--policy", str(policy), "--prompt", "x"
        )
        assert code == 2, command
        assert "p.yaml resilience: retry.max_attempts" in err, command
