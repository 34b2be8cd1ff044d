"""`Workflow`: the Python way to write a graph; it builds the same `GraphSpec` as YAML.

.. code-block:: python

    wf = Workflow("research", policy=Policy(strategy="cheapest"), budget_usd=0.05)
    wf.planner("plan", inputs={"question": "$input", "max_steps": 3}, fan_out="research")
    wf.executor("research", prompt="execute_step", inputs={"question": "$input", "step": "$step"})
    wf.judge("check", target="research", rubric="Concrete.", validators=[{"min_words": 20}])
    wf.merge("report", sources=["research"], synthesis="refine")
    wf.edge("research", "check").edge("check", "report")

    async with Runtime.open(load_catalog("models/sim.yaml")) as runtime:
        graph = wf.compile(runtime)             # a LangGraph CompiledStateGraph
        result = await wf.run(runtime, "Should we move to the cloud?")

A mistake in a node's keywords is a :class:`GraphError` at once, naming the
node, the wrong keyword and the right one (``executor node 'solve': unknown
keyword input=; did you mean inputs=?``), never a bare pydantic error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from difflib import get_close_matches
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, ValidationError

from agentmesh._validation import describe_error
from agentmesh.graph.branches import BranchSpec, StateFunction
from agentmesh.graph.checks import GraphError
from agentmesh.graph.compile import compile_graph
from agentmesh.graph.loader import load_graph
from agentmesh.graph.run import GraphRunner, RunResult, StepListener, run_graph
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import (
    ExecutorNode,
    FunctionNode,
    GraphNode,
    GraphSpec,
    HumanNode,
    JudgeNode,
    MergeNode,
    PlannerNode,
    ToolNode,
)
from agentmesh.graph.streaming import TokenListener

__all__ = ["Workflow"]

N = TypeVar("N", bound=BaseModel)

_SYNONYMS: Mapping[str, str] = MappingProxyType(
    {
        "input": "inputs",
        "from_": "sources",
        "source": "sources",
        "sources_": "sources",
        "args": "arguments",
        "kwargs": "arguments",
        "budget": "budget_usd",
        "fanout": "fan_out",
        "template": "prompt",
        "validator": "validators",
        "strategy": "synthesis",
        "max_tool_rounds": "max_iterations",
    }
)
"""Wrong keywords people write, and the right ones (``difflib`` finds the rest)."""


def _keywords(model: type[BaseModel]) -> dict[str, str]:
    """Keyword -> the field it sets: Python names, and YAML aliases (``from``) as well."""
    names = {name: name for name in model.model_fields if name != "kind"}
    aliases = {f.alias: name for name, f in model.model_fields.items() if f.alias}
    return {**names, **aliases}


def _unknown(what: str, given: Iterable[str], known: Mapping[str, str]) -> list[str]:
    """One problem per keyword ``known`` lacks, naming the right one when it can be guessed."""
    problems = []
    python = sorted(set(known.values()))
    for key in given:
        if key in known:
            continue
        hint = _SYNONYMS.get(key)
        if hint not in python:
            close = get_close_matches(key, python, n=1)
            hint = close[0] if close else None
        right = f"; did you mean {hint}=?" if hint else f" (known: {', '.join(python)})"
        problems.append(f"{what}: unknown keyword {key}={right}")
    return problems


def _problems(what: str, exc: ValidationError, known: Mapping[str, str]) -> list[str]:
    """The errors of ``exc``, each naming ``what`` and the Python keyword (not the alias)."""
    out = []
    for error in exc.errors():
        loc = list(error["loc"])
        if loc and isinstance(loc[0], str):
            loc[0] = f"{known.get(loc[0], loc[0])}="
        out.append(f"{what}: {describe_error(error, loc)}")
    return out


class Workflow:
    """Builds a :class:`GraphSpec` node by node; each method returns the builder.

    Args:
        name: Workflow name (traces, checkpoints).
        **graph: Other :class:`GraphSpec` fields (``policy``, ``budget_usd``,
            ``resilience``, ``entry``, ``output``, ``description``).
    """

    def __init__(self, name: str, **graph: Any) -> None:
        self.name = name
        known = {k: v for k, v in _keywords(GraphSpec).items() if k not in ("name", "nodes")}
        problems = _unknown(f"workflow {name!r}", graph, known)
        if problems:
            raise GraphError(name, problems)
        self._graph = graph
        self._nodes: dict[str, Any] = {}
        self._edges: list[tuple[str, str]] = []

    def _add(self, name: str, kind: type[N], fields: Mapping[str, Any]) -> Workflow:
        """Build node ``name`` of ``kind`` from ``fields``.

        Raises:
            GraphError: ``name`` is taken, a keyword is unknown, or a value is
                invalid; each problem names the node and the keyword.
        """
        what = f"{kind.model_fields['kind'].default} node {name!r}"
        if name in self._nodes:
            raise GraphError(self.name, [f"{what}: a node {name!r} is already defined"])
        known = _keywords(kind)
        problems = _unknown(what, fields, known)
        if problems:
            raise GraphError(self.name, problems)
        try:
            self._nodes[name] = kind.model_validate(dict(fields))
        except ValidationError as exc:
            raise GraphError(self.name, _problems(what, exc, known)) from None
        return self

    def planner(self, name: str, **fields: Any) -> Workflow:
        """Add a planner (see :class:`PlannerNode`).

        Raises:
            GraphError: A keyword is unknown or invalid (naming node and keyword).
        """
        return self._add(name, PlannerNode, fields)

    def executor(self, name: str, **fields: Any) -> Workflow:
        """Add an executor (see :class:`ExecutorNode`).

        Raises:
            GraphError: A keyword is unknown or invalid (naming node and keyword).
        """
        return self._add(name, ExecutorNode, fields)

    def tool(self, name: str, **fields: Any) -> Workflow:
        """Add a tool node (see :class:`ToolNode`).

        Raises:
            GraphError: A keyword is unknown or invalid (naming node and keyword).
        """
        return self._add(name, ToolNode, fields)

    def judge(self, name: str, **fields: Any) -> Workflow:
        """Add a judge (see :class:`JudgeNode`).

        Raises:
            GraphError: A keyword is unknown or invalid (naming node and keyword).
        """
        return self._add(name, JudgeNode, fields)

    def human(self, name: str, **fields: Any) -> Workflow:
        """Add a node that pauses for a person (see :class:`HumanNode`).

        Raises:
            GraphError: A keyword is unknown or invalid (naming node and keyword).
        """
        return self._add(name, HumanNode, fields)

    def function(self, name: str, **fields: Any) -> Workflow:
        """Add a function node (see :class:`FunctionNode`; ``function=`` a callable or path).

        Raises:
            GraphError: A keyword is unknown or invalid (naming node and keyword).
        """
        return self._add(name, FunctionNode, fields)

    def subgraph(self, name: str, **fields: Any) -> Workflow:
        """Add a node running another workflow (see :class:`GraphNode`).

        ``graph=`` is a :class:`Workflow`, a :class:`GraphSpec` or a YAML file
        (loaded now, so its problems show here).

        Raises:
            GraphError: A keyword is unknown or invalid, or the file does not load.
        """
        inner = fields.get("graph")
        if isinstance(inner, Workflow):
            fields = {**fields, "graph": inner.spec()}
        elif isinstance(inner, str | Path):
            fields = {**fields, "graph": load_graph(inner).spec}
        return self._add(name, GraphNode, fields)

    def merge(self, name: str, **fields: Any) -> Workflow:
        """Add a merge (see :class:`MergeNode`; ``sources=`` is YAML's ``from``).

        Raises:
            GraphError: A keyword is unknown or invalid (naming node and keyword).
        """
        return self._add(name, MergeNode, fields)

    def branch(
        self,
        source: str,
        *,
        cases: Mapping[str, str],
        field: str | None = None,
        by: StateFunction | None = None,
        default: str | None = None,
    ) -> Workflow:
        """Add a conditional edge out of ``source`` (see :class:`BranchSpec`).

        Args:
            source: A node already added.
            cases: Case value -> next node (or ``"END"``).
            field: The field of ``source``'s JSON answer (or ``"verdict"``) that decides.
            by: Instead of ``field``: a function of the run's state returning the case.
            default: Next node for values no case names.

        Raises:
            GraphError: ``source`` is not added yet, or the branch is invalid.
        """
        what = f"branch of {source!r}"
        node = self._nodes.get(source)
        if node is None:
            raise GraphError(self.name, [f"{what}: add node {source!r} first"])
        try:
            branch = BranchSpec(field=field, by=by, cases=dict(cases), default=default)
        except ValidationError as exc:
            raise GraphError(self.name, _problems(what, exc, _keywords(BranchSpec))) from None
        self._nodes[source] = node.model_copy(update={"branch": branch})
        return self

    def edge(self, source: str, target: str) -> Workflow:
        """Add the edge ``source -> target`` (``target`` may be ``"END"``)."""
        self._edges.append((source, target))
        return self

    def spec(self) -> GraphSpec:
        """The graph as data (what a YAML file would validate into).

        Raises:
            GraphError: Invalid graph-level fields (naming the keyword).
        """
        try:
            return GraphSpec(
                name=self.name, nodes=dict(self._nodes), edges=self._edges, **self._graph
            )
        except ValidationError as exc:
            raise GraphError(
                self.name, _problems(f"workflow {self.name!r}", exc, _keywords(GraphSpec))
            ) from None

    def compile(
        self, runtime: Runtime, *, checkpointer: BaseCheckpointSaver[Any] | None = None
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """Check the graph against ``runtime`` and compile it to LangGraph.

        Raises:
            GraphError: A compile-time check failed (every problem listed).
        """
        return compile_graph(self.spec(), runtime, checkpointer=checkpointer)

    def prepare(
        self, runtime: Runtime, *, checkpointer: BaseCheckpointSaver[Any] | None = None
    ) -> GraphRunner:
        """Check and compile once, to run many times (:class:`GraphRunner`).

        Raises:
            GraphError: A compile-time check failed (every problem listed).
        """
        return GraphRunner(self.spec(), runtime, checkpointer=checkpointer)

    async def run(
        self,
        runtime: Runtime,
        input: str | None,
        *,
        run_id: str | None = None,
        budget_usd: float | None = None,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        resume: bool = False,
        on_step: StepListener | None = None,
        on_token: TokenListener | None = None,
        answer: Any = None,
    ) -> RunResult:
        """Run it (see :func:`run_graph`; ``answer`` resumes a paused run)."""
        return await run_graph(
            self.spec(),
            runtime,
            input,
            run_id=run_id,
            budget_usd=budget_usd,
            checkpointer=checkpointer,
            resume=resume,
            on_step=on_step,
            on_token=on_token,
            answer=answer,
        )
