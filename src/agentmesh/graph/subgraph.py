"""The ``graph`` node kind: another workflow run as one node (a LangGraph subgraph).

.. code-block:: yaml

    review:
      kind: graph
      graph: approval.yaml        # relative to this file; or the graph inline
      input: $summary             # the text it runs on (default: $input)

The inner graph is compiled once, without a checkpointer of its own, and
invoked inside this node: LangGraph then checkpoints it with the outer run (in
the node's namespace), so a run that fails or pauses inside it resumes inside
it, without redoing its finished nodes. Its nodes' spans open inside this
node's span, its calls carry the outer run's id and budget (so they count
against it), and its step records join the outer run's, named
``outer/inner``. Its answer is this node's.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph.state import CompiledStateGraph

from agentmesh.graph.nodes import NodeFailed, NodeRunner, answer
from agentmesh.graph.outputs import output_result
from agentmesh.graph.records import usage_update
from agentmesh.graph.spec import GraphNode, GraphSpec
from agentmesh.graph.state import Branch, RunState
from agentmesh.tracing import SpanScope

__all__ = ["SubgraphRunner", "inner_steps"]


def inner_steps(node: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The inner graph's step records, named ``node/inner``."""
    return [{**s, "node": f"{node}/{s['node']}"} for s in steps]


class SubgraphRunner(NodeRunner):
    """Runs the node's graph on its ``input``; its output is the answer, its steps join ours.

    ``inner`` is the compiled inner graph, set by the compiler (which compiles
    it with the same runtime, without a checkpointer: it uses the outer one).
    """

    kind = "graph"
    node: GraphNode
    inner: CompiledStateGraph[Any, Any, Any, Any] | None = None

    @property
    def spec(self) -> GraphSpec:
        """The inner graph."""
        assert isinstance(self.node.graph, GraphSpec), "a graph node's file is loaded first"
        return self.node.graph

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Invoke the inner graph with the outer run's id and budget; record its steps.

        Raises:
            NodeFailed: An inner node failed (named ``node/inner``, with its steps).
        """
        assert self.inner is not None, "compile_graph sets the inner graph"
        start = {
            "input": str(self.resolve(self.node.input, state, branch) or ""),
            "run_id": state.get("run_id"),
            "budget_usd": state.get("budget_usd"),
        }
        try:
            values = await self.inner.ainvoke(start)
        except NodeFailed as exc:
            failed = NodeFailed(f"{self.name}/{exc.node}", exc.kind, exc.message)
            failed.steps = inner_steps(self.name, exc.steps)
            raise failed from None
        steps = inner_steps(self.name, list(values.get("steps", ())))
        found = output_result(self.spec, values) or ("", None)
        text, data = found
        own = self.step(branch, [], output=data if data is not None else text, graph=self.spec.name)
        result = answer(text, None, branch, data=data)
        totals = usage_update([own])
        return {
            "results": {self.name: {branch["key"]: result}},
            "steps": [*steps, *totals["steps"]],
            "cost_usd": sum(float(s["cost_usd"]) for s in steps),
            "input_tokens": sum(int(s["input_tokens"]) for s in steps),
            "output_tokens": sum(int(s["output_tokens"]) for s in steps),
        }
