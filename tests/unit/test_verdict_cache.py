"""Cached routing verdicts (issue: gateway controls, 1: cached routing decisions)."""

from __future__ import annotations

import asyncio

import pytest

from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.routing.classify import Classification, RuleClassifier
from agentmesh.routing.verdict_cache import CachedClassifier
from agentmesh.testing import scripted_catalog, scripted_model


class Counting:
    """The rules, counting how often they are asked (and able to stall)."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def classify(self, text: str) -> Classification:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return await RuleClassifier().classify(text)


async def test_an_identical_prompt_reuses_the_verdict_within_the_ttl() -> None:
    now = [0.0]
    inner = Counting()
    cached = CachedClassifier(inner, ttl_s=60, clock=lambda: now[0])
    first = await cached.classify("Solve 3x + 5 = 20 for x")
    again = await cached.classify("Solve 3x + 5 = 20 for x")
    assert inner.calls == 1
    assert (again.task, again.complexity) == (first.task, first.complexity)
    assert again.evidence.endswith("cached verdict")
    await cached.classify("Write a haiku about rain")
    assert inner.calls == 2  # another prompt is classified
    now[0] += 61
    await cached.classify("Solve 3x + 5 = 20 for x")
    assert inner.calls == 3  # expired
    assert (cached.hits, cached.misses) == (1, 3)


async def test_concurrent_identical_prompts_share_one_classification() -> None:
    inner = Counting()
    inner.gate = asyncio.Event()
    cached = CachedClassifier(inner)
    waiting = [asyncio.create_task(cached.classify("same prompt")) for _ in range(5)]
    await asyncio.sleep(0)
    inner.gate.set()
    verdicts = await asyncio.gather(*waiting)
    assert inner.calls == 1
    assert len({v.task for v in verdicts}) == 1


async def test_a_router_with_cached_verdicts_classifies_each_prompt_once() -> None:
    inner = Counting()
    catalog = scripted_catalog(scripted_model("a", tier=1), scripted_model("b", tier=2))
    router = Router(
        catalog, classifier=CachedClassifier(inner), policy=Policy(strategy="complexity")
    )
    for _ in range(3):
        decision = await router.route(RouteRequest(prompt="Prove that sqrt(2) is irrational"))
        assert decision.chosen in ("a", "b")
    assert inner.calls == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        CachedClassifier(RuleClassifier(), ttl_s=0)
