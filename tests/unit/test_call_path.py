"""One call path: every kind of model call is served by the same attempt routine.

Also the defects the duplicated paths had drifted into (issue: one way to reach a
model): a graph's breaker and retry budget ignored, budget stops reported as
``no_route``, consensus calling one model, missing TTFT / tool-span node / merge
models, ``with_structured_output`` returning ``None`` on the simulator, and a
defaulted output cap rejecting a small-window catalog.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from agentmesh.graph import Runtime, Workflow, run_graph
from agentmesh.integrations import RoutedChatModel
from agentmesh.models import Catalog, CatalogError, Gateway, ModelError, ModelRequest, load_catalog
from agentmesh.models.types import StreamEvent
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience import (
    Call,
    CallFailed,
    LLMClassifier,
    ResiliencePolicy,
    ResilientCaller,
)
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.synthesis import Item, MergeSpec, SynthesisContext
from agentmesh.testing import scripted_model

from .test_tracing_support import span_fixture

REPO = Path(__file__).resolve().parents[2]
PROMPTS = REPO / "prompts"
CHEAPEST = Policy(strategy="cheapest")
TWO_TRIES = ResiliencePolicy(retry={"max_attempts": 2})
# Every path must answer with this: a classification, a verdict and plain text at once.
ANSWER = json.dumps({"task": "math", "complexity": "low", "score": 0.9, "passed": True})
FAULT_TRAIL = [("flaky", "unavailable"), ("flaky", "unavailable"), ("steady", "ok")]


async def _no_sleep(_: float) -> None:
    return None


class LoggingGateway(Gateway):
    """A real gateway that logs (model, outcome) for every call and every stream."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(catalog)
        self.log: list[tuple[str, str]] = []

    async def invoke(self, model_id: str, request: ModelRequest, **kw: Any) -> Any:
        try:
            response = await super().invoke(model_id, request, **kw)
        except ModelError as error:
            self.log.append((model_id, error.kind))
            raise
        self.log.append((model_id, "ok"))
        return response

    async def stream(
        self, model_id: str, request: ModelRequest, **kw: Any
    ) -> AsyncIterator[StreamEvent]:
        try:
            async for event in super().stream(model_id, request, **kw):
                if event.response is not None:
                    self.log.append((model_id, "ok"))
                yield event
        except ModelError as error:
            self.log.append((model_id, error.kind))
            raise


def faulty_mesh() -> tuple[ResilientCaller, LoggingGateway]:
    """A cheap model that is down and a dearer one that answers, on fresh state."""
    catalog = Catalog(
        [
            scripted_model("flaky", tier=1, down=True, fail_with="server_error"),
            scripted_model("steady", tier=2, reply=ANSWER),
        ]
    )
    gateway = LoggingGateway(catalog)
    return ResilientCaller(Router(catalog), gateway, TWO_TRIES, sleep=_no_sleep), gateway


async def test_a_fault_is_retried_and_fallen_back_identically_on_every_kind_of_call() -> None:
    trails: dict[str, list[tuple[str, str]]] = {}

    caller, gateway = faulty_mesh()
    chunks = [c async for c in RoutedChatModel(caller=caller, policy=CHEAPEST).astream("hi")]
    assert "".join(str(c.content) for c in chunks) == ANSWER
    trails["streamed"] = gateway.log

    caller, gateway = faulty_mesh()
    verdict = await LLMClassifier(caller, policy=CHEAPEST).classify("what is 2+2")
    assert verdict.source == "llm:steady"
    trails["classified"] = gateway.log

    caller, gateway = faulty_mesh()
    wf = Workflow("judged", policy=CHEAPEST)
    pinned = Policy(strategy="cheapest", min_tier=2)  # the judged answer itself: steady only
    wf.executor(
        "answer",
        prompt="execute_step",
        inputs={"question": "$input", "step": "answer"},
        policy=pinned,
    )
    wf.judge("gate", target="answer", prompt="judge", rubric="correct")
    result = await run_graph(
        wf.edge("answer", "gate").spec(), Runtime(caller, PromptLibrary(PROMPTS)), "q"
    )
    assert result.status == "ok", result.error
    assert gateway.log[0] == ("steady", "ok")
    trails["judged"] = gateway.log[1:]
    judge_step = next(s for s in result.steps if s["node"] == "gate")
    assert [(a["model"], a["error_type"] or a["outcome"]) for a in judge_step["attempts"]] == (
        FAULT_TRAIL
    )

    caller, gateway = faulty_mesh()
    ctx = SynthesisContext(
        caller=caller, prompts=PromptLibrary(PROMPTS), question="q", policy=CHEAPEST
    )
    merged = await MergeSpec(strategy="refine").synthesize(
        [Item("one", "a"), Item("two", "b")], ctx
    )
    assert merged.text == ANSWER
    trails["merged"] = gateway.log

    assert trails == dict.fromkeys(trails, FAULT_TRAIL)


