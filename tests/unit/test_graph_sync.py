"""The sync API: ``invoke()`` and ``stream()`` of every compiled graph, every node kind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agentmesh.graph import Runtime, Workflow, compile_graph
from agentmesh.graph.pause import approve
from agentmesh.models import Catalog

from .test_graph_run import GRAPHS, INPUTS, SIM, shipped, shout, tiers

QUESTION = "Should a 12-person company move its file storage to the cloud?"


@pytest.fixture
def sim_runtime() -> Iterator[Runtime]:
    runtime = Runtime.build(SIM, prompts=shipped())
    try:
        yield runtime
    finally:
        runtime.close()


def _runtime_for(runtime: Runtime, tools: dict[str, Any]) -> Runtime:
    import dataclasses

    return dataclasses.replace(runtime, tools={**runtime.tools, **tools}) if tools else runtime


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_invoke_runs_every_shipped_graph_synchronously(sim_runtime: Runtime, name: str) -> None:
    loaded = GRAPHS[name]
    graph = compile_graph(
        loaded.spec, _runtime_for(sim_runtime, loaded.tools()), checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": name}}
    final = graph.invoke({"input": INPUTS.get(name, QUESTION)}, config)
    for _ in range(3):  # a graph that pauses for a person is approved, synchronously too
        if "__interrupt__" not in final:
            break
        final = graph.invoke(Command(resume=approve()), config)
    assert "__interrupt__" not in final
    output = final["results"][loaded.spec.output_node]
    assert output, f"{loaded.spec.output_node} answered"
    assert all(r["text"] for r in output.values())
    assert final["steps"]
    assert final["cost_usd"] > 0


def test_stream_yields_each_node_update_and_a_checkpointer_works(sim_runtime: Runtime) -> None:
    loaded = GRAPHS["research_report"]  # planner fan-out, executors, judge, merge
    graph = compile_graph(loaded.spec, sim_runtime, checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}
    seen = [node for chunk in graph.stream({"input": QUESTION}, config) for node in chunk]
    assert seen[0] == "agentmesh_start"
    assert {"plan", "research", "check", "report"} <= set(seen)
    assert seen.count("research") >= 3, "one update per fanned-out branch"
    assert graph.get_state(config).values["results"]["report"]


def test_tool_nodes_and_agents_run_synchronously() -> None:
    rules = [
        {"match": "Step to carry out", "after": ".", "reply": "agent got {tool_result}"},
        {"match": "Step to carry out", "tool": "shout", "arguments": {"text": "hey"}},
    ]
    wf = Workflow("tools")
    wf.tool("loud", tool="shout", arguments={"text": "$input"})
    wf.executor(
        "act", prompt="execute_step", inputs={"question": "$loud", "step": "go"}, tools=("shout",)
    )
    wf.edge("loud", "act")
    runtime = Runtime.build(tiers({"replies": rules}), prompts=shipped(), tools={"shout": shout})
    try:
        final = compile_graph(wf.spec(), runtime).invoke({"input": "hi"})
    finally:
        runtime.close()
    assert final["results"]["loud"][""]["text"] == "HI!"
    assert final["results"]["act"][""]["text"] == "agent got HEY!"


def test_invoke_works_inside_a_running_event_loop_thread() -> None:
    # Notebooks call invoke() on a thread whose loop is running: the nodes' loop is private.
    async def caller(catalog: Catalog) -> str:
        runtime = Runtime.build(catalog, prompts=shipped())
        wf = Workflow("one").executor(
            "a", prompt="execute_step", inputs={"question": "$input", "step": "go"}
        )
        try:
            final = compile_graph(wf.spec(), runtime).invoke({"input": "x"})
        finally:
            await runtime.aclose()
        return str(final["results"]["a"][""]["text"])

    assert asyncio.run(caller(tiers({"reply": "sync inside async"}))) == "sync inside async"


def test_a_runtime_used_both_ways_keeps_working() -> None:
    runtime = Runtime.build(tiers({"reply": "ok"}), prompts=shipped())
    wf = Workflow("one").executor(
        "a", prompt="execute_step", inputs={"question": "$input", "step": "go"}
    )
    graph = compile_graph(wf.spec(), runtime)
    try:
        sync = graph.invoke({"input": "x"})
        concurrent = asyncio.run(_both(graph))
    finally:
        runtime.close()
    assert sync["results"]["a"][""]["text"] == "ok"
    assert concurrent == ["ok", "ok"]


async def _both(graph: Any) -> list[str]:
    first, second = await asyncio.gather(
        graph.ainvoke({"input": "y"}), asyncio.to_thread(graph.invoke, {"input": "z"})
    )
    return [r["results"]["a"][""]["text"] for r in (first, second)]
