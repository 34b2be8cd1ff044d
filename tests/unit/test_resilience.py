from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from agentmesh.models import Catalog, Gateway, ModelRequest, ModelSpec
from agentmesh.resilience import (
    BreakerEvent,
    BreakerPolicy,
    Call,
    CallFailed,
    CircuitBreaker,
    DegradePolicy,
    ResiliencePolicy,
    ResilientCaller,
    RetryBudget,
    RetryBudgetPolicy,
    RetryPolicy,
    backoff_delay,
)
from agentmesh.routing import (
    BreakerState,
    BudgetLimits,
    InMemoryRoutingState,
    Policy,
    Router,
    RouteRequest,
)
from agentmesh.testing import scripted_model
from agentmesh.testing.conformance import FakeClock

CHEAPEST = Policy(strategy="cheapest")


class Harness:
    """A caller over scripted models, with a fake clock and a sleep that records."""

    def __init__(
        self,
        *specs: ModelSpec,
        policy: ResiliencePolicy | None = None,
        budgets: BudgetLimits | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.state = InMemoryRoutingState(clock=self.clock)
        self.catalog = Catalog(specs)
        self.gateway = Gateway(self.catalog)
        self.router = Router(self.catalog, state=self.state, budgets=budgets)
        self.slept: list[float] = []
        self.events: list[BreakerEvent] = []
        self.caller = ResilientCaller(
            self.router,
            self.gateway,
            policy,
            clock=self.clock,
            sleep=self._sleep,
            rng=random.Random(7),
            breaker_listeners=[self.events.append],
        )

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += seconds

    async def call(self, routing: Policy = CHEAPEST, **request: object):  # type: ignore[no-untyped-def]
        route = RouteRequest(prompt="hi", **request)  # type: ignore[arg-type]
        return await self.caller.call(Call(route, ModelRequest.of("hi"), routing))

    async def fail(self, routing: Policy = CHEAPEST, **request: object) -> CallFailed:
        with pytest.raises(CallFailed) as info:
            await self.call(routing, **request)
        return info.value


def m(model_id: str, tier: int = 1, **behavior: object) -> ModelSpec:
    fields = {"pricing": {"input": tier, "output": tier}, "context_window": 8000 * tier}
    fields["max_output_tokens"] = 2000
    return scripted_model(model_id, tier=tier, fields=fields, reply=f"from {model_id}", **behavior)


@pytest.fixture
async def closing() -> AsyncIterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for harness in made:
        await harness.gateway.aclose()


def trail(result_or_error) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(a.model, a.error_type or a.outcome) for a in result_or_error.attempts]


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_s=0.1, cap_s=1.0)
    rng = random.Random(1)
    for retry, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (5, 1.0)]:
        delays = [backoff_delay(policy, retry, rng) for _ in range(200)]
        assert all(d is not None and 0 <= d <= ceiling for d in delays)
        assert max(d for d in delays if d is not None) > ceiling * 0.8, "spread over the range"


def test_retry_after_is_a_floor_and_too_long_means_move_on() -> None:
    policy = RetryPolicy(base_s=0.1, cap_s=1.0, max_retry_after_s=10)
    assert backoff_delay(policy, 0, random.Random(1), retry_after=3.0) == 3.0
    assert backoff_delay(policy, 0, random.Random(1), retry_after=30.0) is None


def test_retry_budget_drains_on_failures_and_refills_slowly() -> None:
    budget = RetryBudget(RetryBudgetPolicy(max_tokens=4, token_ratio=0.5))
    assert budget.allows_retry("a")
    budget.on_failure("a")
    assert budget.allows_retry("a")  # 3 > 2
    budget.on_failure("a")
    assert not budget.allows_retry("a")  # 2 is not above half
    budget.on_success("a")
    assert budget.allows_retry("a")  # 2.5
    assert budget.allows_retry("b"), "buckets are per model"


