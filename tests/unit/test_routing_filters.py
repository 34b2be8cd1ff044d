from __future__ import annotations

import pytest

from agentmesh.routing import (
    BreakerState,
    BudgetExceeded,
    BudgetLimits,
    InMemoryRoutingState,
    NoRoute,
    Outcome,
    Policy,
    Router,
    RouteRequest,
)
from agentmesh.testing.conformance import FakeClock

from .routing_helpers import catalog, ids, route, spec, why


async def test_capability_filter_names_what_is_missing() -> None:
    router = Router(catalog(spec("plain", caps=()), spec("json", caps=("json",))))
    decision = await route(router, require=frozenset({"json"}))
    assert decision.chosen == "json"
    assert why(decision, "plain") == "lacks json"
    with pytest.raises(NoRoute, match="plain: lacks json, tools; json: lacks tools"):
        await route(router, capabilities=frozenset({"json", "tools"}))


async def test_capabilities_from_request_and_policy_add_up() -> None:
    router = Router(catalog(spec("j", caps=("json",)), spec("jt", caps=("json", "tools"))))
    decision = await route(router, require=frozenset({"json"}), capabilities=frozenset({"tools"}))
    assert decision.chosen == "jt"
    assert why(decision, "j") == "lacks tools"


async def test_context_window_must_hold_prompt_and_output() -> None:
    router = Router(catalog(spec("small", window=1500, price=(0.1, 0.1)), spec("big", window=8000)))
    decision = await route(router, prompt_tokens=1000, max_output_tokens=1000)
    assert decision.chosen == "big"
    assert why(decision, "small") == "context window 1500 < 1000 prompt + 1000 output tokens"
    fits = await route(router, prompt_tokens=400, max_output_tokens=1000)
    assert fits.chosen == "small"


async def test_output_is_capped_by_the_models_own_maximum() -> None:
    router = Router(catalog(spec("m", window=3000, max_out=500)))
    decision = await route(router, prompt_tokens=2000, max_output_tokens=4000)
    assert decision.chosen == "m"  # 2000 + min(4000, 500) fits in 3000


async def test_tier_bounds_from_policy_and_request_take_the_stricter() -> None:
    router = Router(catalog(*(spec(f"t{t}", tier=t, price=(t, t)) for t in (1, 2, 3, 4))))
    decision = await route(router, min_tier=2)  # a policy bound
    assert decision.chosen == "t2"
    assert why(decision, "t1") == "tier 1 below minimum 2"
    capped = await route(router, max_tier=3)
    assert why(capped, "t4") == "tier 4 above maximum 3"


async def test_escalation_raises_the_minimum_tier() -> None:
    router = Router(catalog(*(spec(f"t{t}", tier=t, price=(t, t)) for t in (1, 2, 3))))
    decision = await route(router, escalation=1)
    assert decision.chosen == "t2"
    assert why(decision, "t1") == "tier 1 below minimum 2 (escalation 1)"
    with pytest.raises(NoRoute, match="below minimum 6"):
        await route(router, escalation=5)


async def test_allow_and_deny_tags() -> None:
    router = Router(
        catalog(
            spec("local", tags=("local",), price=(0.1, 0.1)),
            spec("eu", tags=("eu", "cloud")),
            spec("us", tags=("us", "cloud"), price=(0.5, 0.5)),
        )
    )
    decision = await route(router, deny_tags=frozenset({"local"}))
    assert decision.chosen == "us"
    assert why(decision, "local") == "tagged local (denied)"
    allowed = await route(router, allow_tags=frozenset({"eu"}))
    assert allowed.chosen == "eu"
    assert why(allowed, "us") == "has none of the allowed tags eu"


async def test_open_circuit_excludes_until_it_may_be_probed() -> None:
    clock = FakeClock(1_700_000_000.0)
    state = InMemoryRoutingState(clock=clock)
    router = Router(catalog(spec("a", price=(0.1, 0.1)), spec("b")), state=state)
    await state.set_breaker("a", BreakerState("open", until=clock.now + 60, reason="5 failures"))
    decision = await route(router)
    assert decision.chosen == "b"
    assert why(decision, "a") == "circuit open until 22:14:20 UTC: 5 failures"
    clock.now += 61
    assert (await route(router)).chosen == "a"


async def test_latency_slo_uses_observed_p95_and_lets_unknown_models_through() -> None:
    state = InMemoryRoutingState()
    router = Router(catalog(spec("slow", price=(0.1, 0.1)), spec("fast"), spec("new")), state=state)
    for _ in range(5):
        await state.observe("slow", latency_ms=900.0, error=None)
        await state.observe("fast", latency_ms=100.0, error=None)
    decision = await route(router, latency_slo_ms=500)
    assert why(decision, "slow") == "p95 latency 900 ms above SLO 500 ms"
    assert set(ids(decision)) == {"fast", "new"}


