"""Human in the loop: the ``human`` node kind and the gate of ``interrupt: after``.

Both pause the run with LangGraph's ``interrupt`` (:func:`~agentmesh.graph.pause.ask`)
before they open their span, so a paused run has no half-open node span; the
span of the decision is recorded when the run resumes with the answer. The
answer is the node's verdict: a ``branch: {field: verdict}`` goes on from it
(``approved`` -> publish, ``rejected`` -> revise and ask again).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from typing import Any

from agentmesh.graph.branches import VERDICT, read_field
from agentmesh.graph.loops import visited
from agentmesh.graph.nodes import NodeFailed, NodeRunner, answer
from agentmesh.graph.pause import Answer, InvalidAnswer, ask
from agentmesh.graph.records import usage_update
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import GraphSpec, HumanNode
from agentmesh.graph.state import Branch, RunState
from agentmesh.tracing import SpanScope, node_span
from agentmesh.tracing.attributes import NODE_BRANCH, NODE_VERDICT

__all__ = ["HumanGate", "HumanRunner"]


def _text(decision: Answer) -> str:
    if decision.verdict == "answered":
        return json.dumps(decision.value, ensure_ascii=False)
    return decision.feedback or decision.verdict


class _Asking(NodeRunner):
    """Shared by nodes that ask a person: pause, then record the answer in a span."""

    accepts: tuple[str, ...] = ("approve", "reject")
    counts_visits = True

    @abstractmethod
    def payload(self, state: RunState, branch: Branch) -> dict[str, Any]:
        """What the person is shown."""

    @abstractmethod
    def decided(self, decision: Answer, state: RunState, branch: Branch) -> dict[str, Any]:
        """The state update recording ``decision``."""

    async def __call__(self, state: RunState) -> dict[str, Any]:
        """Pause for the answer (no span while waiting), then record it in the node's span.

        Raises:
            NodeFailed: The run was resumed with an answer this node does not
                take (``invalid_answer``), or the loop bound is reached.
        """
        branch = self.entered(state, counted=self.counts_visits)
        try:
            decision = ask(self.payload(state, branch), self.accepts)
        except InvalidAnswer as exc:
            raise NodeFailed(self.name, "invalid_answer", str(exc)) from None
        with node_span(
            self.name, "human", run_id=state.get("run_id"), attributes={NODE_BRANCH: branch["key"]}
        ) as scope:
            scope.set(NODE_VERDICT, decision.verdict)
            update = self.decided(decision, state, branch)
        return {**update, **visited(self.name)} if self.counts_visits else update

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Never called: the pause must come before the span, so ``__call__`` does the work.

        Raises:
            TypeError: Always (a subclass calling the base ``__call__`` is a bug).
        """
        raise TypeError(f"{type(self).__name__} runs in __call__, not run()")


class HumanRunner(_Asking):
    """``kind: human``: shows ``question`` and the ``show`` values, records the answer."""

    kind = "human"
    node: HumanNode

    def __init__(self, name: str, node: Any, graph: GraphSpec, runtime: Runtime) -> None:
        super().__init__(name, node, graph, runtime)
        self.accepts = tuple(node.accepts)

    def payload(self, state: RunState, branch: Branch) -> dict[str, Any]:
        """``{node, question, accepts, **show}``."""
        shown = {k: self.resolve(v, state, branch) for k, v in self.node.show.items()}
        return {
            "node": self.name,
            "question": self.node.question,
            "accepts": list(self.accepts),
            **shown,
        }

    def decided(self, decision: Answer, state: RunState, branch: Branch) -> dict[str, Any]:
        """The answer as the node's result (``{verdict, feedback, value}``) and its step."""
        data = decision.to_dict()
        record = self.step(branch, [], status=decision.verdict, output=data)
        result = answer(_text(decision), None, branch, data=data)
        return {"results": {self.name: {branch["key"]: result}}, **usage_update([record])}


class HumanGate(_Asking):
    """The node after a node with ``interrupt: after``: shows its answer, records the verdict.

    It has the node's name in records and spans; its branch (the node's
    ``branch``) reads ``verdict`` from the person's answer, any other field
    from the node's own output.
    """

    kind = "human"
    counts_visits = False  # the node it follows counted the visit

    def __init__(self, runner: NodeRunner) -> None:
        super().__init__(runner.name, runner.node, runner.graph, runner.runtime)
        self.runner = runner

    def payload(self, state: RunState, branch: Branch) -> dict[str, Any]:
        """``{node, when: after, output}``."""
        found = state.get("results", {}).get(self.name, {})
        ordered = [found[k] for k in sorted(found)]
        output = [r["data"] if r.get("data") is not None else r["text"] for r in ordered]
        return {
            "node": self.name,
            "when": "after",
            "output": output[0] if len(output) == 1 else output,
        }

    def decided(self, decision: Answer, state: RunState, branch: Branch) -> dict[str, Any]:
        """The verdict under ``verdicts[node]``, and a step of kind ``human``."""
        record = self.step(branch, [], status=decision.verdict, output=decision.to_dict())
        verdicts = {self.name: {branch["key"]: decision.to_dict()}}
        return {"verdicts": verdicts, **usage_update([record])}

    def branch_value(self, state: RunState, field: str) -> Any:
        """``verdict``: the person's; other fields: the node's own output."""
        if field == VERDICT:
            mine = state.get("verdicts", {}).get(self.name, {})
            return read_field(mine[min(mine)], VERDICT) if mine else None
        return self.runner.branch_value(state, field)
