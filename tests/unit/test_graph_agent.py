"""Tool-using agents: the loop, concurrent tool calls, failing tools, escalation mid-loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.tools import tool
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.cli import main
from agentmesh.graph import GraphError, RunResult, Runtime, Workflow, as_tool, run_graph
from agentmesh.graph.agent import run_tool
from agentmesh.models import Catalog, Gateway, ModelSpec
from agentmesh.models.errors import Unavailable
from agentmesh.models.types import ModelRequest, ModelResponse, ToolCall
from agentmesh.resilience import ResilientCaller
from agentmesh.routing import Router
from agentmesh.testing import (
    RecordingTransport,
    anthropic_message,
    openai_completion,
    scripted_model,
)

from .test_graph_run import shipped, shout, tiers
from .test_tracing_support import span_fixture

ROOT = Path(__file__).resolve().parents[2]
STEP = "Step to carry out"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def agent(*tools: str, **fields: Any) -> Workflow:
    wf = Workflow("agent")
    wf.executor(
        "act",
        prompt="execute_step",
        inputs={"question": "$input", "step": "go"},
        tools=tools,
        **fields,
    )
    return wf


async def run(wf: Workflow, catalog: Catalog, tools: dict[str, Any], text: str = "q") -> RunResult:
    async with Runtime.open(catalog, prompts=shipped(), tools=tools) as runtime:
        return await run_graph(wf.spec(), runtime, text)


def two_rounds(first: list[dict[str, Any]], second: dict[str, Any]) -> list[dict[str, Any]]:
    """Rules: round 1 makes ``first`` calls, round 2 ``second`` after them, then an answer."""
    return [
        {"match": STEP, "after": "^DONE", "reply": "final: {tool_result}"},
        {"match": STEP, "after": ".", "calls": [second]},
        {"match": STEP, "calls": first},
    ]


def boom(text: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"cannot handle {text}")


def done(text: str) -> str:
    """Finish."""
    return f"DONE {text}"


async def test_the_agent_loops_over_two_tool_rounds_and_records_each_turn(
    spans: InMemorySpanExporter,
) -> None:
    rules = two_rounds(
        [
            {"tool": "shout", "arguments": {"text": "a"}},
            {"tool": "shout", "arguments": {"text": "b"}},
        ],
        {"tool": "done", "arguments": {"text": "x"}},
    )
    result = await run(
        agent("shout", "done"), tiers({"replies": rules}), {"shout": shout, "done": done}
    )
    assert result.status == "ok", result.error
    assert result.output == "final: DONE x"
    assert [s["iteration"] for s in result.steps] == [1, 2, 3]
    assert [[c["tool"] for c in s["tool_calls"]] for s in result.steps] == [
        ["shout", "shout"],
        ["done"],
        [],
    ]
    assert all(c["ok"] and c["error"] is None for s in result.steps for c in s["tool_calls"])
    assert result.steps[0]["tool_calls"][1]["arguments"] == {"text": "b"}
    assert "output" in result.steps[-1]
    assert "output" not in result.steps[0]
    tools = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool ")]
    assert sorted(s.name for s in tools) == ["execute_tool done", *["execute_tool shout"] * 2]
    assert all(s.attributes and s.attributes["agentmesh.node.name"] == "act" for s in tools)
    nodes = {
        s.context.span_id: s for s in spans.get_finished_spans() if s.name == "invoke_agent act"
    }
    assert all(s.parent is not None and s.parent.span_id in nodes for s in tools)


async def test_tool_calls_of_one_turn_run_concurrently_sync_and_async() -> None:
    # Each tool waits for the other at a barrier: run one after the other, both time out.
    barrier = threading.Barrier(2, timeout=5)
    arrived = asyncio.Event()
    seen = asyncio.Event()

    def sync_meet(text: str) -> str:
        """Wait for the other sync call."""
        barrier.wait()
        return f"met {text}"

    async def async_meet(text: str) -> str:
        """Wait for the sync calls' partner."""
        (seen if arrived.is_set() else arrived).set()
        await asyncio.wait_for((arrived if seen.is_set() else seen).wait(), 5)
        return f"met {text}"

    calls = [
        {"tool": "sync_meet", "arguments": {"text": "1"}},
        {"tool": "sync_meet", "arguments": {"text": "2"}},
        {"tool": "async_meet", "arguments": {"text": "3"}},
        {"tool": "async_meet", "arguments": {"text": "4"}},
    ]
    rules = [
        {"match": STEP, "after": ".", "reply": "all: {tool_result}"},
        {"match": STEP, "calls": calls},
    ]
    tools = {"sync_meet": sync_meet, "async_meet": async_meet}
    result = await run(agent(*tools), tiers({"replies": rules}), tools)
    assert result.status == "ok", result.error
    assert result.output == "all: met 1; met 2; met 3; met 4", "results keep the calls' order"
    assert all(c["ok"] for c in result.steps[0]["tool_calls"])


