"""Task and complexity classifiers for the ``task`` and ``complexity`` strategies.

- :class:`RuleClassifier`: keywords, length, code and maths detection; no
  dependency, a few microseconds.
- ``agentmesh.resilience.LLMClassifier`` (a layer up: it calls a model
  through the resilient caller) asks a cheap model and falls back to these rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from agentmesh.routing.features import extract, profile

__all__ = [
    "Classification",
    "Classifier",
    "Level",
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
