"""The semantic cache step, with the scripted (simulated, bag-of-words) embedder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.models import Catalog, ModelRequest
from agentmesh.resilience import Call, ResilientCaller
from agentmesh.resilience.semantic import guard_signature, namespace_of
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing import scripted_model

from .test_response_cache import CountingGateway
from .test_tracing_support import by_name, span_fixture

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
EMBED = scripted_model("embed", fields={"kind": "embeddings", "model": "hash-bow"})
SEMANTIC = {"model": "embed", "threshold": 0.8}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def _caller(
    *specs: Any, finish: str | None = None, embed: Any = EMBED
) -> tuple[ResilientCaller, CountingGateway]:
    chat = specs or (
        scripted_model("m", reply="answer to: {prompt}", fields={"pricing": {"input": 1}}),
    )
    catalog = Catalog([*chat, *((embed,) if embed is not None else ())])
    gateway = CountingGateway(catalog, finish)
    return ResilientCaller(Router(catalog), gateway), gateway


def _call(prompt: str, *, node: str = "n", system: str | None = None, **policy: Any) -> Call:
    routing = Policy(semantic_cache=policy.pop("semantic", SEMANTIC), **policy)
    return Call(
        RouteRequest(prompt=prompt, node=node),
        ModelRequest.of(prompt, system=system),
        routing=routing,
    )


async def test_a_paraphrase_is_served_the_stored_answer_free_and_traced(spans) -> None:
    caller, gateway = _caller()
    first = await caller.call(_call("How do I reset my password?"))
    second = await caller.call(_call("How can I reset my password?"))  # cosine 5/6 = 0.83
    assert gateway.calls == 1
    assert second.cached
    assert second.cost_usd == 0.0
    assert second.response.text == first.response.text == "answer to: How do I reset my password?"
    assert second.to_dict()["attempts"][-1]["cached"] is True
    lookups = [s for s in by_name(spans, "cache m") if s.attributes.get("agentmesh.cache.semantic")]
    assert [s.attributes["agentmesh.cache.hit"] for s in lookups] == [False, True]
    assert lookups[1].attributes["agentmesh.cache.similarity"] == pytest.approx(5 / 6, abs=1e-6)
    assert lookups[1].attributes["agentmesh.cache.saved_usd"] == pytest.approx(first.cost_usd)
    assert len(by_name(spans, "embeddings hash-bow")) == 2  # one per lookup, none to store


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("What is 12 times 7 exactly please", "What is 12 times 8 exactly please"),  # 0.86
        ("Is the store open on sunday", "Is the store not open on sunday"),  # 0.93
        ("Refund order 12 please", "Refund order 12 please 3 times"),  # extra number
        ("Can I pay by card here", "Can't I pay by card here"),  # n't
    ],
)
async def test_near_misses_with_other_numbers_or_negations_are_never_served(
    stored: str, asked: str
) -> None:
    caller, gateway = _caller()
    await caller.call(_call(stored))
    again = await caller.call(_call(asked, semantic={**SEMANTIC, "threshold": 0.6}))
    assert not again.cached
    assert gateway.calls == 2
    assert again.response.text == f"answer to: {asked}"


async def test_without_the_guard_a_near_miss_would_share_an_answer(spans) -> None:
    caller, _ = _caller()
    loose = {**SEMANTIC, "guard": False}
    await caller.call(_call("What is 12 times 7 exactly please", semantic=loose))
    wrong = await caller.call(_call("What is 12 times 8 exactly please", semantic=loose))
    assert wrong.cached  # the bag of words cannot tell them apart: the guard is what does
    assert wrong.response.text == "answer to: What is 12 times 7 exactly please"


async def test_other_nodes_system_prompts_and_models_never_share_an_answer() -> None:
    two = (
        scripted_model("m", reply="m: {prompt}"),
        scripted_model("m2", reply="m2: {prompt}"),
    )
    caller, gateway = _caller(*two)
    prompt = "How do I reset my password?"
    await caller.call(_call(prompt))
    await caller.call(_call(prompt, node="other"))
    await caller.call(_call(prompt, system="Answer in French."))
    await caller.call(_call(prompt, strategy="cascade", params={"ladder": ["m2", "m"]}))
    assert gateway.calls == 4
    assert (await caller.call(_call(prompt, node="other"))).cached


async def test_what_the_exact_cache_refuses_is_not_cached_semantically() -> None:
    for finish in ("length", "content_filter"):
        caller, gateway = _caller(finish=finish)
        await caller.call(_call("How do I reset my password?"))
        await caller.call(_call("How do I reset my password?"))
        assert gateway.calls == 2, finish
    caller, gateway = _caller()
    await caller.call(_call("How do I reset my password?", cache=False))
    sampled = _call("How do I reset my password?")
    sampled = replace(sampled, request=replace(sampled.request, temperature=0.7))
    await caller.call(sampled)
    await caller.call(sampled)
    assert gateway.calls == 3


async def test_the_entry_setting_applies_and_a_broken_embedder_is_a_miss(spans) -> None:
    entry = scripted_model("m", reply="ok", fields={"semantic_cache": SEMANTIC})
    caller, gateway = _caller(entry)
    plain = Call(RouteRequest(prompt="hi there"), ModelRequest.of("hi there"))
    await caller.call(plain)
    assert (await caller.call(plain)).cached
    down = scripted_model("embed", down=True, fields={"kind": "embeddings"})
    caller, gateway = _caller(entry, embed=down)
    for _ in range(2):
        assert not (await caller.call(plain)).cached
    assert gateway.calls == 2
    failed = [s for s in by_name(spans, "cache m") if s.attributes.get("error.type")]
    assert failed
    assert {s.attributes["error.type"] for s in failed} == {"embeddings_failed"}


def test_the_guard_reads_numbers_in_order_and_negations() -> None:
    assert guard_signature("Refund 1,200 euros, not 12") == (("1200", "12"), ("not",))
    assert guard_signature("from 3 to 5") != guard_signature("from 5 to 3")
    assert guard_signature("I don't know") == ((), ("don't",))
    assert guard_signature("I don\u2019t know") == guard_signature("I don't know")


def test_the_namespace_ignores_only_the_last_user_message() -> None:
    base = ModelRequest.of("one question", system="be brief")
    same = namespace_of("m", "n", "embed", base)
    assert same == namespace_of("m", "n", "embed", ModelRequest.of("another", system="be brief"))
    others = {
        namespace_of("m2", "n", "embed", base),
        namespace_of("m", "n2", "embed", base),
        namespace_of("m", "n", "embed2", base),
        namespace_of("m", "n", "embed", ModelRequest.of("one question", system="be long")),
        namespace_of("m", "n", "embed", replace(base, max_tokens=5)),
        namespace_of("m", "n", "embed", replace(base, labels={"agentmesh.prompt.hash": "x"})),
    }
    assert same not in others
    assert len(others) == 6


async def test_a_graph_step_served_by_the_semantic_cache_says_cached() -> None:
    from agentmesh.graph import Runtime, Workflow, run_graph
    from agentmesh.prompts import PromptLibrary

    catalog = Catalog([scripted_model("m", fields={"pricing": {"input": 1}}), EMBED])
    wf = Workflow("semantic", policy=Policy(semantic_cache=SEMANTIC))
    wf.executor("answer", prompt="execute_step", inputs={"question": "$input", "step": "answer"})
    prompts = PromptLibrary(PROMPTS)
    async with Runtime.open(catalog, prompts=prompts) as rt:
        first = await run_graph(wf.spec(), rt, "how do I reset my password")
        second = await run_graph(wf.spec(), rt, "how can I reset my password")
        other = await run_graph(wf.spec(), rt, "how do I reset my password 2 times")
    assert first.steps[0]["cached"] is False
    assert second.steps[0]["cached"] is True
    assert second.cost_usd == 0
    assert other.steps[0]["cached"] is False  # another number: the guard
