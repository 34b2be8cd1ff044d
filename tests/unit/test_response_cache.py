"""The exact response cache: one step of the attempt routine (issue: gateway controls, 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh import tracing
from agentmesh.cli import main
from agentmesh.graph import Runtime, Workflow, run_graph
from agentmesh.models import Catalog, Gateway, ModelRequest, ModelResponse
from agentmesh.models.types import ResponseFormat, ToolSpec
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience import (
    CachedAnswer,
    CacheError,
    Call,
    CallFailed,
    MemoryCache,
    ResilientCaller,
    open_cache,
)
from agentmesh.resilience.cache import cache_key, cacheable
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model

from .test_tracing_support import by_name, span_fixture

REPO = Path(__file__).resolve().parents[2]
PRICED = {"pricing": {"input": 1.0, "output": 2.0}}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


class CountingGateway(Gateway):
    """A real gateway counting the calls that reach a model (and able to rewrite answers)."""

    def __init__(self, catalog: Catalog, finish: str | None = None) -> None:
        super().__init__(catalog)
        self.calls = 0
        self.finish = finish

    async def invoke(self, model_id: str, request: ModelRequest, **kw: Any) -> ModelResponse:
        self.calls += 1
        response = await super().invoke(model_id, request, **kw)
        return replace(response, finish_reason=self.finish) if self.finish else response  # type: ignore[arg-type]


def _caller(
    *specs: Any, cache: Any = None, finish: str | None = None
) -> tuple[ResilientCaller, CountingGateway]:
    catalog = scripted_catalog(*(specs or (scripted_model("m", fields=PRICED),)))
    gateway = CountingGateway(catalog, finish)
    return ResilientCaller(Router(catalog), gateway, cache=cache), gateway


def _call(prompt: str = "hello", policy: Policy | None = None, **request: Any) -> Call:
    return Call(RouteRequest(prompt=prompt), ModelRequest.of(prompt, **request), routing=policy)


def test_the_key_covers_everything_that_shapes_the_answer() -> None:
    base = ModelRequest.of("hi", system="be brief", max_tokens=10)
    key = cache_key("m", base)
    assert key == cache_key("m", ModelRequest.of("hi", system="be brief", max_tokens=10))
    variants = [
        ("m2", base),
        ("m", ModelRequest.of("hi!", system="be brief", max_tokens=10)),
        ("m", ModelRequest.of("hi", system="be terse", max_tokens=10)),
        ("m", replace(base, max_tokens=11)),
        ("m", replace(base, temperature=0.0)),
        ("m", replace(base, stop=("\n",))),
        ("m", replace(base, seed=1)),
        ("m", replace(base, tools=(ToolSpec("search"),))),
        ("m", replace(base, response_format=ResponseFormat())),
        ("m", replace(base, labels={"agentmesh.prompt.hash": "abc"})),
    ]
    keys = {cache_key(model, request) for model, request in variants}
    assert key not in keys
    assert len(keys) == len(variants)
    # Labels other than the template's hash (its name, variant) do not split the cache.
    assert cache_key("m", replace(base, labels={"agentmesh.prompt.template": "x"})) == key


async def test_an_identical_call_is_served_from_the_cache_at_no_cost(spans) -> None:
    caller, gateway = _caller(cache=MemoryCache())
    first = await caller.call(_call())
    second = await caller.call(_call())
    assert gateway.calls == 1
    assert first.cost_usd > 0
    assert not first.cached
    assert second.cached
    assert second.cost_usd == 0.0
    assert second.spend.input_tokens == 0
    assert second.response.text == first.response.text
    shown = second.to_dict()
    assert shown["cached"] is True
    assert shown["attempts"][-1]["cached"] is True
    assert shown["attempts"][-1]["reason"] == "primary (cache hit)"
    lookups = by_name(spans, "cache m")
    assert [s.attributes["agentmesh.cache.hit"] for s in lookups] == [False, True]
    assert lookups[1].attributes["agentmesh.cache.saved_usd"] == pytest.approx(first.cost_usd)


async def test_errors_refusals_and_truncated_answers_are_never_stored() -> None:
    for finish in ("length", "content_filter"):
        caller, gateway = _caller(cache=MemoryCache(), finish=finish)
        await caller.call(_call())
        await caller.call(_call())
        assert gateway.calls == 2, finish
    cache = MemoryCache()
    caller, gateway = _caller(scripted_model("m", down=True), cache=cache)
    for _ in range(2):
        with pytest.raises(CallFailed):
            await caller.call(_call())
    assert len(cache) == 0


def test_an_empty_answer_is_stored_only_where_empty_answers_are_accepted() -> None:
    empty = CachedAnswer.from_json(
        CachedAnswer(_response("", "stop"), 0.0).to_json()
    ).response  # the round trip keeps every field
    assert cacheable(empty, allow_empty=True)
    assert not cacheable(empty, allow_empty=False)
    assert not cacheable(_response("cut", "length"))


def _response(text: str, finish: Any) -> ModelResponse:
    from agentmesh.models.types import Usage

    return ModelResponse("m", "scripted", "m", text, Usage(3, 4), finish, 1.0, 1.0, 0.5)


async def test_sampled_calls_are_cached_only_when_asked() -> None:
    caller, gateway = _caller(cache=MemoryCache())
    for _ in range(2):
        await caller.call(_call(temperature=0.7))
    assert gateway.calls == 2
    sampled = Policy(cache="sampled")
    for _ in range(2):
        await caller.call(_call(temperature=0.7, policy=sampled))
    assert gateway.calls == 3


async def test_cache_false_on_a_policy_or_an_entry_wins() -> None:
    caller, gateway = _caller(cache=MemoryCache())
    for _ in range(2):
        await caller.call(_call(policy=Policy(cache=False)))
    assert gateway.calls == 2
    off = scripted_model("m", fields={**PRICED, "cache": False})
    caller, gateway = _caller(off, cache=MemoryCache())
    for _ in range(2):
        await caller.call(_call(policy=Policy(cache=True)))
    assert gateway.calls == 2


async def test_cache_true_without_a_cache_given_uses_one_in_memory() -> None:
    caller, gateway = _caller()
    for _ in range(2):
        await caller.call(_call())
    assert gateway.calls == 2  # no cache, no word from a policy: nothing cached
    for _ in range(2):
        await caller.call(_call(policy=Policy(cache=True)))
    assert gateway.calls == 3


async def test_the_ttl_of_a_policy_bounds_an_answers_life() -> None:
    now = [1000.0]
    cache = MemoryCache(clock=lambda: now[0])
    caller, gateway = _caller(cache=cache)
    policy = Policy(ttl=10)
    await caller.call(_call(policy=policy))
    now[0] += 9
    await caller.call(_call(policy=policy))
    assert gateway.calls == 1
    now[0] += 2
    await caller.call(_call(policy=policy))
    assert gateway.calls == 2


async def test_the_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryCache(2)
    answer = CachedAnswer(_response("a", "stop"), 0.0)
    for key in ("a", "b"):
        await cache.put(key, answer, None)
    assert await cache.get("a") is not None  # "b" is now the least recently used
    await cache.put("c", answer, None)
    assert await cache.get("b") is None
    assert await cache.get("a") is not None
    assert await cache.get("c") is not None


async def test_a_streamed_call_is_served_from_the_cache_too() -> None:
    caller, gateway = _caller(cache=MemoryCache())
    first = await caller.call(_call())
    items = [item async for item in caller.stream(_call())]
    assert items[0] == first.response.text
    assert items[-1].cached  # type: ignore[union-attr]
    assert gateway.calls == 1


async def test_a_second_run_of_a_graph_is_served_by_the_cache_and_its_steps_say_so() -> None:
    catalog = scripted_catalog(scripted_model("m", fields=PRICED))
    wf = Workflow("cached", policy=Policy())
    wf.executor("answer", prompt="execute_step", inputs={"question": "$input", "step": "answer"})
    cache = MemoryCache()
    runs = []
    for _ in range(2):
        async with Runtime.open(
            catalog, prompts=PromptLibrary(REPO / "prompts"), cache=cache
        ) as rt:
            runs.append(await run_graph(wf.spec(), rt, "what is 2+2"))
    first, second = (r.steps[0] for r in runs)
    assert first["cached"] is False
    assert first["cost_usd"] > 0
    assert second["cached"] is True
    assert second["cost_usd"] == 0
    assert runs[1].cost_usd == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://x", "unknown kind 'memcached'"),
        ("memory://?size=0", "size must be a positive integer"),
        ("memory://?colour=red", "use memory"),
        ("redis://127.0.0.1:1/0?ttl=-3", "ttl='-3': must be positive"),
    ],
)
async def test_a_bad_cache_url_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(CacheError, match=message.replace("(", r"\(")):
        async with open_cache(url):
            pass


def test_ask_json_says_whether_the_answer_was_cached(capsys, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    argv = ["ask", "--models", str(REPO / "models" / "sim.yaml"), "--prompt", "hi"]
    assert main([*argv, "--json", "--cache", "memory", "--trace", str(trace)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["cached"] is False  # one process, one call: a miss, stored
    assert main([*argv, "--cache", "nope://"]) == 2
    assert "unknown kind 'nope'" in capsys.readouterr().err
    summary = tracing.summarize(tracing.load_spans(trace))
    assert summary["controls"]["cache"] == {
        "lookups": 1,
        "hits": 0,
        "hit_rate": 0.0,
        "saved_usd": 0.0,
    }


async def test_trace_summary_reports_the_hit_rate_and_the_savings(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    caller, _ = _caller(cache=MemoryCache())
    with tracing.configure(jsonl=str(trace)):
        first = await caller.call(_call())
        await caller.call(_call())
        await caller.call(_call())
    summary = tracing.summarize(tracing.load_spans(trace))
    cache = summary["controls"]["cache"]
    assert (cache["lookups"], cache["hits"], cache["hit_rate"]) == (3, 2, 0.6667)
    assert cache["saved_usd"] == pytest.approx(2 * first.cost_usd)
    assert "cache: 2/3 hits (66.7%)" in tracing.render_summary(summary)


def test_run_json_steps_say_whether_they_were_cached(capsys) -> None:
    argv = [
        "run",
        str(REPO / "graphs" / "code_review.yaml"),
        "--models",
        str(REPO / "models" / "sim.yaml"),
        "--input",
        "diff --git a/x.py b/x.py\n@@ -1 +1 @@\n-a\n+b",
        "--json",
        "--quiet",
        "--cache",
        "memory",
    ]
    assert main(argv) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    model_steps = [s for s in steps if s["attempts"]]
    assert model_steps
    assert all(s["cached"] is False for s in model_steps)  # one run, nothing seen before