async def test_quality_floor_uses_task_priors() -> None:
    router = Router(
        catalog(
            spec("weak", quality={"default": 0.9, "math": 0.4}, price=(0.1, 0.1)),
            spec("strong", quality={"math": 0.8}),
        )
    )
    decision = await route(router, task="math", quality_floor=0.7)
    assert decision.chosen == "strong"
    assert why(decision, "weak") == "quality 0.40 for math below floor 0.70"
    assert (await route(router, task="poetry", quality_floor=0.7)).chosen == "weak"


async def test_per_call_cost_limit() -> None:
    router = Router(catalog(spec("pricey", price=(10, 10)), spec("ok", price=(1, 1))))
    decision = await route(router, strategy="task", max_cost_usd=0.005, task="x")
    assert decision.chosen == "ok"
    assert why(decision, "pricey") == "worst-case cost $0.020000 above per-call limit $0.005000"


async def test_caller_exclusions() -> None:
    router = Router(catalog(spec("a", price=(0.1, 0.1)), spec("b")))
    decision = await route(router, exclude=frozenset({"a"}))
    assert decision.chosen == "b"
    assert "already tried" in why(decision, "a")


async def test_no_eligible_model_lists_every_exclusion() -> None:
    router = Router(catalog(spec("a", caps=()), spec("b", tier=1, caps=("json",), window=10)))
    with pytest.raises(NoRoute) as info:
        await route(router, node="extract", require=frozenset({"json"}))
    message = str(info.value)
    assert "no model can serve node 'extract'" in message
    assert "a: lacks json" in message
    assert "b: context window 10 < 1000 prompt + 10 output tokens" in message
    assert [e.model for e in info.value.excluded] == ["a", "b"]


async def test_budget_filter_and_budget_exceeded_name_the_run_and_amount() -> None:
    router = Router(
        catalog(spec("a", price=(1, 1)), spec("b", price=(2, 2))),
        budgets=BudgetLimits(run_usd=0.003),
    )
    first = await route(router, run_id="r1")  # a costs 0.002 worst case
    assert first.chosen == "a"
    assert first.reserved_usd == pytest.approx(0.002)
    with pytest.raises(BudgetExceeded) as info:
        await route(router, run_id="r1")
    error = info.value
    assert error.scope == "run:r1"
    assert error.needed_usd == pytest.approx(0.002)
    assert error.remaining_usd == pytest.approx(0.001)
    assert error.limit_usd == pytest.approx(0.003)
    assert error.spent_usd == pytest.approx(0.002)
    assert "budget run:r1 of $0.003000 ($0.002000 spent) exceeded" in str(error)
    assert "needs up to $0.002000, $0.001000 is left" in str(error)
    other_run = await route(router, run_id="r2")
    assert other_run.chosen == "a"


async def test_settling_returns_unused_reservation() -> None:
    router = Router(catalog(spec("a", price=(1, 1))), budgets=BudgetLimits(global_usd=0.003))
    decision = await route(router)
    await router.record(decision, Outcome("a", latency_ms=5, cost_usd=0.0005))
    again = await route(router)  # 0.0005 spent + 0.002 reserved <= 0.003
    await router.release(again)
    spent = (await router.state.snapshot([], budget_keys=["global"])).spent["global"]
    assert spent == pytest.approx(0.0005)


async def test_caller_remaining_budget_is_honoured() -> None:
    router = Router(catalog(spec("a", price=(1, 1)), spec("b", price=(3, 3))))
    with pytest.raises(BudgetExceeded) as info:
        await route(router, remaining_budget_usd=0.001)
    assert info.value.scope == "caller"


async def test_a_model_s_own_token_count_sets_its_cost_and_window_check() -> None:
    router = Router(
        catalog(spec("counted", window=600, price=(1e6, 0)), spec("estimated", window=600)),
        budgets=BudgetLimits(run_usd=100.0),
    )
    request = RouteRequest(
        prompt="x",
        prompt_tokens=1000,  # the conservative estimate: too big for either window
        prompt_tokens_by_model={"counted": 20},  # what counted's own tokenizer says
        max_output_tokens=10,
        run_id="r",
    )
    decision = await router.route(request, Policy(strategy="cheapest"))
    assert decision.chosen == "counted"
    assert decision.reserved_usd == pytest.approx(20.0), "20 tokens at $1 each, not 1000"
    assert "1000 prompt" in why(decision, "estimated")
