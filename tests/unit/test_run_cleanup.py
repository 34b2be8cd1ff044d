"""Runs that end clean up after themselves only: their checkpoints, their budget."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from agentmesh.graph import GraphRunner, Runtime
from agentmesh.graph.memory_saver import RunMemorySaver
from agentmesh.routing import BudgetLimits, InMemoryRoutingState

from .test_graph_run import chain, shipped, tiers


class _State(TypedDict, total=False):
    seen: Annotated[list[str], operator.add]


def _graph(saver: InMemorySaver) -> Any:
    async def one(state: _State) -> dict[str, Any]:
        return {"seen": ["one"]}

    async def two(state: _State) -> dict[str, Any]:
        return {"seen": ["two"]}

    graph = StateGraph(_State)
    graph.add_node("one", one)
    graph.add_node("two", two)
    graph.add_edge(START, "one")
    graph.add_edge("one", "two")
    graph.add_edge("two", END)
    return graph.compile(checkpointer=saver)


def _config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


async def _three_threads(saver: InMemorySaver) -> Any:
    app = _graph(saver)
    await asyncio.gather(*(app.ainvoke({"seen": []}, _config(t)) for t in ("a", "b", "c")))
    await saver.adelete_thread("b")
    return app


async def test_deleting_one_thread_leaves_every_other_threads_checkpoints_intact() -> None:
    saver = RunMemorySaver()
    app = await _three_threads(saver)
    for thread in ("a", "c"):
        state = await app.aget_state(_config(thread))
        assert state.values["seen"] == ["one", "two"], thread
        assert [c async for c in saver.alist(_config(thread))], thread
    assert {key[0] for key in [*saver.writes, *saver.blobs]} == {"a", "c"}
    assert set(saver.storage) == {"a", "c"}
    assert not (await app.aget_state(_config("b"))).values


async def test_what_is_left_is_what_langgraphs_own_saver_leaves() -> None:
    ours, theirs = RunMemorySaver(), InMemorySaver()
    await _three_threads(ours)
    await _three_threads(theirs)
    for ours_, theirs_ in ((ours.writes, theirs.writes), (ours.blobs, theirs.blobs)):
        assert {k[0] for k in ours_} == {k[0] for k in theirs_} == {"a", "c"}
        assert len(ours_) == len(theirs_)
    assert set(ours.storage) == set(theirs.storage) == {"a", "c"}


async def test_deleting_an_unknown_thread_is_harmless() -> None:
    saver = RunMemorySaver()
    app = _graph(saver)
    await app.ainvoke({"seen": []}, _config("a"))
    saver.delete_thread("nobody")
    assert (await app.aget_state(_config("a"))).values["seen"] == ["one", "two"]


async def test_a_finished_run_releases_its_budget_and_only_its_own() -> None:
    state = InMemoryRoutingState()
    await state.reserve([("run:other", 1.0)], 0.25)
    async with Runtime.open(
        tiers({}), prompts=shipped(), state=state, budgets=BudgetLimits(run_usd=1.0)
    ) as runtime:
        runner = GraphRunner(chain(2).spec(), runtime)
        result = await runner.run("q", run_id="r1")
    assert result.status == "ok"
    assert result.cost_usd > 0, "the run spent, so its budget key was written"
    spent = (await state.snapshot([], budget_keys=["run:r1", "run:other"])).spent
    assert spent == {"run:r1": 0.0, "run:other": 0.25}
    assert "run:r1" not in state._spent, "released, not merely zero"


async def test_a_failed_run_releases_its_budget_too() -> None:
    state = InMemoryRoutingState()
    async with Runtime.open(tiers({}), prompts=shipped(), state=state) as runtime:
        runner = GraphRunner(chain(3).spec(), runtime)
        result = await runner.run("x" * 400, run_id="r2", budget_usd=0.0012)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "budget_exceeded"
    assert result.cost_usd > 0, "it spent before running out"
    assert "run:r2" not in state._spent
    assert "run:r2" not in state._holds
