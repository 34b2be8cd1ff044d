"""What the fast decision path keeps: same numbers, same contracts, bounded memory."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from agentmesh.models import ModelSpec
from agentmesh.models import tokens as token_module
from agentmesh.models.tokens import estimate_tokens
from agentmesh.routing import Policy, Ranking, Router, RouteRequest, Snapshot
from agentmesh.routing.constraints import Constraints
from agentmesh.routing.context import RouteContext
from agentmesh.routing.filters import (
    DEFAULT_FILTERS,
    CapabilityFilter,
    LatencyFilter,
    QualityFloorFilter,
    TagFilter,
    TierFilter,
)
from agentmesh.routing.router import _TOKEN_CACHE_MAX_CHARS, _TOKEN_CACHE_SIZE
from agentmesh.routing.types import RouteDecision

from .routing_helpers import catalog, spec


def _router(**kwargs: object) -> Router:
    window = 10_000
    return Router(catalog(spec("a", window=window), spec("b", window=window)), **kwargs)  # type: ignore[arg-type]


async def test_a_prompt_routed_again_is_estimated_once_with_the_same_count() -> None:
    router = _router()
    prompt = "Solve 3x + 5 = 20 and explain each step."
    first = await router.route(RouteRequest(prompt=prompt, max_output_tokens=10))
    again = await router.route(RouteRequest(prompt=prompt, max_output_tokens=10))
    assert router._prompt_tokens == {prompt: estimate_tokens(prompt) + 8}
    assert first.candidates[0].note == again.candidates[0].note


async def test_the_token_estimate_cache_is_bounded_and_skips_long_prompts() -> None:
    router = _router()
    for i in range(_TOKEN_CACHE_SIZE + 20):
        await router.route(RouteRequest(prompt=f"prompt number {i}", max_output_tokens=10))
    assert len(router._prompt_tokens) == _TOKEN_CACHE_SIZE
    assert "prompt number 0" not in router._prompt_tokens, "the oldest went first"
    assert f"prompt number {_TOKEN_CACHE_SIZE + 19}" in router._prompt_tokens
    long = "word " * (_TOKEN_CACHE_MAX_CHARS // 5 + 1)
    await router.route(RouteRequest(prompt=long, max_output_tokens=10))
    assert long not in router._prompt_tokens


def _split_tokens(text: str) -> int:
    """The ASCII estimate as first written: words and letters counted with split/count."""
    raw = text.encode("ascii")
    words_only = raw.translate(token_module._SEPARATORS, token_module._SYMBOLS)
    words = len(words_only.split())
    letters = len(words_only) - words_only.count(b" ") - words_only.count(b"\n")
    return len(raw) - len(words_only) + max(words, round(1.27 * words - 0.029 * letters))


@pytest.mark.parametrize(
    "text",
    [
        "one",
        " leading and trailing \n",
        "tabs\tand\rreturns\x0bvertical\x0cfeeds",
        "file\x1cgroup\x1drecord\x1eunit\x1fseparators",
        "  many   spaces\n\n\nnewlines  ",
        "3 + 4 = 7, (x) [y] {z}!",
        "\x00nul\x7fdel",
        "....",
        "word " * 300,
    ],
)
def test_the_word_count_without_split_gives_the_same_estimate(text: str) -> None:
    assert estimate_tokens(text) == _split_tokens(text)


class _Counting:
    """A third-party filter without ``applies``: asked on every decision."""

    name: ClassVar[str] = "counting"

    def __init__(self) -> None:
        self.asked = 0

    def active(self, ctx: RouteContext) -> bool:
        self.asked += 1
        return False

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        return None


class _NeverApplies(_Counting):
    name: ClassVar[str] = "never"

    def applies(self, constraints: Constraints) -> bool:
        return False


async def test_a_filter_whose_applies_is_false_is_never_asked_active() -> None:
    plain, skipped = _Counting(), _NeverApplies()
    router = _router(filters=(*DEFAULT_FILTERS, plain, skipped))
    for _ in range(3):
        await router.route(RouteRequest(max_output_tokens=10))
    await router.route(RouteRequest(max_output_tokens=10, capabilities=frozenset({"json"})))
    assert (plain.asked, skipped.asked) == (4, 0)


@pytest.mark.parametrize(
    ("check", "bounds", "applies"),
    [
        (CapabilityFilter(), {}, False),
        (CapabilityFilter(), {"require": frozenset({"json"})}, True),
        (TagFilter(), {}, False),
        (TagFilter(), {"deny_tags": frozenset({"x"})}, True),
        (TagFilter(), {"allow_tags": frozenset({"x"})}, True),
        (LatencyFilter(), {}, False),
        (LatencyFilter(), {"latency_slo_ms": 100.0}, True),
        (QualityFloorFilter(), {}, False),
        (QualityFloorFilter(), {"quality_floor": 0.5}, True),
        (TierFilter(), {}, True),  # escalation may raise the floor on any request
        (TierFilter(escalate=False), {}, False),
        (TierFilter(escalate=False), {"max_tier": 2}, True),
    ],
)
def test_built_in_filters_say_when_a_policy_s_bounds_leave_them_nothing(
    check: object, bounds: dict[str, object], applies: bool
) -> None:
    base: dict[str, object] = {
        "min_tier": None,
        "max_tier": None,
        "require": frozenset(),
        "allow_tags": frozenset(),
        "deny_tags": frozenset(),
        "quality_floor": None,
        "latency_slo_ms": None,
        "max_cost_usd": None,
    }
    constraints = Constraints(**(base | bounds))  # type: ignore[arg-type]
    assert check.applies(constraints) is applies  # type: ignore[attr-defined]


async def test_tier_filter_still_excludes_under_escalation_on_a_plain_policy() -> None:
    router = Router(catalog(spec("low", tier=1), spec("high", tier=2)))
    decision = await router.route(RouteRequest(max_output_tokens=10, escalation=1), Policy())
    assert decision.chosen == "high"
    assert [e.by for e in decision.excluded] == ["tier"]


async def test_decisions_rankings_and_snapshots_stay_frozen_dataclasses() -> None:
    decision = await _router().route(RouteRequest(max_output_tokens=10))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.chosen = "b"  # type: ignore[misc]
    other = dataclasses.replace(decision, chosen="b", fallbacks=())
    assert (other.chosen, list(other.fallbacks), other.reason) == ("b", [], decision.reason)
    assert other != decision
    assert dataclasses.replace(other, chosen=decision.chosen, fallbacks=decision.fallbacks) == (
        decision
    )
    assert [f.name for f in dataclasses.fields(RouteDecision)][:3] == [
        "chosen",
        "strategy",
        "reason",
    ]
    ranking = Ranking(ranked=decision.candidates, reason="r", selected=("a",))
    assert (ranking.excluded, ranking.selected) == ((), ("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ranking.reason = "s"  # type: ignore[misc]
    one, two = Snapshot(), Snapshot(counter=3)
    assert one.stats == {}
    assert one.stats is not two.stats, "a fresh dict per snapshot"
    assert (two.counter, two.now) == (3, 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.now = 1.0  # type: ignore[misc]