async def test_retryable_errors_retry_with_backoff_then_succeed(closing) -> None:
    h = Harness(m("a", fail_first=2, fail_with="server_error"), m("b", 2))
    closing.append(h)
    result = await h.call()
    assert trail(result) == [("a", "unavailable"), ("a", "unavailable"), ("a", "ok")]
    assert [a.reason for a in result.attempts] == [
        "primary",
        "retry 1 after unavailable",
        "retry 2 after unavailable",
    ]
    assert len(h.slept) == 2
    assert 0 <= h.slept[0] <= 0.2
    assert 0 <= h.slept[1] <= 0.4
    assert result.attempts[2].waited_s == h.slept[1]


async def test_rate_limit_waits_for_retry_after(closing) -> None:
    h = Harness(m("a", fail_first=1, fail_with="rate_limit", retry_after=2.5), m("b", 2))
    closing.append(h)
    result = await h.call()
    assert trail(result) == [("a", "rate_limited"), ("a", "ok")]
    assert h.slept == [2.5]


async def test_retry_after_beyond_the_limit_falls_back_at_once(closing) -> None:
    policy = ResiliencePolicy(retry=RetryPolicy(max_retry_after_s=1))
    h = Harness(m("a", down=True, fail_with="rate_limit", retry_after=60), m("b", 2), policy=policy)
    closing.append(h)
    result = await h.call()
    assert trail(result) == [("a", "rate_limited"), ("b", "ok")]
    assert h.slept == []
    assert result.attempts[1].reason == "fallback after rate_limited on a"


async def test_fallbacks_follow_the_decision_order(closing) -> None:
    h = Harness(m("a", down=True), m("b", 2, down=True), m("c", 3))
    closing.append(h)
    result = await h.call()
    assert [x[0] for x in trail(result)] == ["a"] * 3 + ["b"] * 3 + ["c"]
    assert result.model == "c"
    assert list(result.decision.fallbacks) == ["b", "c"]


@pytest.mark.parametrize("kind", ["auth", "bad_request"])
async def test_client_errors_fail_fast(closing, kind: str) -> None:
    h = Harness(m("a", down=True, fail_with=kind), m("b", 2))
    closing.append(h)
    failure = await h.fail()
    assert len(failure.attempts) == 1
    assert failure.kind in ("auth_error", "bad_request")
    assert h.slept == []


async def test_content_filter_is_never_silently_sent_elsewhere(closing) -> None:
    h = Harness(m("a", down=True, fail_with="content_filter"), m("b", 2))
    closing.append(h)
    failure = await h.fail()
    assert failure.kind == "content_filtered"
    assert trail(failure) == [("a", "content_filtered")]


async def test_content_filter_may_fall_back_when_the_policy_says_so(closing) -> None:
    policy = ResiliencePolicy(on_error={"content_filtered": "fallback"})
    h = Harness(m("a", down=True, fail_with="content_filter"), m("b", 2), policy=policy)
    closing.append(h)
    result = await h.call()
    assert trail(result) == [("a", "content_filtered"), ("b", "ok")]


async def test_context_overflow_goes_to_a_larger_window_only(closing) -> None:
    h = Harness(
        m("small", 1, down=True, fail_with="context_overflow"),
        scripted_model(
            "same", tier=2, fields={"context_window": 8000, "pricing": {"input": 2, "output": 2}}
        ),
        m("big", 3),
    )
    closing.append(h)
    result = await h.call()
    assert trail(result) == [("small", "context_overflow"), ("big", "ok")]


async def test_breaker_opens_after_threshold_and_skips_the_model(closing) -> None:
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(failure_threshold=3, cooldown_s=30)
    )
    h = Harness(m("a", down=True), m("b", 2), policy=policy)
    closing.append(h)
    for _ in range(3):
        await h.call()
    assert [(e.model, e.old, e.new) for e in h.events] == [("a", "closed", "open")]
    assert "3 consecutive failures" in h.events[0].reason
    result = await h.call()
    assert trail(result) == [("b", "ok")]
    assert "circuit open until" in next(e.why for e in result.decision.excluded if e.model == "a")


