"""Task and complexity classifiers for the ``task`` and ``complexity`` strategies.

- :class:`RuleClassifier`: keywords, length, code and maths detection; no
  dependency, a few microseconds.
- :class:`LLMClassifier`: asks a cheap model, chosen by the router itself, for
  a JSON verdict; falls back to the rules when that call fails, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from agentmesh._jsontext import loads as json_loads
from agentmesh.routing.features import KEYWORDS, extract, profile

if TYPE_CHECKING:
    from agentmesh.models.gateway import Gateway
    from agentmesh.routing.policy import Policy
    from agentmesh.routing.router import Router

__all__ = [
    "Classification",
    "Classifier",
    "LLMClassifier",
    "RuleClassifier",
    "level_of",
]

Level = Literal["low", "medium", "high"]


@dataclass(frozen=True, slots=True)
class Classification:
    """A classifier's verdict on one prompt.

    Attributes:
        task: Task label (one of the classifier's tasks, else ``general``).
        complexity: Estimated difficulty in [0, 1].
        level: ``low`` / ``medium`` / ``high`` bands of ``complexity``.
        source: Which classifier decided (``rules``, ``llm:<model>``...).
        evidence: Short human-readable grounds for the verdict.
    """

    task: str
    complexity: float
    level: Level
    source: str
    evidence: str


@runtime_checkable
class Classifier(Protocol):
    """Labels a prompt with a task and a complexity."""

    async def classify(self, text: str) -> Classification:
        """Classify ``text``."""
        ...


_BANDS: tuple[tuple[float, Level], ...] = ((0.3, "low"), (0.6, "medium"), (1.01, "high"))


def level_of(complexity: float) -> Level:
    """The band of a complexity score: below 0.3 low, below 0.6 medium, else high."""
    return next(level for bound, level in _BANDS if complexity < bound)


@dataclass(frozen=True, slots=True)
class RuleClassifier:
    """Keyword, phrase and shape rules over one :func:`profile` of the prompt.

    The task with the most cues wins (ties in the order of
    :data:`~agentmesh.routing.features.KEYWORDS`); complexity combines length,
    reasoning, maths, code and line count as a noisy-OR, so each strong signal
    alone can make a prompt hard.

    Attributes:
        default_task: Label when no task has a cue.
    """

    default_task: str = "general"

    def classify_now(self, text: str) -> Classification:
        """Synchronous classification (the rules never wait)."""
        read = profile(text)
        best = max(read.cues.values(), default=0)
        task = self.default_task
        if best:
            task = next(t for t, n in read.cues.items() if n == best)
        f = extract(read, ("reasoning", "math", "code", "lines"))
        signals = (
            (0.5, min(1.0, read.words / 300)),
            (0.6, f["reasoning"]),
            (0.4, f["math"]),
            (0.4, f["code"]),
            (0.2, f["lines"]),
        )
        easy = 1.0
        for weight, value in signals:
            easy *= 1.0 - weight * value
        complexity = 1.0 - easy
        evidence = f"{read.words} words; {best} {task} cue(s); reasoning {f['reasoning']:.2f}"
        return Classification(task, round(complexity, 4), level_of(complexity), "rules", evidence)

    async def classify(self, text: str) -> Classification:
        """Classify ``text`` by the rules."""
        return self.classify_now(text)


_LEVEL_SCORE: Mapping[str, float] = MappingProxyType({"low": 0.15, "medium": 0.45, "high": 0.8})


@dataclass(frozen=True, slots=True)
class LLMClassifier:
    """Asks a cheap model for ``{"task": ..., "complexity": "low|medium|high"}``.

    The model is chosen by ``router`` (give it a router whose own classifier is
    the rules, e.g. ``Router(catalog, state=shared_state)``) under ``policy``
    (default: cheapest model with JSON output), called through ``gateway``, and
    the call is recorded like any other. Any failure falls back to ``fallback``.
    """

    router: Router
    gateway: Gateway
    policy: Policy | None = None
    tasks: tuple[str, ...] = (*KEYWORDS, "general")
    fallback: RuleClassifier = field(default_factory=RuleClassifier)

    async def classify(self, text: str) -> Classification:
        """Classify ``text`` with the model, or by the rules if the model fails."""
        from agentmesh.models.errors import ModelError
        from agentmesh.models.spec import Capability
        from agentmesh.models.types import ModelRequest, ResponseFormat
        from agentmesh.routing.policy import Policy
        from agentmesh.routing.types import Outcome, RouteRequest, RoutingError

        schema = {
            "type": "object",
            "properties": {
                "task": {"type": "string", "enum": list(self.tasks)},
                "complexity": {"type": "string", "enum": list(_LEVEL_SCORE)},
            },
            "required": ["task", "complexity"],
        }
        policy = self.policy or Policy(strategy="cheapest", require=frozenset({Capability.JSON}))
        request = RouteRequest(
            node="classifier", role="classifier", prompt=text, max_output_tokens=64
        )
        try:
            decision = await self.router.route(request, policy)
        except RoutingError as exc:
            return self._fallback(text, f"no classifier model: {exc}")
        instruction = (
            "Classify the user's request. Answer with JSON: task is one of "
            f"{', '.join(self.tasks)}; complexity is low, medium or high."
        )
        call = ModelRequest.of(
            text[:4000],
            system=instruction,
            max_tokens=64,
            temperature=0,
            response_format=ResponseFormat(schema, name="classification"),
        )
        try:
            response = await self.gateway.invoke(decision.chosen, call)
        except ModelError as exc:
            await self.router.record(decision, Outcome(decision.chosen, error=exc.kind))
            return self._fallback(text, f"{decision.chosen} failed: {exc.kind}")
        await self.router.record(
            decision,
            Outcome(
                decision.chosen,
                latency_ms=response.latency_ms,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cost_usd=response.cost_usd,
            ),
        )
        try:
            verdict = json_loads(response.text)
            task, level = str(verdict["task"]), str(verdict["complexity"])
            score = _LEVEL_SCORE[level]
        except (ValueError, KeyError, TypeError):
            return self._fallback(text, f"{decision.chosen} answered {response.text[:60]!r}")
        if task not in self.tasks:
            task = self.fallback.default_task
        return Classification(
            task, score, level_of(score), f"llm:{decision.chosen}", f"{decision.chosen} said so"
        )

    def _fallback(self, text: str, why: str) -> Classification:
        found = self.fallback.classify_now(text)
        return Classification(
            found.task,
            found.complexity,
            found.level,
            "rules (llm fallback)",
            f"{why}; {found.evidence}",
        )
