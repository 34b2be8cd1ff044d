"""Traces stay correct under concurrency and fan-out, and never carry secrets."""

from __future__ import annotations

import asyncio
import json
import operator
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import httpx
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh import tracing
from agentmesh.models import (
    AuthError,
    Gateway,
    ModelClient,
    ModelRequest,
    ModelResponse,
    ModelSpec,
    Provider,
    Usage,
    load_catalog,
)
from agentmesh.models.client import Stopwatch
from agentmesh.routing import Router, RouteRequest
from agentmesh.testing import RecordingTransport, openai_completion, scripted_catalog
from agentmesh.testing import scripted_model as model
from agentmesh.tracing import attributes as A

from .test_tracing_support import by_name, span_fixture

PLANTED = "sk-planted-0123456789abcdef-SECRET"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


class GatedClient(ModelClient):
    """Answers only once every concurrent caller is inside its call (no sleeping)."""

    def __init__(self, spec: ModelSpec, barrier: asyncio.Barrier) -> None:
        super().__init__(spec)
        self.barrier = barrier

    async def invoke(self, request: ModelRequest) -> ModelResponse:
        watch = Stopwatch()
        await self.barrier.wait()
        return self.respond(text="ok", usage=Usage(3, 1), finish_reason="stop", watch=watch)


async def test_concurrent_runs_parent_their_own_spans(spans: InMemorySpanExporter) -> None:
    runs = 20
    barrier = asyncio.Barrier(runs)
    cat = scripted_catalog(model("gated"))
    gateway = Gateway(cat, factories={Provider.SCRIPTED: lambda s, _: GatedClient(s, barrier)})
    router = Router(cat)

    async def run(number: int) -> None:
        with tracing.workflow_span("load", run_id=f"r{number}"):
            decision = await router.route(RouteRequest(node="step", prompt="x"))
            await gateway.invoke(
                decision.chosen, ModelRequest.of("x"), attributes={A.RUN_ID: f"r{number}"}
            )

    await asyncio.gather(*(run(n) for n in range(runs)))
    finished = spans.get_finished_spans()
    workflows = {s.context.span_id: s for s in finished if s.name == "invoke_workflow load"}
    chats = by_name(spans, "chat gated")
    routes = by_name(spans, "route step")
    assert (len(workflows), len(chats), len(routes)) == (runs, runs, runs), "all ended"
    assert len({s.context.trace_id for s in workflows.values()}) == runs
    for span in [*chats, *routes]:
        assert span.parent is not None
        parent = workflows[span.parent.span_id]
        assert parent.context.trace_id == span.context.trace_id
    for chat in chats:
        parent = workflows[chat.parent.span_id]  # type: ignore[union-attr]
        assert (chat.attributes or {})[A.RUN_ID] == (parent.attributes or {})[A.RUN_ID]


class State(TypedDict):
    topics: list[str]
    answers: Annotated[list[str], operator.add]


async def test_langgraph_fan_out_keeps_each_branch_under_the_run(
    spans: InMemorySpanExporter,
) -> None:
    cat = scripted_catalog(model("m", reply="answer to {prompt}"))
    gateway, router = Gateway(cat), Router(cat)

    async def research(state: dict[str, Any]) -> dict[str, list[str]]:
        topic = state["topic"]
        with tracing.node_span(f"research:{topic}", "executor"):
            decision = await router.route(RouteRequest(node=f"research:{topic}", prompt=topic))
            response = await gateway.invoke(decision.chosen, ModelRequest.of(topic))
        return {"answers": [response.text]}

    def fan_out(state: State) -> list[Send]:
        return [Send("research", {"topic": t}) for t in state["topics"]]

    graph = StateGraph(State)
    graph.add_node("research", research)
    graph.add_conditional_edges(START, fan_out, ["research"])
    graph.add_edge("research", END)
    app = graph.compile()
    topics = [f"t{i}" for i in range(6)]
    with tracing.workflow_span("fanout", run_id="g1") as run:
        result = await app.ainvoke({"topics": topics, "answers": []})
    await gateway.aclose()

    assert len(result["answers"]) == len(topics)
    root = run.span.get_span_context()
    for topic in topics:
        (node,) = by_name(spans, f"invoke_agent research:{topic}")
        assert node.parent is not None
        assert node.parent.span_id == root.span_id
        for child in [*by_name(spans, f"route research:{topic}")]:
            assert child.parent is not None
            assert child.parent.span_id == node.context.span_id
    chats = by_name(spans, "chat m")
    assert len(chats) == len(topics)
    node_ids = {
        s.context.span_id for s in spans.get_finished_spans() if s.name.startswith("invoke_agent")
    }
    assert all(c.parent is not None and c.parent.span_id in node_ids for c in chats)
    assert {c.context.trace_id for c in chats} == {root.trace_id}