async def test_breaker_half_opens_after_cooldown_and_closes_on_success(closing) -> None:
    policy = ResiliencePolicy(breaker=BreakerPolicy(cooldown_s=10, half_open_probes=1))
    h = Harness(m("a"), m("b", 2), policy=policy)
    closing.append(h)
    await h.state.set_breaker("a", BreakerState("open", until=h.clock.now + 10, reason="test"))
    assert trail(await h.call()) == [("b", "ok")]
    h.clock.now += 11
    probe = await h.call()
    assert trail(probe) == [("a", "ok")]
    assert "(half-open probe)" in probe.attempts[0].reason
    assert [(e.old, e.new) for e in h.events] == [("open", "half_open"), ("half_open", "closed")]
    assert dict((await h.state.snapshot(["a"])).breakers) == {}


async def test_failed_probe_reopens_the_breaker(closing) -> None:
    policy = ResiliencePolicy(breaker=BreakerPolicy(cooldown_s=10))
    h = Harness(m("a", down=True), m("b", 2), policy=policy)
    closing.append(h)
    await h.state.set_breaker("a", BreakerState("open", until=h.clock.now - 1, reason="test"))
    result = await h.call()
    assert trail(result) == [("a", "unavailable"), ("b", "ok")], "a probe is never retried"
    assert [(e.old, e.new) for e in h.events] == [("open", "half_open"), ("half_open", "open")]
    reopened = (await h.state.snapshot(["a"])).breakers["a"]
    assert reopened.until == pytest.approx(h.clock.now + 10)


async def test_only_one_probe_goes_through_concurrently() -> None:
    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock)
    breaker = CircuitBreaker(state, BreakerPolicy(half_open_probes=1), clock)
    await state.set_breaker("a", BreakerState("open", until=clock.now - 1))
    admissions = await asyncio.gather(*(breaker.admit("a") for _ in range(10)))
    assert sum(a.allowed for a in admissions) == 1
    assert all("half-open" in a.why for a in admissions if not a.allowed)


async def test_client_errors_do_not_count_toward_the_breaker() -> None:
    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock)
    breaker = CircuitBreaker(state, BreakerPolicy(failure_threshold=1), clock)
    stats = await state.observe("a", latency_ms=None, error="bad_request")
    await breaker.on_failure("a", stats, "bad_request", probe=False)
    assert await breaker.is_closed("a")


async def test_retry_budget_stops_retries_in_an_outage(closing) -> None:
    policy = ResiliencePolicy(
        retry_budget=RetryBudgetPolicy(max_tokens=4, token_ratio=0.1),
        breaker=BreakerPolicy(failure_threshold=100),
    )
    h = Harness(m("a", down=True), m("b", 2), policy=policy)
    closing.append(h)
    first = await h.call()
    second = await h.call()
    # 4 tokens: the first failure leaves 3 (> 2, retry), the second 2 (not above half).
    assert trail(first) == [("a", "unavailable"), ("a", "unavailable"), ("b", "ok")]
    assert trail(second) == [("a", "unavailable"), ("b", "ok")], "no retries left in the budget"


async def test_degradation_serves_a_lower_tier_and_says_so(closing) -> None:
    policy = ResiliencePolicy(degrade=DegradePolicy(allow=True, min_tier=1))
    h = Harness(m("cheap", 1), m("strong", 2), policy=policy)
    closing.append(h)
    await h.state.set_breaker(
        "strong", BreakerState("open", until=h.clock.now + 60, reason="outage")
    )
    result = await h.call(Policy(strategy="cheapest", min_tier=2))
    assert result.model == "cheap"
    assert result.degraded
    assert "every capable model is down" in result.degraded_reason
    assert "strong: circuit open" in result.degraded_reason
    assert result.to_dict()["degraded"] is True


