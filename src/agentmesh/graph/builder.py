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
"""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph

from agentmesh.graph.compile import compile_graph
from agentmesh.graph.run import GraphRunner, RunResult, StepListener, run_graph
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import (
    ExecutorNode,
    GraphSpec,
    JudgeNode,
    MergeNode,
    PlannerNode,
    ToolNode,
)

__all__ = ["Workflow"]


class Workflow:
    """Builds a :class:`GraphSpec` node by node; each method returns the builder.

    Args:
        name: Workflow name (traces, checkpoints).
        **graph: Other :class:`GraphSpec` fields (``policy``, ``budget_usd``,
            ``resilience``, ``entry``, ``output``, ``description``).
    """

    def __init__(self, name: str, **graph: Any) -> None:
        self.name = name
        self._graph = graph
        self._nodes: dict[str, Any] = {}
        self._edges: list[tuple[str, str]] = []

    def _add(self, name: str, node: Any) -> Workflow:
        if name in self._nodes:
            raise ValueError(f"node {name!r} is already defined")
        self._nodes[name] = node
        return self

    def planner(self, name: str, **fields: Any) -> Workflow:
        """Add a planner (see :class:`PlannerNode`)."""
        return self._add(name, PlannerNode(**fields))

    def executor(self, name: str, **fields: Any) -> Workflow:
        """Add an executor (see :class:`ExecutorNode`)."""
        return self._add(name, ExecutorNode(**fields))

    def tool(self, name: str, **fields: Any) -> Workflow:
        """Add a tool node (see :class:`ToolNode`)."""
        return self._add(name, ToolNode(**fields))

    def judge(self, name: str, **fields: Any) -> Workflow:
        """Add a judge (see :class:`JudgeNode`)."""
        return self._add(name, JudgeNode(**fields))

    def merge(self, name: str, **fields: Any) -> Workflow:
        """Add a merge (see :class:`MergeNode`; ``sources=`` is YAML's ``from``)."""
        return self._add(name, MergeNode(**fields))

    def edge(self, source: str, target: str) -> Workflow:
        """Add the edge ``source -> target`` (``target`` may be ``"END"``)."""
        self._edges.append((source, target))
        return self

    def spec(self) -> GraphSpec:
        """The graph as data (what a YAML file would validate into).

        Raises:
            pydantic.ValidationError: Invalid graph-level fields.
        """
        return GraphSpec(name=self.name, nodes=dict(self._nodes), edges=self._edges, **self._graph)

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
    ) -> RunResult:
        """Run it (see :func:`run_graph`)."""
        return await run_graph(
            self.spec(),
            runtime,
            input,
            run_id=run_id,
            budget_usd=budget_usd,
            checkpointer=checkpointer,
            resume=resume,
            on_step=on_step,
        )