async def test_a_raising_tool_goes_back_to_the_model_and_the_run_survives(
    spans: InMemorySpanExporter,
) -> None:
    rules = [
        {"match": STEP, "after": "error: ", "reply": "recovered from: {tool_result}"},
        {"match": STEP, "tool": "boom", "arguments": {"text": "x"}},
    ]
    result = await run(agent("boom"), tiers({"replies": rules}), {"boom": boom})
    assert result.status == "ok", result.error
    assert (
        result.output == "recovered from: error: tool 'boom' raised RuntimeError: cannot handle x"
    )
    (call,) = result.steps[0]["tool_calls"]
    assert call["ok"] is False
    assert call["error"] == "tool 'boom' raised RuntimeError: cannot handle x"
    (span,) = [s for s in spans.get_finished_spans() if s.name == "execute_tool boom"]
    assert span.attributes is not None
    assert span.attributes["error.type"] == "tool_error"


async def test_on_tool_error_fail_fails_the_node_naming_node_and_tool() -> None:
    rules = [{"match": STEP, "tool": "boom", "arguments": {"text": "x"}}]
    result = await run(
        agent("boom", on_tool_error="fail"), tiers({"replies": rules}), {"boom": boom}
    )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "tool_error"
    assert result.error["node"] == "act"
    assert "'boom'" in result.error["message"]
    assert "RuntimeError: cannot handle x" in result.error["message"]
    (step,) = result.steps
    assert step["status"] == "failed"
    assert step["attempts"], "the model turn that asked for the tool is kept"
    assert step["tool_calls"][0]["ok"] is False


@pytest.mark.parametrize("on_tool_error", ["return", "fail"])
async def test_arguments_the_schema_rejects_are_a_failed_tool_call(on_tool_error: str) -> None:
    rules = [
        {"match": STEP, "after": ".", "reply": "told: {tool_result}"},
        {"match": STEP, "tool": "shout", "arguments": {"text": "a", "times": "many"}},
    ]
    wf = agent("shout", on_tool_error=on_tool_error)
    result = await run(wf, tiers({"replies": rules}), {"shout": shout})
    (made,) = result.steps[0]["tool_calls"]
    assert made["ok"] is False
    assert made["error"].startswith("tool 'shout': bad arguments: ")
    assert "times" in made["error"]
    if on_tool_error == "return":
        assert result.status == "ok", result.error
        assert result.output == f"told: error: {made['error']}"
    else:
        assert result.status == "failed"
        assert result.error is not None
        assert (result.error["type"], result.error["node"]) == ("tool_error", "act")
        assert result.error["message"] == f"tool 'shout': {made['error']}"


async def test_a_tool_the_node_does_not_have_is_a_failed_call_not_an_exception() -> None:
    ran = await run_tool("act", {"shout": as_tool(shout, "shout")}, ToolCall("c1", "nosuch", {}))
    assert not ran.ok
    assert ran.error == "no tool named 'nosuch'; available: shout"
    message = ran.message()
    assert (message.status, message.tool_call_id, message.content) == (
        "error",
        "c1",
        "error: no tool named 'nosuch'; available: shout",
    )


async def test_a_langchain_tool_works_in_the_agent_loop() -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    rules = [
        {"match": STEP, "after": ".", "reply": "sum is {tool_result}"},
        {"match": STEP, "tool": "add", "arguments": {"a": 2, "b": 3}},
    ]
    result = await run(agent("add"), tiers({"replies": rules}), {"add": add})
    assert result.output == "sum is 5"


async def test_a_model_still_calling_tools_at_the_bound_fails_with_loop_limit() -> None:
    rules = [
        {"match": STEP, "after": ".", "tool": "shout", "arguments": {"text": "more"}},
        {"match": STEP, "tool": "shout", "arguments": {"text": "go"}},
    ]
    result = await run(
        agent("shout", max_iterations=3), tiers({"replies": rules}), {"shout": shout}
    )
    assert result.status == "failed"
    assert result.error is not None
    assert (result.error["type"], result.error["node"]) == ("loop_limit", "act")
    assert "max_iterations=3" in result.error["message"]
    assert [s["iteration"] for s in result.steps] == [1, 2, 3]
    assert [c["ok"] for s in result.steps for c in s["tool_calls"]] == [True, True, False]