async def test_without_degradation_the_error_lists_why(closing) -> None:
    h = Harness(m("cheap", 1), m("strong", 2))
    closing.append(h)
    await h.state.set_breaker(
        "strong", BreakerState("open", until=h.clock.now + 60, reason="outage")
    )
    failure = await h.fail(Policy(strategy="cheapest", min_tier=2))
    assert failure.kind == "no_route"
    assert "strong: circuit open" in str(failure)
    assert "cheap: tier 1 below minimum 2" in str(failure)


async def test_every_attempt_is_recorded_with_cost_and_tokens(closing) -> None:
    h = Harness(m("a", fail_first=1), m("b", 2))
    closing.append(h)
    result = await h.call()
    ok = result.attempts[-1]
    assert ok.outcome == "ok"
    assert ok.input_tokens > 0
    assert ok.output_tokens > 0
    assert ok.cost_usd == result.response.cost_usd == result.cost_usd
    data = result.to_dict()
    assert data["model"] == "a"
    assert [a["outcome"] for a in data["attempts"]] == ["error", "ok"]
    stats = (await h.state.snapshot(["a"])).stats["a"]
    assert (stats.calls, stats.errors) == (2, 1)


async def test_node_deadline_bounds_the_whole_call(closing) -> None:
    slow = m("a", latency_ms=300)
    h = Harness(slow, policy=ResiliencePolicy(deadline_s=0.05))
    closing.append(h)
    failure = await h.fail()
    assert failure.kind == "timeout"
    assert "deadline of 0.05 s" in str(failure.error)


async def test_a_call_cut_off_by_its_deadline_keeps_its_hold_until_the_lease(closing) -> None:
    slow = m("a", latency_ms=300)
    budgets = BudgetLimits(global_usd=100.0, lease_s=60.0)
    h = Harness(slow, policy=ResiliencePolicy(deadline_s=0.05), budgets=budgets)
    closing.append(h)
    assert (await h.fail()).kind == "timeout"
    held = (await h.state.snapshot([], budget_keys=["global"])).spent["global"]
    assert held > 0, "the cut-off call may be billed: its worst case stays held"
    assert h.router._open == {}, "the router forgets it (nothing piles up)"
    h.clock.now += 61.0
    assert (await h.state.snapshot([], budget_keys=["global"])).spent["global"] == 0.0


def test_policy_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="on_error: unknown error kinds"):
        ResiliencePolicy.from_mapping({"on_error": {"meltdown": "retry"}}, source="p.yaml")
    with pytest.raises(ValueError, match=r"p.yaml: retry.max_attempts"):
        ResiliencePolicy.from_mapping({"retry": {"max_attempts": 0}}, source="p.yaml")
    policy = ResiliencePolicy.from_mapping({"on_error": {"timeout": "fail"}})
    assert policy.action("timeout") == "fail"
    assert policy.action("rate_limited") == "retry"


async def test_call_until_escalates_with_feedback_and_scores(closing) -> None:
    from agentmesh.resilience import Verdict, call_until

    h = Harness(m("weak", 1), m("mid", 2), m("top", 3))
    closing.append(h)
    seen: list[list[str]] = []

    def check(response) -> Verdict:  # type: ignore[no-untyped-def]
        return Verdict(response.model_id == "top", score=0.2, feedback="cite a source")

    original = h.gateway.invoke

    async def spy(model_id, request, **kwargs):  # type: ignore[no-untyped-def]
        seen.append([str(msg.content) for msg in request.messages])
        return await original(model_id, request, **kwargs)

    h.gateway.invoke = spy  # type: ignore[method-assign]
    outcome = await call_until(
        h.caller,
        Call(
            RouteRequest(prompt="hi", task="qa"), ModelRequest.of("hi"), Policy(strategy="cascade")
        ),
        check,
    )
    assert outcome.status == "accepted"
    assert [(r.level, r.result.model if r.result else None) for r in outcome.rounds] == [
        (0, "weak"),
        (1, "mid"),
        (2, "top"),
    ]
    assert seen[0] == ["hi"]
    assert seen[1][1] == "from weak"
    assert "cite a source" in seen[1][2]
    table = await h.state.quality_table()
    assert table["qa"]["weak"].count == 1
    assert table["qa"]["top"].total == pytest.approx(0.2)


