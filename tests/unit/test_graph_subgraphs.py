"""Subgraphs (``kind: graph``): steps, spans, budget, checkpoint and resume across the boundary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.cli import main
from agentmesh.graph import GraphError, Runtime, Workflow, check_graph, load_graph
from agentmesh.models import Catalog
from agentmesh.routing import Policy
from agentmesh.testing import scripted_catalog, scripted_model

from .graph_helpers import GRAPHS, SIM, shipped, sim, write
from .test_tracing_support import span_fixture

RELEASE = GRAPHS / "release_announcement.yaml"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def priced() -> Catalog:
    return scripted_catalog(
        scripted_model("m", reply="an answer", fields={"pricing": {"input": 1.0, "output": 2.0}})
    )


def inner(max_output_tokens: int = 512) -> Workflow:
    wf = Workflow("inner", policy=Policy(strategy="cheapest"))
    for name, question in (("one", "$input"), ("two", "$one")):
        wf.executor(
            name,
            prompt="execute_step",
            inputs={"question": question, "step": name},
            max_output_tokens=max_output_tokens,
        )
    return wf.edge("one", "two")


def outer(sub: Workflow, **graph: Any) -> Workflow:
    wf = Workflow("outer", **graph)
    wf.function("prepare", function=lambda text: text.upper(), inputs={"text": "$input"})
    wf.subgraph("sub", graph=sub, input="$prepare")
    wf.function("finish", function=lambda text: f"done: {text[:20]}", inputs={"text": "$sub"})
    return wf.edge("prepare", "sub").edge("sub", "finish")


async def test_a_subgraph_runs_on_its_input_and_its_steps_join_the_run() -> None:
    async with Runtime.open(priced(), prompts=shipped()) as runtime:
        result = await outer(inner()).run(runtime, "hello")
    assert result.status == "ok", result.error
    assert [s["node"] for s in result.steps] == ["prepare", "sub/one", "sub/two", "sub", "finish"]
    assert result.steps[1]["kind"] == "executor"
    assert "HELLO" in json.dumps(result.steps)  # the inner graph ran on $prepare
    assert result.output == "done: an answer"
    inner_cost = sum(s["cost_usd"] for s in result.steps if s["node"].startswith("sub/"))
    assert inner_cost > 0
    assert result.cost_usd == pytest.approx(inner_cost)


async def test_subgraph_spans_nest_under_the_outer_node(spans: InMemorySpanExporter) -> None:
    async with Runtime.open(priced(), prompts=shipped()) as runtime:
        await outer(inner()).run(runtime, "hello")
    by_id = {s.context.span_id: s for s in spans.get_finished_spans()}
    nodes = {s.name: s for s in by_id.values() if s.name.startswith("invoke_agent ")}
    parent = nodes["invoke_agent sub"]
    for name in ("invoke_agent one", "invoke_agent two"):
        assert nodes[name].parent is not None
        assert nodes[name].parent.span_id == parent.context.span_id
    assert parent.attributes is not None
    assert parent.attributes["agentmesh.cost_usd"] > 0


async def test_the_subgraphs_calls_count_in_the_outer_runs_budget() -> None:
    # One inner call fits the outer budget, the second does not (a call reserves its
    # worst case, here close to its cost: 5 output tokens at most): it fails inside.
    async with Runtime.open(priced(), prompts=shipped()) as runtime:
        alone = await inner(5).run(runtime, "HELLO")
        per_call = alone.steps[0]["cost_usd"]
        result = await outer(inner(5), budget_usd=per_call * 1.7).run(runtime, "hello")
    assert alone.status == "ok"
    assert result.status == "failed"
    assert result.error["node"] == "sub/two"
    assert result.error["type"] == "budget_exceeded"


async def test_a_run_failing_inside_a_subgraph_resumes_there_without_redoing_its_steps() -> None:
    calls = {"one": 0, "two": 0}

    def one(text: str) -> str:
        calls["one"] += 1
        return text + "!"

    def two(text: str) -> str:
        calls["two"] += 1
        if calls["two"] == 1:
            raise RuntimeError("flaky")
        return text + "?"

    sub = Workflow("inner").function("one", function=one, inputs={"text": "$input"})
    sub.function("two", function=two, inputs={"text": "$one"}).edge("one", "two")
    async with Runtime.open(scripted_catalog(), prompts=shipped()) as runtime:
        runner = outer(sub).prepare(runtime, checkpointer=InMemorySaver())
        failed = await runner.run("hi", run_id="r")
        done = await runner.run(None, run_id="r", resume=True)
    assert failed.status == "failed"
    assert failed.error["node"] == "sub/two"
    assert failed.error["type"] == "function_error"
    assert done.status == "ok", done.error
    assert calls == {"one": 1, "two": 2}  # "one" finished inside the subgraph: not redone
    assert done.output == "done: HI!?"


def test_release_announcement_pauses_inside_its_subgraph_and_resumes_there(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = f"sqlite:{tmp_path / 'runs.db'}"
    argv = ["run", str(RELEASE), "--models", str(SIM), "--input", "Announce 5.0", "--json"]
    code = main([*argv, "--checkpoint", db, "--run-id", "ra"])
    paused = json.loads(capsys.readouterr().out)
    assert code == 3
    assert [p["node"] for p in paused["pending"]] == ["approve/review"]
    code = main(["resume", "ra", "--checkpoint", db, "--reject", "--feedback", "Date?", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == 3
    assert again["pending"][0]["payload"]["draft"].startswith("Revised draft")
    code = main(["resume", "ra", "--checkpoint", db, "--approve", "--json"])
    done = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [s["node"] for s in done["steps"]] == [
        "approve/draft",
        "approve/review",
        "approve/draft",
        "approve/review",
        "approve/publish",
        "approve",
        "schedule",
    ]
    assert json.loads(done["output"])["channels"] == ["blog", "newsletter"]


def test_a_subgraph_file_that_includes_itself_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", "name: b\nnodes:\n  back:\n    kind: graph\n    graph: a.yaml\n")
    a = write(tmp_path / "a.yaml", "name: a\nnodes:\n  down:\n    kind: graph\n    graph: b.yaml\n")
    with pytest.raises(GraphError) as caught:
        load_graph(a)
    [problem] = caught.value.problems
    assert problem == (
        f"{tmp_path / 'b.yaml'}:5: node 'back': graph: includes itself (a.yaml -> b.yaml -> a.yaml)"
    )


def test_a_subgraphs_problems_are_reported_under_its_node(tmp_path: Path) -> None:
    write(
        tmp_path / "inner.yaml",
        """
        name: inner
        nodes:
          x:
            kind: executor
            prompt: execute_step
            inputs: {question: $input}
        """,
    )
    path = write(
        tmp_path / "outer.yaml",
        """
        name: outer
        nodes:
          sub:
            kind: graph
            graph: inner.yaml
        """,
    )
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        check_graph(loaded.spec, sim(), shipped(), locate=loaded.locate)
    [problem] = caught.value.problems
    assert problem == (
        f"{path}:5: node 'sub': graph 'inner': node 'x': inputs: template 'execute_step' "
        "needs 'step'"
    )


def test_a_subgraph_files_tools_are_loaded_with_the_outer_graph(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "shout.py").write_text(
        'def shout(text: str) -> str:\n    """Shout."""\n    return text.upper() + "!"\n',
        encoding="utf-8",
    )
    write(
        tmp_path / "inner.yaml",
        """
        name: inner
        tools: {shout: shout.py:shout}
        nodes:
          loud:
            kind: tool
            tool: shout
            arguments: {text: $input}
        """,
    )
    path = write(
        tmp_path / "outer.yaml",
        """
        name: outer
        nodes:
          sub:
            kind: graph
            graph: inner.yaml
        """,
    )
    assert set(load_graph(path).tools()) == {"shout"}
    code = main(["run", str(path), "--models", str(SIM), "--input", "hi", "--quiet"])
    assert code == 0
    assert capsys.readouterr().out == "HI!\n"
