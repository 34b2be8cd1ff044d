"""Compile a checked :class:`GraphSpec` into a LangGraph ``StateGraph``.

Edges map one to one: ``START -> entry``; plain edges are LangGraph edges; a
merge with several sources waits for all of them (a LangGraph waiting edge);
a planner's ``fan_out`` is a conditional edge returning one ``Send`` per
planned step; a judge's outgoing edge is conditional: every rejected branch
goes back to the judged node as a ``Send`` carrying escalation + 1 and the
feedback, and when nothing is left to redo the run moves on. The result is a
real compiled LangGraph graph: checkpointers, streaming, ``get_graph()``
(Mermaid) and LangGraph's own tooling work on it.

``START`` leads to one extra node, :data:`~agentmesh.graph.state.RUN_START`,
then to the entries: it resets the per-run fields (a thread of LangGraph's
server holds many runs), gives the run an id when its input named none, and
the graph's ``budget_usd`` when the input set none.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Overwrite, Send

from agentmesh.graph.checks import check_graph
from agentmesh.graph.judge import JudgeRunner
from agentmesh.graph.kinds import NODE_RUNNERS
from agentmesh.graph.nodes import NodeRunner
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import END_NODE, GraphSpec, JudgeNode, MergeNode, PlannerNode
from agentmesh.graph.state import PER_RUN, RUN_START, Branch, RunState

__all__ = ["compile_graph"]

_SHARED = ("input", "run_id", "budget_usd", "results")


def _payload(state: RunState, branch: Branch) -> dict[str, Any]:
    """The state a ``Send`` gives one branch: what references need, plus the branch."""
    values: dict[str, Any] = dict(state)
    payload = {k: values[k] for k in _SHARED if k in values}
    payload["branch"] = branch
    return payload


def _targets(graph: GraphSpec, node: str) -> list[str]:
    nexts = [END if t == END_NODE else t for t in graph.successors(node)]
    return nexts or [END]


def _fan_out(name: str, target: str) -> Any:

    def route(state: RunState) -> list[Send]:
        plan = state.get("results", {}).get(name, {}).get("", {})
        steps = (plan.get("data") or {}).get("steps") or []
        return [
            Send(
                target,
                _payload(
                    state,
                    Branch(
                        key=f"{i:02d}",
                        step=step,
                        escalation=0,
                        round=1,
                        feedback=None,
                        previous=None,
                    ),
                ),
            )
            for i, step in enumerate(steps, start=1)
        ]

    return route


def _after_judge(graph: GraphSpec, runner: JudgeRunner) -> Any:
    judge: JudgeNode = runner.node
    onward = _targets(graph, runner.name)

    def route(state: RunState) -> Sequence[Hashable | Send]:
        results = state.get("results", {}).get(judge.target, {})
        verdicts = state.get("verdicts", {}).get(runner.name, {})
        redo: list[Send] = []
        for key in sorted(results):
            result, verdict = results[key], verdicts.get(key)
            if verdict is None or verdict["passed"] or verdict["gave_up"]:
                continue
            branch = Branch(
                key=key,
                step=result.get("step"),
                escalation=result["escalation"] + 1,
                round=result["round"] + 1,
                feedback=verdict["feedback"],
                previous=result["text"],
            )
            redo.append(Send(judge.target, _payload(state, branch)))
        return redo or onward

    return route


def _run_id(state: RunState, config: RunnableConfig) -> str:
    """This run's id: the one its input gave, else LangGraph's run id, else a new one.

    A ``run_id`` equal to the one the previous run on the thread started with
    is left over from that run, unless it is the thread's id (``run_graph``
    runs each run on the thread named after it).
    """
    given = state.get("run_id")
    thread = (config.get("configurable") or {}).get("thread_id")
    if given and (given != state.get("run_started") or given == thread):
        return given
    fresh = config.get("run_id")
    return str(fresh) if fresh else uuid.uuid4().hex[:12]


def _node(runner: NodeRunner) -> RunnableCallable:
    """The LangGraph node of ``runner``: async, and sync on the runtime's private loop.

    Nodes are written once, async; ``invoke()``/``stream()`` of the compiled
    graph run each one on :attr:`Runtime.sync_loop` (concurrent branches
    together on that loop), in a copy of the calling thread's context, so
    LangGraph's config and the OpenTelemetry span reach the node.
    """
    loop = runner.runtime.sync_loop

    def sync(state: RunState) -> dict[str, Any]:
        return loop.run(runner(state))

    return RunnableCallable(sync, runner, name=runner.name, trace=False)


class _StartRun:
    """The :data:`RUN_START` node: a run's fields reset, its id and budget set."""

    def __init__(self, graph: GraphSpec) -> None:
        self.graph = graph

    def __call__(self, state: RunState, config: RunnableConfig) -> dict[str, Any]:
        update: dict[str, Any] = {name: Overwrite(empty()) for name, empty in PER_RUN.items()}
        run_id = _run_id(state, config)
        update["run_id"] = update["run_started"] = run_id
        if state.get("budget_usd") is None and self.graph.budget_usd is not None:
            update["budget_usd"] = self.graph.budget_usd
        return update


def compile_graph(
    graph: GraphSpec,
    runtime: Runtime,
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    check: bool = True,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Check ``graph`` against the runtime, then build and compile it.

    Raises:
        GraphError: The graph fails a compile-time check (every problem is listed).
    """
    if check:
        check_graph(graph, runtime.catalog, runtime.prompts, runtime.tools, runtime.validators)
    builder = StateGraph(RunState)
    runners = {
        name: NODE_RUNNERS[node.kind](name, node, graph, runtime)
        for name, node in graph.nodes.items()
    }
    builder.add_node(RUN_START, _StartRun(graph))
    builder.add_edge(START, RUN_START)
    for name, runner in runners.items():
        builder.add_node(name, _node(runner))
    for entry in graph.entries:
        builder.add_edge(RUN_START, entry)
    waiting = {
        name
        for name, node in graph.nodes.items()
        if isinstance(node, MergeNode) and len(graph.predecessors(name)) > 1
    }
    for name, node in graph.nodes.items():
        if isinstance(node, PlannerNode) and node.fan_out is not None:
            builder.add_conditional_edges(name, _fan_out(name, node.fan_out), [node.fan_out])
            continue
        if isinstance(node, JudgeNode):
            runner = runners[name]
            assert isinstance(runner, JudgeRunner)
            paths = [node.target, *_targets(graph, name)]
            builder.add_conditional_edges(name, _after_judge(graph, runner), paths)
            continue
        for target in _targets(graph, name):
            if target not in waiting:
                builder.add_edge(name, target)
    for name in waiting:
        builder.add_edge(list(graph.predecessors(name)), name)
    return builder.compile(checkpointer=checkpointer, name=graph.name)
