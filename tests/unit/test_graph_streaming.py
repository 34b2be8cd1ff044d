"""Token streaming out of graphs: LangGraph's ``messages`` mode, ``on_token``, TTFT, fallbacks."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.cli import main
from agentmesh.cli._stream import TokenWriter
from agentmesh.graph import Runtime, Workflow, compile_graph, run_graph
from agentmesh.graph.streaming import Token
from agentmesh.models import Catalog, Gateway, ModelSpec
from agentmesh.resilience import ResilientCaller
from agentmesh.routing import Router
from agentmesh.testing import RecordingTransport, anthropic_stream, openai_stream, scripted_model

from .test_graph_run import shipped, shout
from .test_tracing_support import span_fixture

ANSWER = "one two three four five"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def one_node(**fields: Any) -> Workflow:
    wf = Workflow("one")
    wf.executor(
        "answer", prompt="execute_step", inputs={"question": "$input", "step": "go"}, **fields
    )
    return wf


async def messages(graph: Any, text: str = "q") -> list[tuple[BaseMessage, dict[str, Any]]]:
    return [item async for item in graph.astream({"input": text}, stream_mode="messages")]


async def test_astream_messages_yields_the_tokens_tagged_with_node_model_and_attempt() -> None:
    catalog = Catalog([scripted_model("m1", reply=ANSWER)])
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        chunks = await messages(compile_graph(one_node().spec(), runtime))
    text = [m for m, _ in chunks if isinstance(m, AIMessageChunk)]
    assert len(text) == 5, "one chunk per streamed word"
    assert "".join(str(m.content) for m in text) == ANSWER
    assert len({m.id for m in text}) == 1, "one message, in pieces"
    for _, meta in chunks:
        assert meta["langgraph_node"] == "answer"
        assert meta["agentmesh_node"] == "answer"
        assert meta["agentmesh_model"] == "m1"
        assert meta["agentmesh_attempt"] == 1
        assert meta["ls_model_name"] == "m1"
    assert len(chunks) == len(text), "the complete message is not sent again"


async def test_a_model_failing_before_its_first_token_is_followed_by_the_fallbacks_tokens() -> None:
    catalog = Catalog(
        [
            scripted_model("cheap", tier=1, reply="never sent", fail_first=5),
            scripted_model("strong", tier=2, reply=ANSWER),
        ]
    )
    wf = one_node(resilience={"retry": {"max_attempts": 2, "base_s": 0}})
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        graph = compile_graph(wf.spec(), runtime)
        chunks = await messages(graph)
        final = await graph.ainvoke({"input": "q"})
    assert "".join(str(m.content) for m, _ in chunks) == ANSWER, "no text of the failed model"
    assert {(meta["agentmesh_model"], meta["agentmesh_attempt"]) for _, meta in chunks} == {
        ("strong", 3)
    }, "two failed tries of cheap, then strong"
    assert final["results"]["answer"][""]["text"] == ANSWER


def test_sync_stream_messages_works_too() -> None:
    runtime = Runtime.build(Catalog([scripted_model("m1", reply=ANSWER)]), prompts=shipped())
    try:
        graph = compile_graph(one_node().spec(), runtime)
        chunks = list(graph.stream({"input": "q"}, stream_mode="messages"))
    finally:
        runtime.close()
    assert "".join(str(m.content) for m, _ in chunks) == ANSWER
    assert {meta["agentmesh_model"] for _, meta in chunks} == {"m1"}


async def test_an_agent_streams_its_tool_requests_and_then_its_answer() -> None:
    rules = [
        {"match": "Step to carry out", "after": ".", "reply": "got {tool_result}"},
        {"match": "Step to carry out", "tool": "shout", "arguments": {"text": "hi"}},
    ]
    catalog = Catalog([scripted_model("m1", replies=rules)])
    async with Runtime.open(catalog, prompts=shipped(), tools={"shout": shout}) as runtime:
        chunks = await messages(compile_graph(one_node(tools=("shout",)).spec(), runtime))
    asked, *answer = [m for m, _ in chunks]
    assert [c["name"] for c in getattr(asked, "tool_calls", [])] == ["shout"]
    assert "".join(str(m.content) for m in answer) == "got HI!"
    assert len({m.id for m in answer}) == 1
    assert asked.id != answer[0].id, "each model turn is its own message"


async def test_on_token_gets_each_delta_and_steps_and_spans_record_ttft(
    spans: InMemorySpanExporter,
) -> None:
    catalog = Catalog([scripted_model("m1", reply=ANSWER, latency_ms=5, ms_per_output_token=1)])
    tokens: list[Token] = []
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        result = await run_graph(one_node().spec(), runtime, "q", on_token=tokens.append)
    assert result.status == "ok"
    assert "".join(t.text for t in tokens) == ANSWER
    assert tokens[-1].last
    assert {(t.node, t.branch, t.round, t.model, t.attempt) for t in tokens} == {
        ("answer", "", 1, "m1", 1)
    }
    (step,) = result.steps
    assert 0 < step["ttft_ms"] < step["attempts"][0]["latency_ms"]
    (node,) = [s for s in spans.get_finished_spans() if s.name == "invoke_agent answer"]
    assert node.attributes is not None
    assert node.attributes["agentmesh.node.time_to_first_token"] > 0


async def test_workflow_run_takes_a_token_listener_too() -> None:
    tokens: list[Token] = []
    catalog = Catalog([scripted_model("m1", reply=ANSWER)])
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        result = await one_node().run(runtime, "q", on_token=tokens.append)
    assert "".join(t.text for t in tokens) == result.output == ANSWER


async def test_without_listeners_nothing_is_streamed_and_no_ttft_is_recorded() -> None:
    catalog = Catalog([scripted_model("m1", reply=ANSWER)])
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        result = await run_graph(one_node().spec(), runtime, "q")
    assert "ttft_ms" not in result.steps[0]
    assert "(streamed)" not in result.steps[0]["attempts"][0]["reason"]


def _http_runtime(spec: ModelSpec, transport: httpx.MockTransport, **env: str) -> Runtime:
    catalog = Catalog([spec])
    gateway = Gateway(catalog, http=httpx.AsyncClient(transport=transport), environ=env)
    return Runtime(ResilientCaller(Router(catalog), gateway), shipped())


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_provider_adapters_stream_through_a_graph(provider: str) -> None:
    pieces = ["The ", "answer ", "is ", "42."]
    if provider == "openai":
        spec = ModelSpec(
            id="remote", provider="openai", model="gpt-x", base_url="http://llm.test/v1"
        )
        transport = RecordingTransport([openai_stream(pieces)])
        runtime = _http_runtime(spec, transport)
    else:
        spec = ModelSpec(
            id="remote",
            provider="anthropic",
            model="claude-x",
            base_url="http://claude.test",
            api_key_env="ANTHROPIC_API_KEY",
        )
        transport = RecordingTransport([anthropic_stream(pieces)])
        runtime = _http_runtime(spec, transport, ANTHROPIC_API_KEY="sk-test")
    try:
        chunks = await messages(compile_graph(one_node().spec(), runtime))
    finally:
        await runtime.aclose()
    assert [str(m.content) for m, _ in chunks] == pieces
    assert transport.bodies()[0]["stream"] is True
    assert {meta["agentmesh_model"] for _, meta in chunks} == {"remote"}


# --- agentmesh run --stream ------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
WORDS = " ".join(f"word{n}" for n in range(1, 31))
PACED = f"""
# SIMULATED: one scripted model, paced like a slow real one.
models:
  - id: slow
    provider: scripted
    model: slow
    capabilities: [json, tools, streaming]
    pricing: {{input: 1, output: 2}}
    behavior: {{reply: "{WORDS}", ms_per_output_token: 15}}
