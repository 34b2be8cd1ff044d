"""`LLMClassifier`: a routing classifier that asks a cheap model, through the one call path.

It implements :class:`agentmesh.routing.Classifier` but lives a layer above
routing because it makes a model call: routing, retries, fallbacks, breakers,
budgets and records all come from the :class:`ResilientCaller` it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from agentmesh._jsontext import loads as json_loads
from agentmesh.models.spec import Capability
from agentmesh.models.types import ModelRequest, ResponseFormat
from agentmesh.resilience.call import Call, CallFailed
from agentmesh.resilience.caller import ResilientCaller
from agentmesh.routing.classify import Classification, RuleClassifier, level_of
from agentmesh.routing.features import KEYWORDS
from agentmesh.routing.policy import Policy
from agentmesh.routing.types import RouteRequest

__all__ = ["LLMClassifier"]

_LEVEL_SCORE: Mapping[str, float] = MappingProxyType({"low": 0.15, "medium": 0.45, "high": 0.8})
_CHEAPEST_JSON = Policy(strategy="cheapest", require=frozenset({Capability.JSON}))


@dataclass(frozen=True, slots=True)
class LLMClassifier:
    """Asks a cheap model for ``{"task": ..., "complexity": "low|medium|high"}``.

    The call goes through ``caller`` like any node's (give it a caller whose
    router classifies by the rules, e.g. ``ResilientCaller(Router(catalog,
    state=shared_state), gateway)``, or the classifier would classify its own
    prompt) under ``policy`` (default: the cheapest model with JSON output).
    Any failure, or an answer that does not parse, falls back to ``fallback``
    and says why in the verdict's evidence.

    Attributes:
        caller: The resilient caller that routes and makes the call.
        policy: Routing policy of the classifier's call.
        tasks: The labels the model may answer.
        fallback: The rules used when the model cannot answer.
    """

    caller: ResilientCaller
    policy: Policy | None = None
    tasks: tuple[str, ...] = (*KEYWORDS, "general")
    fallback: RuleClassifier = field(default_factory=RuleClassifier)

    def _call(self, text: str) -> Call:
        schema = {
            "type": "object",
            "properties": {
                "task": {"type": "string", "enum": list(self.tasks)},
                "complexity": {"type": "string", "enum": list(_LEVEL_SCORE)},
            },
            "required": ["task", "complexity"],
        }
        instruction = (
            "Classify the user's request. Answer with JSON: task is one of "
            f"{', '.join(self.tasks)}; complexity is low, medium or high."
        )
        request = ModelRequest.of(
            text[:4000],
            system=instruction,
            max_tokens=64,
            temperature=0,
            response_format=ResponseFormat(schema, name="classification"),
        )
        route = RouteRequest(
            node="classifier", role="classifier", prompt=text, max_output_tokens=64
        )
        return Call(route, request, self.policy or _CHEAPEST_JSON, allow_empty=False)

    async def classify(self, text: str) -> Classification:
        """Classify ``text`` with the model, or by the rules if the model fails."""
        try:
            result = await self.caller.call(self._call(text))
        except CallFailed as failure:
            return self._fallback(text, f"no classifier answer ({failure.kind}): {failure}")
        model, answer = result.model, result.response.text
        try:
            verdict = json_loads(answer)
            task, level = str(verdict["task"]), str(verdict["complexity"])
            score = _LEVEL_SCORE[level]
        except (ValueError, KeyError, TypeError):
            return self._fallback(text, f"{model} answered {answer[:60]!r}")
        if task not in self.tasks:
            task = self.fallback.default_task
        return Classification(task, score, level_of(score), f"llm:{model}", f"{model} said so")

    def _fallback(self, text: str, why: str) -> Classification:
        found = self.fallback.classify_now(text)
        return Classification(
            found.task,
            found.complexity,
            found.level,
            "rules (llm fallback)",
            f"{why}; {found.evidence}",
        )