async def test_call_until_gives_up_after_max_rounds(closing) -> None:
    from agentmesh.resilience import call_until

    h = Harness(m("weak", 1), m("mid", 2), m("top", 3))
    closing.append(h)
    outcome = await call_until(
        h.caller,
        Call(RouteRequest(prompt="hi"), ModelRequest.of("hi"), Policy(strategy="cascade")),
        lambda response: False,
        max_rounds=2,
    )
    assert outcome.status == "gave_up"
    assert len(outcome.rounds) == 2
    assert outcome.final is not None
    assert outcome.final.model == "mid"


async def test_call_until_stops_when_nothing_stronger_is_left(closing) -> None:
    from agentmesh.resilience import call_until

    h = Harness(m("only", 1))
    closing.append(h)
    outcome = await call_until(
        h.caller,
        Call(RouteRequest(prompt="hi"), ModelRequest.of("hi"), Policy(strategy="cascade")),
        lambda response: False,
        max_rounds=5,
    )
    assert outcome.status == "gave_up"
    assert [r.error for r in outcome.rounds] == [None, "no_route"]


async def test_request_builder_is_called_for_each_model_tried(closing) -> None:
    h = Harness(m("a", down=True, fail_with="timeout"), m("b", 2))
    closing.append(h)
    built: list[str] = []

    def build(spec: ModelSpec) -> ModelRequest:
        built.append(spec.id)
        return ModelRequest.of(f"variant for {spec.id}")

    result = await h.caller.call(Call(RouteRequest(prompt="hi"), build, CHEAPEST))
    assert built == ["a", "b"], "once per model, retries reuse the request"
    assert result.model == "b"


async def test_a_non_probe_success_does_not_close_an_open_breaker() -> None:
    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock)
    breaker = CircuitBreaker(state, BreakerPolicy(), clock)
    opened = BreakerState("open", until=clock.now + 30, reason="outage")
    await state.set_breaker("a", opened)
    await breaker.on_success("a", probe=False)  # a call admitted before it opened
    assert (await state.snapshot(["a"])).breakers["a"] == opened


async def test_a_late_non_probe_failure_does_not_restart_the_cooldown() -> None:
    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock)
    breaker = CircuitBreaker(state, BreakerPolicy(cooldown_s=10), clock)
    await state.set_breaker("a", BreakerState("open", until=clock.now - 1))
    assert (await breaker.admit("a")).probe
    probing = (await state.snapshot(["a"])).breakers["a"]
    stats = await state.observe("a", latency_ms=None, error="timeout")
    await breaker.on_failure("a", stats, "timeout", probe=False)
    assert (await state.snapshot(["a"])).breakers["a"] == probing


async def test_an_abandoned_probe_expires_and_a_new_probe_is_allowed() -> None:
    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock)
    breaker = CircuitBreaker(state, BreakerPolicy(cooldown_s=10, half_open_probes=1), clock)
    await state.set_breaker("a", BreakerState("open", until=clock.now - 1))
    assert (await breaker.admit("a")).probe  # ...and it never reports back
    assert not (await breaker.admit("a")).allowed
    clock.now += 11
    assert (await breaker.admit("a")).probe, "the permit expired after the cooldown"


async def test_a_cancelled_probe_reopens_the_breaker(closing) -> None:
    policy = ResiliencePolicy(breaker=BreakerPolicy(cooldown_s=10), deadline_s=0.05)
    h = Harness(m("a", latency_ms=300), m("b", 2), policy=policy)
    closing.append(h)
    await h.state.set_breaker("a", BreakerState("open", until=h.clock.now - 1, reason="x"))
    failure = await h.fail()
    assert failure.kind == "timeout"
    after = (await h.state.snapshot(["a"])).breakers["a"]
    assert (after.state, after.reason) == ("open", "probe abandoned")


