"""Several runs on one thread (as LangGraph's server runs them): each starts afresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agentmesh.graph import NodeFailed, Runtime, compile_graph, load_graph
from agentmesh.models import load_catalog

ROOT = Path(__file__).resolve().parents[2]
SIM = load_catalog(ROOT / "models/sim.yaml")
DIFF = (ROOT / "prompts/review_code.j2").read_text().split("diff: |")[1]


async def test_a_second_run_on_a_thread_does_not_add_to_the_first() -> None:
    spec = load_graph(ROOT / "graphs/code_review.yaml").spec
    async with Runtime.open(SIM, prompts=ROOT / "prompts") as runtime:
        graph = compile_graph(spec, runtime, checkpointer=InMemorySaver())
        config: Any = {"configurable": {"thread_id": "one-thread"}}
        first = await graph.ainvoke({"input": DIFF}, config)
        second = await graph.ainvoke({"input": DIFF}, config)
        named = await graph.ainvoke({"input": DIFF, "run_id": "mine"}, config)
    assert len(first["steps"]) == 6
    assert len(second["steps"]) == 6, "not 12: steps are per run"
    assert second["cost_usd"] == pytest.approx(first["cost_usd"]), "not doubled"
    assert second["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in second["steps"]))
    assert (second["input_tokens"], second["output_tokens"]) == (
        first["input_tokens"],
        first["output_tokens"],
    )
    assert set(second["results"]) == {"review"}
    assert first["run_id"] != second["run_id"], "each run gets its own id (and run budget)"
    assert first["budget_usd"] == second["budget_usd"] == spec.budget_usd
    assert named["run_id"] == "mine", "an id the input gives is kept"
    assert len(named["steps"]) == 6


def test_the_run_start_node_name_is_reserved() -> None:
    from agentmesh.graph import GraphSpec
    from agentmesh.graph.state import RUN_START

    with pytest.raises(ValueError, match=f"{RUN_START} are reserved"):
        GraphSpec.model_validate(
            {"name": "g", "nodes": {RUN_START: {"kind": "executor", "prompt": "p"}}}
        )


def test_a_node_failure_is_a_runtime_error_naming_node_type_and_message() -> None:
    failure = NodeFailed("triage", "budget_exceeded", "the cheapest call needs $0.01")
    assert isinstance(failure, RuntimeError), "LangGraph's server passes its message on"
    assert str(failure) == "node 'triage': budget_exceeded: the cheapest call needs $0.01"
    assert (failure.node, failure.kind, failure.message) == (
        "triage",
        "budget_exceeded",
        "the cheapest call needs $0.01",
    )
