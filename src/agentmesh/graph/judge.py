"""The judge node: rule validators, then an LLM rubric; verdicts drive escalation.

A judge judges every answer of its target it has not judged yet (all branches
of a fan-out, concurrently). Rules run first and cost nothing; the LLM judge
runs only when they pass. The verdict's score goes into the routing matrix for
the judged model and task; a failed verdict sends the branch back (see
``compile.py``) until ``max_rounds`` or no stronger model is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from agentmesh.graph.branches import VERDICT
from agentmesh.graph.nodes import ModelNodeRunner, NodeFailed, parse_json, resolve
from agentmesh.graph.records import Step, usage_update
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import GraphSpec, JudgeNode
from agentmesh.graph.state import Branch, RunState, first_branch
from agentmesh.graph.validators import RuleValidator, build_validator
from agentmesh.resilience import CallResult, Verdict, call_until
from agentmesh.tracing import SpanScope, record_evaluation

__all__ = ["JudgeRunner"]


class JudgeRunner(ModelNodeRunner):
    """Judges every not-yet-judged answer of its target: rules first, then the LLM rubric."""

    kind = "judge"
    node: JudgeNode

    def __init__(self, name: str, node: Any, graph: GraphSpec, runtime: Runtime) -> None:
        super().__init__(name, node, graph, runtime)
        self.rules: tuple[RuleValidator, ...] = tuple(
            build_validator(v, runtime.validators) for v in node.validators
        )

    def pending(self, state: RunState) -> list[tuple[str, dict[str, Any]]]:
        """``(branch key, result)`` of the target's answers this judge has not judged yet.

        A judge of several targets (the cases of one branch) judges whichever ran.
        """
        judged = state.get("verdicts", {}).get(self.name, {})
        found = []
        for target in self.node.judged:
            results = state.get("results", {}).get(target, {})
            found += [
                (key, {**result, "target": target})
                for key, result in sorted(results.items())
                if judged.get(key, {}).get("round") != result["round"]
                or judged.get(key, {}).get("target", target) != target
            ]
        return found

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Judge the pending answers concurrently; fail the run if one gives up under ``fail``."""
        pending = self.pending(state)
        judged = await asyncio.gather(*(self._judge(state, key, r) for key, r in pending))
        verdicts = {key: verdict for (key, _), (verdict, _) in zip(pending, judged, strict=True)}
        for (key, result), (verdict, _) in zip(pending, judged, strict=True):
            record_evaluation(
                scope.span,
                name=self.name,
                passed=verdict["passed"],
                score=verdict["score"],
                explanation=verdict["feedback"],
                node=verdict["target"],
                branch=key,
                round=verdict["round"],
                model=verdict["judged_model"],
                gave_up=verdict["gave_up"],
                decision_id=result.get("decision_id"),
            )
        steps = [record for _, record in judged]
        update = {"verdicts": {self.name: verdicts}, **usage_update(steps)}
        given_up = [k for k, v in verdicts.items() if v["gave_up"]]
        if given_up and self.node.on_give_up == "fail":
            last = verdicts[given_up[0]]
            gave_up_on = ", ".join(
                f"{verdicts[key]['target']}[{key}]" if key else verdicts[key]["target"]
                for key in given_up
            )
            message = (
                f"gave up on {gave_up_on} after {self.node.max_rounds} rounds: {last['feedback']}"
            )
            raise NodeFailed(self.name, "judge_gave_up", message, steps)
        return update

    def branch_value(self, state: RunState, field: str) -> Any:
        """``field: verdict``: ``passed`` when every judged answer passed, else ``gave_up``."""
        verdicts = state.get("verdicts", {}).get(self.name, {})
        if field != VERDICT:
            return None
        passed = bool(verdicts) and all(v["passed"] for v in verdicts.values())
        return "passed" if passed else "gave_up"

    async def _judge(
        self, state: RunState, key: str, result: dict[str, Any]
    ) -> tuple[dict[str, Any], Step]:
        branch = Branch(
            key=key,
            step=result.get("step"),
            escalation=result["escalation"],
            round=result["round"],
            feedback=None,
            previous=None,
        )
        text = result["text"]
        calls: list[CallResult] = []
        if result.get("exhausted"):
            why = f"no stronger model to escalate to after round {result['round'] - 1}"
            verdict = Verdict(False, None, why)
        else:
            verdict = _rules(self.rules, text, self._question(state, branch))
            if verdict.passed and self.node.prompt is not None:
                verdict, calls = await self._llm(state, branch, result)
        if verdict.score is not None and result.get("model") and result.get("task"):
            await self.runtime.router.score(result["task"], result["model"], verdict.score)
        gave_up = not verdict.passed and (
            result["round"] >= self.node.max_rounds or bool(result.get("exhausted"))
        )
        data = {
            "passed": verdict.passed,
            "score": verdict.score,
            "feedback": verdict.feedback,
            "round": result["round"],
            "judged_model": result.get("model"),
            "target": result["target"],
            "gave_up": gave_up,
        }
        status = "passed" if verdict.passed else ("gave_up" if gave_up else "rejected")
        record = self.step(branch, calls, status=status, verdict=data)
        return data, record

    @staticmethod
    def _question(state: RunState, branch: Branch) -> str:
        """What the judged answer responds to: the run's input, and the branch's step."""
        step = branch["step"]
        return str(resolve("$input", state)) + (f"\n\nStep: {step}" if step else "")

    async def _llm(
        self, state: RunState, branch: Branch, result: dict[str, Any]
    ) -> tuple[Verdict, list[CallResult]]:
        node = self.node
        assert node.prompt is not None
        inputs = {
            "rubric": node.rubric,
            "candidate": result["text"],
            "task": self._question(state, branch),
            "threshold": node.threshold,
        }
        declared = self.runtime.prompts.template(node.prompt).inputs
        inputs = {k: v for k, v in inputs.items() if k in declared}
        reference, build = self.builder(node.prompt, inputs)
        request = self.route_request(
            state, first_branch(branch["key"]), reference, self.capabilities(node.prompt), build
        )
        outcome = await call_until(
            self.runtime.caller,
            self.call(request, build),
            lambda response: Verdict(_verdict(response.text, node.threshold) is not None),
            max_rounds=2,
            record_scores=False,
        )
        calls = [r.result for r in outcome.rounds if r.result is not None]
        final = outcome.final
        verdict = _verdict(final.response.text, node.threshold) if final is not None else None
        failure = outcome.rounds[-1].failure
        if verdict is None and failure is not None:
            raise self.failed(branch, failure, calls)
        if verdict is None:
            steps = [self.step(branch, calls, status="failed")]
            kind = outcome.rounds[-1].error or "invalid_verdict"
            raise NodeFailed(self.name, kind, "the judge produced no usable verdict", steps)
        return verdict, calls


def _rules(rules: Sequence[RuleValidator], text: str, question: str) -> Verdict:
    failures = [v for v in (rule.judge(text, question) for rule in rules) if not v.passed]
    if not failures:
        return Verdict(True, 1.0 if rules else None)
    score = min(v.score if v.score is not None else 0.0 for v in failures)
    return Verdict(False, score, "; ".join(v.feedback for v in failures))


def _verdict(text: str, threshold: float) -> Verdict | None:
    try:
        data = parse_json(text)
        score = float(data["score"])
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 <= score <= 1:
        return None
    passed = bool(data.get("passed", True)) and score >= threshold
    return Verdict(passed, score, str(data.get("feedback") or ""))