async def test_a_stream_that_fails_after_its_first_token_is_not_retried() -> None:
    catalog = Catalog([scripted_model("a", reply="one two three"), scripted_model("b", tier=2)])

    class Broken(Gateway):
        async def stream(self, model_id: str, request: ModelRequest, **kw: Any) -> Any:
            yield StreamEvent(delta="one ")
            raise ModelError("cut", model_id=model_id)  # a fail-fast kind mid-stream

    caller = ResilientCaller(Router(catalog), Broken(catalog), sleep=_no_sleep)
    seen: list[object] = []

    async def consume() -> None:
        async for item in caller.stream(Call(RouteRequest(prompt="hi"), ModelRequest.of("hi"))):
            seen.append(item)

    with pytest.raises(CallFailed) as failed:
        await consume()
    assert seen == ["one "], "text already sent cannot be taken back"
    assert [a.model for a in failed.value.attempts] == ["a"], "no retry, no fallback"


# --- defect 1: a graph's breaker and retry budget ------------------------------------


async def test_a_graph_s_breaker_settings_govern_its_calls() -> None:
    catalog = Catalog(
        [
            scripted_model("flaky", tier=1, down=True, fail_with="server_error"),
            scripted_model("steady", tier=2),
        ]
    )
    resilience = ResiliencePolicy(
        retry={"max_attempts": 1}, breaker={"failure_threshold": 1, "cooldown_s": 600}
    )
    wf = Workflow("guarded", policy=CHEAPEST, resilience=resilience)
    for name in ("first", "second"):
        wf.executor(name, prompt="execute_step", inputs={"question": "$input", "step": "answer"})
    async with Runtime.open(catalog, prompts=PROMPTS) as runtime:  # caller default: threshold 5
        result = await run_graph(wf.edge("first", "second").spec(), runtime, "q")
    assert result.status == "ok"
    first, second = (s["attempts"] for s in result.steps)
    assert [(a["model"], a["outcome"]) for a in first] == [("flaky", "error"), ("steady", "ok")]
    assert [a["model"] for a in second] == ["steady"], "one failure opened the graph's breaker"


async def test_a_call_s_retry_budget_is_its_own() -> None:
    catalog = Catalog([scripted_model("flaky", tier=1, down=True, fail_with="server_error")])
    stingy = ResiliencePolicy(
        retry={"max_attempts": 4}, retry_budget={"max_tokens": 3, "token_ratio": 0.1}
    )
    generous = ResiliencePolicy(retry={"max_attempts": 4})
    tries = []
    for policy in (stingy, generous):
        caller = ResilientCaller(Router(catalog), Gateway(catalog), sleep=_no_sleep)
        call = Call(RouteRequest(prompt="hi"), ModelRequest.of("hi"), resilience=policy)
        with pytest.raises(CallFailed) as failed:
            await caller.call(call)
        tries.append(len(failed.value.attempts))
    # A bucket of 3 allows retries only while it holds more than 1.5: one retry, not three.
    assert tries == [2, 4]


# --- defect 2: budget stops name the budget ---------------------------------------------


async def test_a_run_stopped_by_its_budget_says_budget_exceeded_with_amounts() -> None:
    catalog = Catalog([scripted_model("m", fields={"pricing": {"input": 1.0, "output": 2.0}})])
    wf = Workflow("planned", policy=CHEAPEST)
    wf.planner("plan", inputs={"question": "$input"})
    async with Runtime.open(catalog, prompts=PROMPTS) as runtime:
        result = await run_graph(wf.spec(), runtime, "q", budget_usd=1e-7)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "budget_exceeded"
    message = result.error["message"]
    assert "budget run:" in message
    assert "of $1e-07 ($0.000000 spent)" in message
    assert "needs up to $" in message


