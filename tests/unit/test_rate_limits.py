"""Client-side rate limits per catalog entry (issue: gateway controls, 2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentmesh.models import CatalogError, Gateway, ModelRequest, ModelResponse, load_catalog
from agentmesh.models._http import parse_retry_after
from agentmesh.resilience import Call, CallFailed, RateLimiter, ResiliencePolicy, ResilientCaller
from agentmesh.routing import Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model


def _spec(model_id: str, *, price: float, limits: dict[str, Any] | None = None, **behavior: Any):
    fields: dict[str, Any] = {"pricing": {"input": price, "output": price}}
    if limits is not None:
        fields["limits"] = limits
    return scripted_model(model_id, fields=fields, **behavior)


class Sleeps:
    """A fake sleep that records what the caller asked to wait."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def _caller(*specs: Any, sleep: Any = None, **kw: Any) -> ResilientCaller:
    catalog = scripted_catalog(*specs)
    extra = {"sleep": sleep} if sleep is not None else {}
    return ResilientCaller(Router(catalog), Gateway(catalog), **extra, **kw)


def _call(prompt: str = "hi", max_tokens: int = 16) -> Call:
    return Call(
        RouteRequest(prompt=prompt, max_output_tokens=max_tokens),
        ModelRequest.of(prompt, max_tokens=max_tokens),
    )


async def test_a_saturated_model_is_skipped_by_the_router_when_another_fits() -> None:
    caller = _caller(
        _spec("cheap", price=1, limits={"rpm": 1}),
        _spec("dear", price=5),
    )
    first = await caller.call(_call())
    second = await caller.call(_call())
    assert first.model == "cheap"
    assert second.model == "dear"
    excluded = {e.model: (e.by, e.why) for e in second.decision.excluded}
    assert excluded["cheap"] == (
        "rate_limited_locally",
        "rate_limited_locally: rpm 1 per 60 s reached",
    )


async def test_when_no_other_model_fits_the_caller_waits_up_to_max_wait() -> None:
    sleeps = Sleeps()
    caller = _caller(_spec("only", price=1, limits={"rpm": 1, "max_wait": 2}), sleep=sleeps)
    await caller.call(_call())
    with pytest.raises(CallFailed) as failed:
        await caller.call(_call())
    assert failed.value.kind == "rate_limited"
    attempt = failed.value.attempts[-1]
    assert attempt.outcome == "skipped"
    assert attempt.message.startswith("rate_limited_locally: still full after max_wait 2.00 s")
    assert sum(sleeps.slept) == pytest.approx(2.0)
    assert failed.value.spend.cost_usd == 0  # nothing was sent


async def test_a_wait_that_frees_a_slot_admits_the_call() -> None:
    caller = _caller(_spec("only", price=1, limits={"rpm": 1, "window_s": 1, "max_wait": 5}))
    await caller.call(_call())
    loop = asyncio.get_running_loop()
    started = loop.time()
    served = await caller.call(_call())
    assert served.model == "only"
    assert served.attempts[-1].waited_s > 0  # the wait is on the record
    assert loop.time() - started >= 0.5  # the moving window really held it back


class Concurrency(Gateway):
    """Counts calls in flight."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.now = 0
        self.peak = 0

    async def invoke(self, model_id: str, request: ModelRequest, **kw: Any) -> ModelResponse:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await super().invoke(model_id, request, **kw)
        finally:
            self.now -= 1


async def test_concurrency_bounds_the_calls_in_flight() -> None:
    catalog = scripted_catalog(
        _spec("only", price=1, limits={"concurrency": 2, "max_wait": 10}, latency_ms=20)
    )
    gateway = Concurrency(catalog)
    caller = ResilientCaller(Router(catalog), gateway)
    served = await asyncio.gather(*(caller.call(_call(f"q{i}")) for i in range(6)))
    assert len(served) == 6
    assert gateway.peak == 2


async def test_tokens_per_window_count_the_prompt_and_the_output_cap() -> None:
    caller = _caller(
        _spec("cheap", price=1, limits={"tpm": 100}),
        _spec("dear", price=5),
    )
    assert (await caller.call(_call(max_tokens=60))).model == "cheap"
    second = await caller.call(_call(max_tokens=60))
    assert second.model == "dear"
    assert any("tpm 100 per 60 s" in e.why for e in second.decision.excluded)


async def test_a_providers_retry_after_feeds_the_limiter() -> None:
    limiter = RateLimiter()
    caller = _caller(
        _spec(
            "cheap",
            price=1,
            limits={"rpm": 1000},
            fail_first=1,
            fail_with="rate_limit",
            retry_after=30,
        ),
        _spec("dear", price=5),
        limiter=limiter,
        resilience=ResiliencePolicy(retry={"max_attempts": 1}),
    )
    first = await caller.call(_call())
    assert [a.model for a in first.attempts] == ["cheap", "dear"]
    saturated = await limiter.saturated(caller.router.catalog.specs, 10)
    assert saturated["cheap"].startswith("provider asked to wait 3")
    second = await caller.call(_call())
    assert second.model == "dear"
    assert "cheap" in {e.model for e in second.decision.excluded}


def test_x_ratelimit_reset_headers_say_how_long_to_wait() -> None:
    exhausted = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"}
    assert parse_retry_after(exhausted) == 90
    tokens = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "250ms"}
    assert parse_retry_after(tokens) == pytest.approx(0.25)
    left = {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "10s"}
    assert parse_retry_after(left) is None
    assert parse_retry_after({**exhausted, "retry-after": "2"}) == 2


def test_bad_limits_in_a_catalog_name_the_entry_and_the_field(tmp_path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n  - id: m\n    provider: scripted\n    model: m\n    limits: {rpm: 0}\n"
    )
    with pytest.raises(CatalogError, match=r"limits\.rpm"):
        load_catalog(path)
