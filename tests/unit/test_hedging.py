"""Delayed hedged requests (issue: gateway controls, 3), on the scripted pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.models import Gateway, ModelRequest
from agentmesh.resilience import Call, CallResult, ResilientCaller
from agentmesh.routing import BudgetLimits, Policy, PolicyError, Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model

from .test_tracing_support import one, span_fixture

PRICE = {"pricing": {"input": 1000.0, "output": 2000.0}}  # USD per 1M: visible sums


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def _pool(slow_ms: float, **slow: Any) -> tuple[ResilientCaller, Router]:
    catalog = scripted_catalog(
        scripted_model("first", fields={**PRICE, "tier": 1}, latency_ms=slow_ms, **slow),
        scripted_model("second", fields={**PRICE, "tier": 2}, latency_ms=1),
    )
    router = Router(catalog, budgets=BudgetLimits(run_usd=1.0))
    return ResilientCaller(router, Gateway(catalog)), router


def _call(hedge: dict[str, Any] | None, prompt: str = "hello there") -> Call:
    policy = Policy.from_mapping({"strategy": "cheapest", "hedge": hedge} if hedge else {})
    return Call(
        RouteRequest(prompt=prompt, max_output_tokens=8, run_id="r1"),
        ModelRequest.of(prompt, max_tokens=8),
        routing=policy,
    )


async def test_a_slow_first_model_is_raced_and_the_loser_cancelled_and_charged(spans) -> None:
    caller, router = _pool(slow_ms=5000)
    result = await caller.call(_call({"after_ms": 20}))
    assert result.model == "second"
    loser, winner = result.attempts
    assert (loser.model, loser.outcome) == ("first", "cancelled")
    assert loser.reason == "hedge race lost to second"
    assert loser.spend.input_tokens > 0
    assert loser.spend.output_tokens == 0
    assert loser.cost_usd > 0
    assert (winner.model, winner.outcome) == ("second", "ok")
    assert winner.reason.startswith("hedge after 20 ms without an answer from first")
    span = one(spans, "hedge first")
    assert span.attributes["agentmesh.hedge.model"] == "second"
    assert span.attributes["agentmesh.hedge.winner"] == "second"
    assert span.attributes["agentmesh.hedge.after_ms"] == 20
    # Both calls were reserved and both are charged: the run's spend is their sum.
    spent = (await router.state.snapshot((), budget_keys=["run:r1"])).spent["run:r1"]
    assert spent == pytest.approx(result.cost_usd)
    assert result.cost_usd == pytest.approx(loser.cost_usd + winner.cost_usd)


async def test_a_first_model_that_answers_in_time_is_not_hedged(spans) -> None:
    caller, _ = _pool(slow_ms=1)
    result = await caller.call(_call({"after_ms": 5000}))
    assert [a.model for a in result.attempts] == ["first"]
    span = one(spans, "hedge first")
    assert "agentmesh.hedge.model" not in span.attributes
    assert span.attributes["agentmesh.hedge.winner"] == "first"


async def test_without_a_hedge_policy_the_slow_model_is_waited_for() -> None:
    caller, _ = _pool(slow_ms=60)
    result = await caller.call(_call(None))
    assert [a.model for a in result.attempts] == ["first"]


async def test_p95_hedges_only_once_the_model_has_a_p95() -> None:
    caller, _ = _pool(slow_ms=30)
    first = await caller.call(_call({"after_ms": "p95"}))
    assert [a.model for a in first.attempts] == ["first"]  # no p95 yet: no hedge


async def test_a_failing_first_model_falls_back_as_without_a_hedge() -> None:
    caller, _ = _pool(slow_ms=1, down=True)
    result = await caller.call(_call({"after_ms": 5000}))
    assert result.model == "second"
    assert [a.outcome for a in result.attempts][-1] == "ok"


def test_a_bad_hedge_is_an_error_naming_the_field() -> None:
    with pytest.raises(PolicyError, match=r"hedge\.after_ms"):
        Policy.from_mapping({"hedge": {"after_ms": -5}}, source="p.yaml")


async def test_a_streamed_call_is_won_by_the_first_model_to_send_a_token() -> None:
    caller, router = _pool(slow_ms=5000)
    items = [item async for item in caller.stream(_call({"after_ms": 20}))]
    *deltas, result = items
    assert isinstance(result, CallResult)
    assert result.model == "second"
    assert "".join(str(d) for d in deltas) == result.response.text
    assert [(a.model, a.outcome) for a in result.attempts] == [
        ("first", "cancelled"),
        ("second", "ok"),
    ]
    assert result.attempts[1].reason.endswith("(streamed)")
    spent = (await router.state.snapshot((), budget_keys=["run:r1"])).spent["run:r1"]
    assert spent == pytest.approx(result.cost_usd)


async def test_a_stream_whose_first_model_answers_in_time_is_not_hedged() -> None:
    caller, _ = _pool(slow_ms=1)
    items = [item async for item in caller.stream(_call({"after_ms": 5000}))]
    result = items[-1]
    assert isinstance(result, CallResult)
    assert [a.model for a in result.attempts] == ["first"]