async def test_a_fallback_mid_loop_changes_the_model_and_keeps_the_conversation() -> None:
    rules = [
        {"match": STEP, "after": "PING", "reply": "{model} read {tool_result}"},
        {"match": STEP, "tool": "shout", "arguments": {"text": "ping"}},
    ]
    catalog = Catalog(
        [scripted_model("t1", tier=1, replies=rules), scripted_model("t2", tier=2, replies=rules)]
    )
    wf = agent("shout", resilience={"retry": {"max_attempts": 1}})
    async with Runtime.open(catalog, prompts=shipped(), tools={"shout": shout}) as runtime:
        first = runtime.caller.gateway.client("t1")
        answer_once = first.invoke

        async def down_after_one_turn(request: ModelRequest) -> ModelResponse:
            first.invoke = first.error_out  # type: ignore[method-assign]
            return await answer_once(request)

        async def error_out(request: ModelRequest) -> ModelResponse:
            raise Unavailable("t1 went down", model_id="t1")

        first.error_out = error_out  # type: ignore[attr-defined]
        first.invoke = down_after_one_turn  # type: ignore[method-assign]
        result = await run_graph(wf.spec(), runtime, "q")
    assert result.status == "ok", result.error
    assert result.output == "t2 read PING!", "t2 answered with t1's tool result in hand"
    assert [s["model"] for s in result.steps] == ["t1", "t2"]
    turn = [(a["model"], a["outcome"]) for a in result.steps[1]["attempts"]]
    assert turn == [("t1", "error"), ("t2", "ok")]


def test_max_tool_rounds_is_renamed_with_a_clear_error(tmp_path: Path) -> None:
    from agentmesh.graph import load_graph

    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\nnodes:\n  a:\n    kind: executor\n    prompt: execute_step\n"
        "    max_tool_rounds: 2\n"
    )
    with pytest.raises(GraphError) as info:
        load_graph(path)
    assert f"{path}:3" in str(info.value)
    assert "max_tool_rounds was renamed max_iterations" in str(info.value)
    with pytest.raises(GraphError, match="did you mean max_iterations="):
        Workflow("w").executor("a", prompt="p", max_tool_rounds=2)


# --- the CLI: a failing tool is never a traceback -------------------------------------------

TOOLS_PY = '''
def explode(text: str) -> str:
    """Always raises."""
    raise ValueError("kaboom " + text)
'''

CATALOG = """
models:
  - id: m
    provider: scripted
    model: m
    capabilities: [tools]
    pricing: {input: 1, output: 2}
    behavior:
      replies:
        - {match: "Step to carry out", after: "error", reply: "the tool failed: {tool_result}"}
        - {match: "Step to carry out", tool: explode, arguments: {text: now}}
"""


def cli_graph(tmp_path: Path, on_tool_error: str) -> tuple[str, str]:
    (tmp_path / "tools.py").write_text(TOOLS_PY)
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "name: g\ntools: {explode: 'tools.py:explode'}\nnodes:\n  act:\n    kind: executor\n"
        "    prompt: execute_step\n    inputs: {question: $input, step: go}\n"
        f"    tools: [explode]\n    on_tool_error: {on_tool_error}\n"
    )
    catalog = tmp_path / "models.yaml"
    catalog.write_text(CATALOG)
    return str(graph), str(catalog)


