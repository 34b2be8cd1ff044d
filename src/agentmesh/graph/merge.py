"""The merge node: fan-in through a synthesis strategy, provenance kept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentmesh.graph.nodes import ModelNodeRunner, NodeFailed, answer
from agentmesh.graph.records import ErrorInfo, RouteSummary, Step, usage_update
from agentmesh.graph.spec import MergeNode
from agentmesh.graph.state import Branch, RunState
from agentmesh.synthesis import Item, SynthesisContext, SynthesisError, SynthesisResult
from agentmesh.tracing import SpanScope

__all__ = ["MergeRunner"]


class MergeRunner(ModelNodeRunner):
    """Synthesizes the answers of every branch of its sources (see ``agentmesh.synthesis``)."""

    kind = "merge"
    node: MergeNode

    def items(self, state: RunState) -> list[Item]:
        """The sources' answers as synthesis items (``source`` = node or ``node[branch]``)."""
        results = state.get("results", {})
        items: list[Item] = []
        for source in self.node.sources:
            found = results.get(source, {})
            for key in sorted(found):
                label = f"{source}[{key}]" if key else source
                items.append(Item(found[key]["text"], label, found[key].get("model")))
        return items

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Synthesize; one step record with every synthesis call's attempts."""
        node = self.node
        ctx = SynthesisContext(
            caller=self.runtime.caller,
            prompts=self.runtime.prompts,
            question=str(self.resolve(node.question, state, branch) or ""),
            node=self.name,
            run_id=state.get("run_id"),
            task=node.task,
            policy=self.policy(),
            max_output_tokens=node.max_output_tokens,
            resilience=self.resilience(),
            run_budget_usd=state.get("budget_usd"),
        )
        try:
            result = await node.synthesis.synthesize(self.items(state), ctx)
        except SynthesisError as exc:
            error = ErrorInfo("synthesis_failed", str(exc))
            record = self._record(branch, exc.calls, status="failed", error=error)
            raise NodeFailed(self.name, "synthesis_failed", str(exc), [record]) from None
        scope.set_attributes(result.trace_attributes())
        record = self._record(branch, result.calls, result=result)
        merged = {**answer(result.text, None, branch), "model": record.model}
        return {"results": {self.name: {branch["key"]: merged}}, **usage_update([record])}

    def _record(
        self,
        branch: Branch,
        calls: Sequence[Any],
        *,
        status: str = "ok",
        result: SynthesisResult | None = None,
        error: ErrorInfo | None = None,
    ) -> Step:
        answered = [c for c in calls if c.model is not None]
        last = answered[-1] if answered else None
        route = None
        if last is not None:
            stage_policy = self.node.synthesis.stages.get(last.stage) or self.policy()
            route = RouteSummary(stage_policy.strategy, last.reason, last.decision_id)
        return Step(
            self.name,
            self.kind,
            branch["key"],
            branch["round"],
            last.model if last is not None else None,
            status,
            branch["escalation"],
            tuple(a for c in calls for a in c.attempts),
            route,
            result.text if result is not None else None,
            error,
            {
                "synthesis": result.provenance.to_dict() if result is not None else None,
                "calls": [c.to_dict() for c in calls],
            },
        )