def _openai_catalog(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(
        "models:\n"
        "  - id: cloud\n"
        "    provider: openai\n"
        "    model: gpt-test\n"
        "    base_url: https://api.example.test/v1\n"
        "    api_key_env: PLANTED_KEY\n"
    )
    return path


async def test_a_planted_key_never_reaches_the_trace_file(tmp_path: Path) -> None:
    def echo_401(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {
                "message": f"Incorrect API key provided: {PLANTED}; "
                f"header was {request.headers['authorization']}",
                "code": "invalid_api_key",
            }
        }
        return httpx.Response(401, json=body)

    echoing_answer = openai_completion(f"your key is {PLANTED}")
    transport = RecordingTransport([echo_401, echoing_answer])
    trace_file = tmp_path / "trace.jsonl"
    catalog = load_catalog(_openai_catalog(tmp_path))
    with tracing.configure(jsonl=trace_file, capture_content=True, batch=False):
        async with httpx.AsyncClient(transport=transport) as http:
            gateway = Gateway(catalog, http=http, environ={"PLANTED_KEY": PLANTED})
            with tracing.workflow_span("secrets", run_id="s1"):
                with pytest.raises(AuthError):
                    await gateway.invoke("cloud", ModelRequest.of("hello"))
                await gateway.invoke("cloud", ModelRequest.of("hello again"))

    assert transport.requests[0].headers["authorization"] == f"Bearer {PLANTED}", "it was sent"
    text = trace_file.read_text()
    assert PLANTED not in text
    assert f"Bearer {PLANTED}" not in text
    assert "Bearer ***" in text, "the echoed header value was scrubbed, not dropped"
    lines = [json.loads(line) for line in text.splitlines()]
    failed, answered = (r for r in lines if r["name"] == "chat gpt-test")
    assert failed["attributes"][A.ERROR_TYPE] == "auth_error"
    assert "***" in failed["status"]["description"]
    assert "hello again" in answered["attributes"][A.GEN_AI_INPUT_MESSAGES], "content was on"
    assert "***" in answered["attributes"][A.GEN_AI_OUTPUT_MESSAGES]
    assert answered["attributes"][A.SERVER_ADDRESS] == "api.example.test"


def test_without_a_provider_nothing_is_recorded_and_calls_still_work(tmp_path: Path) -> None:
    script = """
import asyncio
from agentmesh.models import Gateway, ModelRequest
from agentmesh.routing import Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model
from agentmesh.tracing import ChatCall, RouteCall, _state, capturing_content, node_span

async def main():
    cat = scripted_catalog(scripted_model("m"))
    assert capturing_content(), "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true"
    assert not _state.spans_on() and not _state.metrics_on()
    assert not ChatCall("m", "scripted", "m").recording
    idle = ChatCall.start("m", "scripted", "m")
    assert idle is ChatCall.start("x", "scripted", "x"), "one shared idle call"
    assert RouteCall.start(node="a", role="r", strategy="s") is RouteCall.start(
        node="b", role="r", strategy="s"
    )
    with node_span("n", "executor") as node:
        assert not node.recording
        decision = await Router(cat).route(RouteRequest(node="n", prompt="x"))
        async with Gateway(cat) as gateway:
            response = await gateway.invoke(decision.chosen, ModelRequest.of("x"))
            events = [e async for e in gateway.stream(decision.chosen, ModelRequest.of("x"))]
    assert response.text and events[-1].response is not None
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())
    assert _state.spans_on() and ChatCall.start("m", "scripted", "m").recording
    print("ok")

asyncio.run(main())
"""
    env = {**os.environ, A.CONTENT_ENV_VAR: "true"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