async def test_filters_plus_budget_leaving_nothing_is_a_budget_stop() -> None:
    catalog = Catalog(
        [
            scripted_model("small", tier=1, fields={"pricing": {"output": 1.0}}),
            scripted_model("big", tier=3, fields={"pricing": {"output": 50.0}}),
        ]
    )
    router = Router(catalog)
    request = RouteRequest(prompt="hi", run_id="r", run_budget_usd=0.001)
    caller = ResilientCaller(router, Gateway(catalog))
    with pytest.raises(CallFailed) as failed:  # min_tier leaves big, the budget excludes it
        await caller.call(Call(request, ModelRequest.of("hi"), Policy(min_tier=2)))
    assert failed.value.kind == "budget_exceeded"
    assert "budget run:r of $0.001000" in str(failed.value)


# --- defect 3: consensus calls every selected model ------------------------------------


async def test_consensus_calls_each_selected_model_and_the_majority_wins() -> None:
    catalog = Catalog(
        [
            scripted_model("a", reply="Paris", fields={"family": "fa"}),
            scripted_model("b", reply="paris ", fields={"family": "fb"}),
            scripted_model("c", reply="Lyon", fields={"family": "fc"}),
        ]
    )
    gateway = LoggingGateway(catalog)
    caller = ResilientCaller(Router(catalog), gateway)
    consensus = Policy(strategy="consensus", params={"k": 3})
    result = await caller.call(
        Call(RouteRequest(prompt="capital?"), ModelRequest.of("q"), consensus)
    )
    assert sorted(m for m, _ in gateway.log) == ["a", "b", "c"]
    assert result.response.text.strip().lower() == "paris"
    assert result.agreement == pytest.approx(2 / 3)
    assert sorted(m.model_id for m in result.members) == ["a", "b", "c"]
    assert result.to_dict()["consensus"]["agreement"] == pytest.approx(2 / 3)


# --- defect 4: TTFT, tool spans' node, merge spans' models ------------------------------


async def test_attempts_record_time_to_first_token() -> None:
    catalog = Catalog([scripted_model("m")])
    caller = ResilientCaller(Router(catalog), Gateway(catalog))
    result = await caller.call(Call(RouteRequest(prompt="hi"), ModelRequest.of("hi")))
    assert result.attempts[0].ttft_ms is not None
    assert result.to_dict()["attempts"][0]["ttft_ms"] is not None
    streamed = [
        x async for x in caller.stream(Call(RouteRequest(prompt="hi"), ModelRequest.of("hi")))
    ]
    assert streamed[-1].attempts[0].ttft_ms is not None  # type: ignore[union-attr]


# --- defect 5: with_structured_output on the simulator --------------------------------


class Person(BaseModel):
    name: str
    age: int


def test_with_structured_output_answers_on_the_scripted_provider() -> None:
    catalog = Catalog([scripted_model("m")])
    model = RoutedChatModel(caller=ResilientCaller(Router(catalog), Gateway(catalog)))
    try:
        person = model.with_structured_output(Person).invoke("Ann is 3")
    finally:
        model.close()
    assert isinstance(person, Person)


# --- defect 6: a defaulted output cap follows a small window ---------------------------


def test_a_small_window_without_an_output_cap_loads(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - {id: tiny, provider: scripted, model: tiny, context_window: 2048}\n"
        "  - {id: big, provider: scripted, model: big, context_window: 32000}\n"
    )
    catalog = load_catalog(path)
    assert catalog["tiny"].max_output_tokens == 2048
    assert catalog["big"].max_output_tokens == 4096
    path.write_text(
        "models:\n  - {id: tiny, provider: scripted, model: tiny, context_window: 2048,"
        " max_output_tokens: 4096}\n"
    )
    with pytest.raises(CatalogError, match=r"max_output_tokens \(4096\) exceeds"):
        load_catalog(path)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def shout(text: str) -> str:
    """Shout ``text``."""
    return text.upper() + "!"


