"""Prompt profile and features, shared by the rule classifier and the learned router.

:func:`profile` reads a prompt once: one regex pass splits it into words, a
dict maps each word to the task it hints at, a few substring checks find
multi-word phrases, and three short regexes find code and arithmetic. Features
(:data:`FEATURES`, stable names used by learned-router files) and the rule
classifier are then plain arithmetic on the profile: no regex alternations with
``IGNORECASE``, which cost tens of microseconds each on a paragraph.

:func:`terms` gives the word n-grams a learned router of version 2 weighs (the
same word split, digit runs read as ``0``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["FEATURES", "KEYWORDS", "PHRASES", "Profile", "extract", "profile", "terms"]

KEYWORDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "code": frozenset(
            [
                "python",
                "javascript",
                "typescript",
                "rust",
                "golang",
                "java",
                "sql",
                "regex",
                "function",
                "bug",
                "stacktrace",
                "compile",
                "compiler",
                "refactor",
                "diff",
                "api",
                "endpoint",
                "exception",
                "traceback",
                "variable",
                "class",
                "method",
                "library",
                "code",
                "script",
                "debug",
            ]
        ),
        "math": frozenset(
            [
                "solve",
                "equation",
                "integral",
                "derivative",
                "probability",
                "calculate",
                "compute",
                "percent",
                "percentage",
                "ratio",
                "average",
                "sum",
                "product",
                "prime",
                "remainder",
                "multiply",
                "divide",
                "fraction",
                "algebra",
                "geometry",
                "total",
                "cost",
                "costs",
                "dollars",
            ]
        ),
        "extraction": frozenset(["extract", "fields", "field", "parse", "json", "entities"]),
        "summarization": frozenset(["summarize", "summarise", "summary", "tldr", "condense"]),
        "classification": frozenset(
            ["classify", "categorize", "categorise", "label", "triage", "category"]
        ),
        "translation": frozenset(["translate", "translation", "french", "german", "spanish"]),
        "reasoning": frozenset(
            [
                "why",
                "explain",
                "prove",
                "proof",
                "analyze",
                "analyse",
                "compare",
                "tradeoff",
                "tradeoffs",
                "evaluate",
                "justify",
                "derive",
                "design",
                "plan",
                "optimize",
                "optimise",
                "reason",
            ]
        ),
        "writing": frozenset(
            ["write", "draft", "essay", "story", "poem", "email", "rewrite", "letter"]
        ),
    }
)
"""Task -> single words that hint at it (lowercase)."""

PHRASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "code": ("unit test", "stack trace", "```"),
        "math": ("how many", "how much", "sum of"),
        "extraction": ("fill in",),
        "summarization": ("key points", "tl;dr"),
        "classification": ("which category",),
        "translation": ("in french", "in german", "in spanish"),
        "reasoning": ("step by step", "trade-off", "multi-step"),
        "writing": (),
    }
)
"""Task -> multi-word phrases that hint at it (lowercase substrings)."""

_WORD_TASK: Mapping[str, str] = MappingProxyType(
    {word: task for task, words in KEYWORDS.items() for word in words}
)
# Everything but letters and digits separates words.
_SEPARATORS = str.maketrans(dict.fromkeys("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", " "))
# The code-shape regex is slow on prose; run it only when one of these is present.
_CODE_MARKERS = ("def ", "class ", "return", "import ", "=>", ";", "{", "}")
_ARITHMETIC = re.compile(r"\d\s*[-+*/^=\u00d7\u00f7]\s*\d")
_CODE_SHAPE = re.compile(r"\bdef \w+\(|\bclass \w+[:(]|\breturn\b|\bimport \w|=>|[;{}]\s*\n")
_CHOICE = re.compile(r"^\s*\(?[A-D][).:]\s", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Profile:
    """What one read of a prompt found.

    Attributes:
        chars: Length in characters.
        words: Number of words (letter or digit runs).
        digits: Number of digit characters.
        lines: Number of line breaks.
        questions: Number of question marks.
        cues: Task -> number of keyword, phrase and shape hints.
        choices: Lines that look like multiple-choice options (``A)``, ``B.``...).
    """

    chars: int
    words: int
    digits: int
    lines: int
    questions: int
    cues: Mapping[str, int]
    choices: int


def profile(text: str) -> Profile:
    """Read ``text`` once and count what the classifier and features need."""
    lower = text.lower()
    tokens = lower.translate(_SEPARATORS).split()  # str methods run in C
    cues = dict.fromkeys(KEYWORDS, 0)
    word_task = _WORD_TASK
    for word, count in Counter(tokens).items():
        task = word_task.get(word)
        if task is not None:
            cues[task] += count
    digits = sum(map(text.count, "0123456789"))
    for task, phrases in PHRASES.items():
        for phrase in phrases:
            if phrase in lower:
                cues[task] += lower.count(phrase)
    if digits:
        cues["math"] += len(_ARITHMETIC.findall(text))
    if any(marker in text for marker in _CODE_MARKERS):
        cues["code"] += len(_CODE_SHAPE.findall(text))
    return Profile(
        chars=len(text),
        words=len(tokens),
        digits=digits,
        lines=text.count("\n"),
        questions=text.count("?"),
        cues=cues,
        choices=len(_CHOICE.findall(text)) if "\n" in text else 0,
    )


def _capped(task: str, cap: int) -> Callable[[Profile], float]:
    def feature(p: Profile) -> float:
        return min(cap, p.cues[task]) / cap

    return feature


FEATURES: Mapping[str, Callable[[Profile], float]] = MappingProxyType(
    {
        "log_chars": lambda p: math.log1p(p.chars) / 10.0,
        "log_words": lambda p: math.log1p(p.words) / 8.0,
        "digit_ratio": lambda p: p.digits / max(1, p.chars),
        "code": _capped("code", 5),
        "math": _capped("math", 5),
        "reasoning": _capped("reasoning", 3),
        "choices": lambda p: min(4, p.choices) / 4,
        "questions": lambda p: min(5, p.questions) / 5,
        "lines": lambda p: min(40, p.lines) / 40,
    }
)
"""Feature name -> function of a :class:`Profile`, each roughly in [0, 1]."""


def extract(text: str | Profile, names: tuple[str, ...] | None = None) -> dict[str, float]:
    """The named features (all by default) of a prompt or of its profile.

    Raises:
        KeyError: An unknown feature name.
    """
    read = text if isinstance(text, Profile) else profile(text)
    return {name: FEATURES[name](read) for name in (names or tuple(FEATURES))}


def terms(text: str, order: int = 2) -> set[str]:
    """The distinct word n-grams of ``text``, n = 1..``order`` (lowercase; numbers read as ``0``).

    Words are split exactly as :func:`profile` splits them; bigrams are joined by
    one space (``"which of"``). About 10 µs for a paragraph.
    """
    tokens = ["0" if t.isdigit() else t for t in text.lower().translate(_SEPARATORS).split()]
    grams = set(tokens)
    for n in range(2, order + 1):
        grams.update(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams
