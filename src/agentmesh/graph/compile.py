"""Compile a checked :class:`GraphSpec` into a LangGraph ``StateGraph``.

Edges map one to one: ``START -> entry``; plain edges are LangGraph edges; a
merge with several sources waits for all of them (a LangGraph waiting edge);
a planner's ``fan_out`` is a conditional edge returning one ``Send`` per
planned step; a judge's outgoing edge is conditional: every rejected branch
goes back to the judged node as a ``Send`` carrying escalation + 1 and the
feedback, and when nothing is left to redo the run moves on; a node's
``branch`` is a conditional edge whose path map is ``{case: target}`` (so
drawings label each edge with its case). Cycles need nothing special: they
are LangGraph edges, bounded by the visit counts nodes keep. The result is a
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

from agentmesh.graph.branches import BranchSpec
from agentmesh.graph.checks import GraphError, check_graph
from agentmesh.graph.human import HumanGate
from agentmesh.graph.judge import JudgeRunner
from agentmesh.graph.kinds import NODE_RUNNERS
from agentmesh.graph.nodes import NodeFailed, NodeRunner
from agentmesh.graph.pause import gate_name, needs_checkpointer, pausing_nodes
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import END_NODE, GraphSpec, JudgeNode, MergeNode, PlannerNode
from agentmesh.graph.state import PER_RUN, RUN_START, Branch, RunState
from agentmesh.graph.subgraph import SubgraphRunner

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


def _end(target: str) -> str:
    return END if target == END_NODE else target


def _paths(branch: BranchSpec) -> dict[Hashable, str]:
    """LangGraph's path map of a branch: ``{case label: node}``."""
    return {label: _end(target) for label, target in branch.path_map().items()}


def _labelled(graph: GraphSpec, node: str) -> dict[Hashable, str]:
    """``{target: target}`` of ``node``'s plain edges (unlabelled in drawings)."""
    return {t: t for t in _targets(graph, node)}


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


def _branch(runner: NodeRunner, branch: BranchSpec) -> Any:
    """The path function of ``runner``'s node's branch: the label of the edge to take."""

    def route(state: RunState) -> str:
        if branch.by is not None:
            value = branch.by(state)
            what = "by() returned"
        else:
            assert branch.field is not None
            value = runner.branch_value(state, branch.field)
            what = f"{branch.field} ="
        label = branch.choose(value)
        if label is None:
            cases = ", ".join(branch.cases)
            raise NodeFailed(
                runner.name,
                "no_branch",
                f"{what} {value!r}: no case for it ({cases}) and no default",
            )
        return label

    return route


def _onward(graph: GraphSpec, runner: NodeRunner) -> Any:
    """After ``runner``'s node: its branch's choice, else its plain edges."""
    branch = runner.node.branch
    if branch is None:
        targets = _targets(graph, runner.name)
        return lambda state: targets
    route = _branch(runner, branch)
    return lambda state: [route(state)]


def _after_judge(graph: GraphSpec, runner: JudgeRunner) -> Any:
    judge: JudgeNode = runner.node
    onward = _onward(graph, runner)

    def route(state: RunState) -> Sequence[Hashable | Send]:
        verdicts = state.get("verdicts", {}).get(runner.name, {})
        redo: list[Send] = []
        for key, verdict in sorted(verdicts.items()):
            if verdict["passed"] or verdict["gave_up"]:
                continue
            target = verdict.get("target", judge.judged[0])
            result = state.get("results", {}).get(target, {}).get(key)
            if result is None or result["round"] != verdict["round"]:
                continue
            branch = Branch(
                key=key,
                step=result.get("step"),
                escalation=result["escalation"] + 1,
                round=result["round"] + 1,
                feedback=verdict["feedback"],
                previous=result["text"],
            )
            redo.append(Send(target, _payload(state, branch)))
        return redo or onward(state)

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

    A graph with nodes that pause for a person (``kind: human``,
    ``interrupt:``) needs a checkpointer: the paused run is resumed from it.

    Raises:
        GraphError: The graph fails a compile-time check (every problem is
            listed), or it pauses and has no checkpointer.
    """
    if check:
        check_graph(graph, runtime.catalog, runtime.prompts, runtime.tools, runtime.validators)
        pausing = pausing_nodes(graph)
        if pausing and checkpointer is None:
            raise GraphError(graph.name, [needs_checkpointer(pausing)])
    builder = StateGraph(RunState)
    runners = {
        name: NODE_RUNNERS[node.kind](name, node, graph, runtime)
        for name, node in graph.nodes.items()
    }
    for runner in runners.values():
        if isinstance(runner, SubgraphRunner):  # checkpointed with this graph (no saver of its own)
            runner.inner = compile_graph(runner.spec, runtime, check=False)
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
            onward = _paths(node.branch) if node.branch else _labelled(graph, name)
            paths: dict[Hashable, str] = {**{t: t for t in node.judged}, **onward}
            builder.add_conditional_edges(name, _after_judge(graph, runner), paths)
            continue
        exit, runner = name, runners[name]
        if node.interrupt == "after":  # a gate node after it; its edges leave from the gate
            gate = HumanGate(runner)
            exit, runner = gate_name(name), gate
            builder.add_node(exit, _node(gate))
            builder.add_edge(name, exit)
        if node.branch is not None:
            builder.add_conditional_edges(exit, _branch(runner, node.branch), _paths(node.branch))
            continue
        for target in _targets(graph, name):
            if target not in waiting:
                builder.add_edge(exit, target)
    for name in waiting:
        sources = [_exit(graph, s) for s in graph.predecessors(name)]
        builder.add_edge(sources, name)
    return builder.compile(checkpointer=checkpointer, name=graph.name)


def _exit(graph: GraphSpec, node: str) -> str:
    """The LangGraph node ``node``'s outgoing edges leave from (its gate, if it has one)."""
    return gate_name(node) if graph.nodes[node].interrupt == "after" else node