async def test_retry_after_lengthens_the_cooldown() -> None:
    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock)
    breaker = CircuitBreaker(state, BreakerPolicy(failure_threshold=1, cooldown_s=5), clock)
    stats = await state.observe("a", latency_ms=None, error="rate_limited")
    await breaker.on_failure("a", stats, "rate_limited", probe=False, retry_after=60)
    assert (await state.snapshot(["a"])).breakers["a"].until == clock.now + 60


async def test_no_retry_after_the_breaker_opened_during_the_backoff(closing) -> None:
    policy = ResiliencePolicy(breaker=BreakerPolicy(failure_threshold=100))
    h = Harness(m("a", down=True), m("b", 2), policy=policy)
    closing.append(h)

    async def sleep_while_another_caller_opens_it(seconds: float) -> None:
        await h.state.set_breaker("a", BreakerState("open", until=h.clock.now + 60, reason="x"))

    h.caller._sleep = sleep_while_another_caller_opens_it
    result = await h.call()
    assert trail(result) == [("a", "unavailable"), ("b", "ok")]


async def test_a_failed_probe_reopens_and_the_cooldown_starts_again(
    closing: list[Harness],
) -> None:
    """open -> probe fails -> open for a whole new cooldown (skipped) -> probe again -> closed."""
    policy = ResiliencePolicy(breaker=BreakerPolicy(cooldown_s=10, half_open_probes=1))
    h = Harness(m("a", fail_first=1), m("b", 2), policy=policy)  # a's first call fails
    closing.append(h)
    opened_at = h.clock.now
    await h.state.set_breaker("a", BreakerState("open", until=opened_at + 10, reason="test"))
    h.clock.now = opened_at + 25  # long past the first cooldown: the next call probes
    failed = await h.call()
    assert trail(failed) == [("a", "unavailable"), ("b", "ok")]
    assert "(half-open probe)" in failed.attempts[0].reason
    reopened = (await h.state.snapshot(["a"])).breakers["a"]
    assert reopened.state == "open"
    assert reopened.until == pytest.approx(h.clock.now + 10), "a whole cooldown from the failure"
    assert reopened.reason == "probe failed: unavailable"
    probe_failed_at = h.clock.now

    h.clock.now = probe_failed_at + 9.5  # inside the new cooldown: a is not even tried
    skipped = await h.call()
    assert trail(skipped) == [("b", "ok")]
    assert "circuit open" in next(e.why for e in skipped.decision.excluded if e.model == "a")

    h.clock.now = probe_failed_at + 10.5  # the new cooldown is over: probe, and it recovers
    recovered = await h.call()
    assert trail(recovered) == [("a", "ok")]
    assert [(e.old, e.new) for e in h.events] == [
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert dict((await h.state.snapshot(["a"])).breakers) == {}


async def test_a_failed_probe_with_retry_after_waits_the_longer_of_the_two() -> None:
    clock = FakeClock()
    state = InMemoryRoutingState(clock=clock)
    breaker = CircuitBreaker(state, BreakerPolicy(cooldown_s=10, half_open_probes=1), clock)
    await state.set_breaker("a", BreakerState("open", until=clock.now - 1, reason="test"))
    assert (await breaker.admit("a")).probe
    assert not (await breaker.admit("a")).allowed, "one probe at a time"
    stats = await state.observe("a", latency_ms=None, error="rate_limited")
    await breaker.on_failure("a", stats, "rate_limited", probe=True, retry_after=60)
    reopened = (await state.snapshot(["a"])).breakers["a"]
    assert reopened.state == "open"
    assert reopened.until == pytest.approx(clock.now + 60)
    clock.now += 59
    assert not (await breaker.admit("a")).allowed
    clock.now += 2
    assert (await breaker.admit("a")).probe