@pytest.mark.parametrize(("on_tool_error", "code"), [("return", 0), ("fail", 1)])
def test_the_cli_reports_a_raising_tool_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, on_tool_error: str, code: int
) -> None:
    graph, catalog = cli_graph(tmp_path, on_tool_error)
    argv = ["run", graph, "--models", catalog, "--prompts", str(ROOT / "prompts"), "--input", "q"]
    assert main([*argv, "--json"]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    record = json.loads(out)
    (call,) = record["steps"][0]["tool_calls"]
    assert call == {
        "tool": "explode",
        "ok": False,
        "error": "tool 'explode' raised ValueError: kaboom now",
        "id": call["id"],
        "arguments": {"text": "now"},
    }
    if on_tool_error == "return":
        assert record["status"] == "ok"
        assert (
            record["output"]
            == "the tool failed: error: tool 'explode' raised ValueError: kaboom now"
        )
    else:
        assert record["status"] == "failed"
        assert record["error"]["type"] == "tool_error"
        assert record["error"]["node"] == "act"
        assert "failed at node act: tool_error: tool 'explode'" in err


# --- graphs/react_agent.yaml ---------------------------------------------------------------


async def test_the_react_agent_makes_two_tool_rounds_and_survives_a_raising_tool() -> None:
    from .test_graph_run import GRAPHS, POPULATION, SIM

    loaded = GRAPHS["react_agent"]
    async with Runtime.open(SIM, prompts=shipped(), tools=loaded.tools()) as runtime:
        result = await run_graph(loaded.spec, runtime, POPULATION, locate=loaded.locate)
    assert result.status == "ok", result.error
    rounds = [s["tool_calls"] for s in result.steps if s["tool_calls"]]
    assert len(rounds) == 2, "lookups, then the calculator"
    assert [c["tool"] for c in rounds[0]] == ["lookup"] * 3
    assert [c["ok"] for c in rounds[0]] == [True, True, False]
    assert "KeyError" in rounds[0][2]["error"]
    assert "'Atlantis population'" in rounds[0][2]["error"]
    assert [(c["tool"], c["ok"]) for c in rounds[1]] == [("calculator", True)]
    assert result.output is not None
    assert "1395326" in result.output
    assert result.simulated


def test_the_react_tools_refuse_what_they_cannot_do() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "react_tools", ROOT / "examples/tools/react_tools.py"
    )
    assert spec is not None
    assert spec.loader is not None
    tools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tools)
    assert tools.calculator("(522250 + 873076) * 2 - 1") == "2790651"
    assert tools.calculator("7 / 2") == "3.5"
    with pytest.raises(ValueError, match="only numbers"):
        tools.calculator("__import__('os').system('true')")
    with pytest.raises(ZeroDivisionError):
        tools.calculator("1 / 0")
    assert tools.lookup("  LYON   population ") == "Lyon: 522250 inhabitants (2021 census)"
    with pytest.raises(KeyError, match="no entry for 'Atlantis'"):
        tools.lookup("Atlantis")


# --- the loop over real wire formats ----------------------------------------------------------


def _wire_runtime(spec: ModelSpec, transport: RecordingTransport, tools: dict[str, Any]) -> Runtime:
    catalog = Catalog([spec])
    gateway = Gateway(
        catalog, http=httpx.AsyncClient(transport=transport), environ={"KEY": "sk-test"}
    )
    return Runtime(
        ResilientCaller(Router(catalog), gateway),
        shipped(),
        {name: as_tool(t, name) for name, t in tools.items()},
    )


async def test_openai_parallel_tool_calls_and_their_results_go_over_the_wire() -> None:
    spec = ModelSpec(
        id="oai", provider="openai", model="gpt-x", base_url="http://llm.test/v1",
        capabilities=["tools"],
    )  # fmt: skip
    asked = [
        {"id": "c1", "name": "boom", "arguments": json.dumps({"text": "x"})},
        {"id": "c2", "name": "shout", "arguments": json.dumps({"text": "y"})},
    ]
    transport = RecordingTransport(
        [
            openai_completion(None, tool_calls=asked, finish_reason="tool_calls"),
            openai_completion("done"),
        ]
    )
    runtime = _wire_runtime(spec, transport, {"boom": boom, "shout": shout})
    try:
        result = await run_graph(agent("boom", "shout").spec(), runtime, "q")
    finally:
        await runtime.aclose()
    assert result.status == "ok", result.error
    assert result.output == "done"
    first, second = transport.bodies()
    assert {t["function"]["name"] for t in first["tools"]} == {"boom", "shout"}
    *_, assistant, r1, r2 = second["messages"]
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert (r1["role"], r1["tool_call_id"]) == ("tool", "c1")
    assert r1["content"] == "error: tool 'boom' raised RuntimeError: cannot handle x"
    assert (r2["tool_call_id"], r2["content"]) == ("c2", "Y!")


async def test_anthropic_gets_a_failed_tool_call_as_an_error_result() -> None:
    spec = ModelSpec(
        id="claude", provider="anthropic", model="claude-x", base_url="http://claude.test",
        api_key_env="KEY", capabilities=["tools"],
    )  # fmt: skip
    uses = [
        {"id": "t1", "name": "boom", "input": {"text": "x"}},
        {"id": "t2", "name": "shout", "input": {"text": "y"}},
    ]
    transport = RecordingTransport(
        [anthropic_message("", tool_uses=uses, stop_reason="tool_use"), anthropic_message("done")]
    )
    runtime = _wire_runtime(spec, transport, {"boom": boom, "shout": shout})
    try:
        result = await run_graph(agent("boom", "shout").spec(), runtime, "q")
    finally:
        await runtime.aclose()
    assert result.output == "done"
    results = transport.bodies()[1]["messages"][-1]
    assert results["role"] == "user", "both results in one user turn"
    assert [(b["tool_use_id"], b.get("is_error", False)) for b in results["content"]] == [
        ("t1", True),
        ("t2", False),
    ]