"""
ONE_NODE = """
name: one
nodes:
  answer:
    kind: executor
    prompt: execute_step
    inputs: {question: $input, step: go}
"""


def paced_files(tmp_path: Path) -> tuple[str, str]:
    (tmp_path / "paced.yaml").write_text(PACED)
    (tmp_path / "one.yaml").write_text(ONE_NODE)
    return str(tmp_path / "one.yaml"), str(tmp_path / "paced.yaml")


def test_run_stream_shows_the_first_tokens_while_the_model_is_still_generating(
    tmp_path: Path,
) -> None:
    graph, catalog = paced_files(tmp_path)
    argv = ["run", graph, "--models", catalog, "--prompts", str(ROOT / "prompts")]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with subprocess.Popen(
        [sys.executable, "-m", "agentmesh", *argv, "--input", "q", "--stream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        first = os.read(proc.stdout.fileno(), 64)  # blocks until the first bytes arrive
        running = proc.poll() is None
        rest = proc.stdout.read()
        err = proc.stderr.read() if proc.stderr is not None else b""
        code = proc.wait()
    assert first.startswith(b"word1"), first
    assert running, "the first tokens came while the model was still generating"
    assert len(first) < len(WORDS) / 2, "a part of the answer, not all of it"
    assert code == 0, err
    assert (first + rest).decode() == WORDS + "\n", "the answer once, as streamed"
    assert b"answer executor ok: slow" in err, "progress stays on stderr"
    assert b"Traceback" not in err


def test_run_stream_prints_the_answer_once_and_a_merge_output_at_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = str(ROOT / "models" / "sim.yaml")
    argv = ["run", "--models", sim, "--prompts", str(ROOT / "prompts"), "--stream"]
    assert (
        main(
            [
                argv[0],
                str(ROOT / "graphs" / "support_triage.yaml"),
                *argv[1:],
                "--input",
                "Charged twice.",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert out.count('"category"') == 1, out
    assert out.endswith("}\n")
    assert "do not stream" not in err
    muffins = (
        "A bakery sells muffins at $3 each or 4 for $10. What is the lowest price for 10 muffins?"
    )
    assert (
        main([argv[0], str(ROOT / "graphs" / "math_consensus.yaml"), *argv[1:], "--input", muffins])
        == 0
    )
    out, err = capsys.readouterr()
    assert "Final answer: 26" in out
    assert "# --stream: merge nodes do not stream; vote's answer comes at the end" in err


def test_run_stream_and_json_are_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    graph, catalog = paced_files(tmp_path)
    assert main(["run", graph, "--models", catalog, "--input", "q", "--stream", "--json"]) == 2
    assert "choose one" in capsys.readouterr().err


def test_the_token_writer_never_interleaves_concurrent_answers() -> None:
    out = io.StringIO()
    writer = TokenWriter("n", out)
    feed = [("a", "A1 "), ("b", "B1 "), ("a", "A2"), ("x", "other node"), ("b", "B2")]
    for branch, text in feed:
        writer(Token("x" if branch == "x" else "n", branch, 1, "m", 1, text))
    assert out.getvalue() == "A1 A2", "b is held while a streams"
    writer(Token("n", "a", 1, "m", 1, "", last=True))
    assert out.getvalue() == "A1 A2\nB1 B2", "then b, caught up"
    writer(Token("n", "b", 1, "m", 1, " B3"))
    writer(Token("n", "b", 1, "m", 1, "", last=True))
    writer(Token("n", "c", 1, "m", 1, "C1"))
    writer(Token("n", "d", 1, "m", 1, "D1"))
    writer.close()
    assert out.getvalue() == "A1 A2\nB1 B2 B3\nC1\nD1\n"