async def test_tool_spans_name_their_node_and_merge_spans_their_branch_models(spans) -> None:
    rules = [{"match": "go", "tool": "shout", "arguments": {"text": "ping"}, "reply": "same"}]
    catalog = Catalog(
        [
            scripted_model("cheap", tier=1, replies=rules, reply="same"),
            scripted_model("dear", tier=2, reply="same"),
        ]
    )
    wf = Workflow("agent", policy=CHEAPEST)
    step = {"question": "$input", "step": "go"}
    wf.executor("act", prompt="execute_step", inputs=step, tools=("shout",))
    wf.executor("other", prompt="execute_step", inputs={"question": "$input", "step": "b"},
                policy=Policy(strategy="cheapest", min_tier=2))  # fmt: skip
    wf.merge("join", sources=["act", "other"], synthesis="vote")
    wf.edge("act", "other").edge("other", "join")
    async with Runtime.open(catalog, prompts=PROMPTS, tools={"shout": shout}) as runtime:
        result = await run_graph(wf.spec(), runtime, "q")
    assert result.status == "ok", result.error
    by_name = {s.name: s for s in spans.get_finished_spans()}
    tool = by_name["execute_tool shout"]
    assert tool.attributes is not None
    assert tool.attributes["agentmesh.node.name"] == "act"
    merge = by_name["invoke_agent join"]
    assert merge.attributes is not None
    assert merge.attributes["agentmesh.synthesis.contributor_models"] == "cheap,dear"


# --- issue 24 item 2: an empty reply is not an answer ------------------------------------


async def test_an_empty_reply_is_malformed_and_falls_back_unless_allowed() -> None:
    catalog = Catalog(
        [scripted_model("mute", tier=1, reply=""), scripted_model("talks", tier=2, reply="hi")]
    )
    wf = Workflow("quiet", policy=CHEAPEST, resilience=ResiliencePolicy(retry={"max_attempts": 1}))
    wf.executor("work", prompt="execute_step", inputs={"question": "$input", "step": "s"})
    async with Runtime.open(catalog, prompts=PROMPTS) as runtime:
        strict = await run_graph(wf.spec(), runtime, "q")
        wf._nodes["work"] = wf._nodes["work"].model_copy(update={"allow_empty": True})
        lenient = await run_graph(wf.spec(), runtime, "q")
    trail = [(a["model"], a["error_type"] or a["outcome"]) for a in strict.steps[0]["attempts"]]
    assert trail == [("mute", "malformed_response"), ("talks", "ok")]
    assert strict.output == "hi"
    assert lenient.steps[0]["model"] == "mute"
    assert lenient.output == ""


# --- issue 24 item 13: branch answers visible ------------------------------------------


async def test_each_step_carries_its_output_and_trace_show_labels_branches(tmp_path: Path) -> None:
    from agentmesh import tracing

    steps = json.dumps({"steps": ["alpha", "beta"]})
    catalog = Catalog(
        [
            scripted_model(
                "m", reply="did {prompt}", replies=[{"match": "^Question:", "reply": steps}]
            )
        ]
    )
    wf = Workflow("fan", policy=CHEAPEST)
    wf.planner("plan", inputs={"question": "$input"}, max_steps=2, fan_out="work")
    wf.executor("work", prompt="execute_step", inputs={"question": "$input", "step": "$step"})
    wf.merge("join", sources=["work"], synthesis="vote").edge("work", "join")
    trace = tmp_path / "trace.jsonl"
    with tracing.configure(jsonl=trace):
        async with Runtime.open(catalog, prompts=PROMPTS) as runtime:
            result = await run_graph(wf.spec(), runtime, "q")
    assert result.status == "ok", result.error
    by_node = {(s["node"], s["branch"]): s for s in result.steps}
    assert by_node[("plan", "")]["output"] == {"steps": ["alpha", "beta"]}
    assert "alpha" in by_node[("work", "01")]["output"]
    assert "beta" in by_node[("work", "02")]["output"]
    assert by_node[("join", "")]["output"] == result.output
    from agentmesh.tracing.tree import traces

    shown = tracing.render_traces(traces(tracing.load_spans(trace)))
    assert "node work[01] (executor)" in shown
    assert "node work[02] (executor)" in shown
