"""Answer extractors: a branch's reply -> the normalised answer it votes for.

An extractor is any callable ``(text) -> str | None`` (:class:`Extractor`);
``None`` means no answer was found (the branch abstains). YAML merge nodes
name one from :data:`EXTRACTORS`; Python code may pass any callable.

- ``number``: the stated answer (``answer is 42``, ``Answer: 42``,
  ``#### 42``), else the last number; normalised (``1,200.50`` -> ``1200.5``,
  ``$3`` -> ``3``, ``-0`` -> ``0``).
- ``choice``: a multiple-choice letter A-D (``the answer is (B)``,
  ``Answer: b``, ``B) ...``, a lone ``B``), upper-cased.
- ``short``: a short answer: the stated answer or the first non-empty line,
  case-folded, without Markdown emphasis, surrounding quotes and punctuation,
  leading articles or repeated spaces (``"The Eiffel Tower."`` -> ``eiffel tower``).
- ``exact``: the whole text, stripped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Protocol, runtime_checkable

__all__ = [
    "EXTRACTORS",
    "ChoiceExtractor",
    "ExactExtractor",
    "Extractor",
    "NumberExtractor",
    "ShortAnswerExtractor",
]


@runtime_checkable
class Extractor(Protocol):
    """Extracts the normalised answer a reply votes for; ``None`` abstains."""

    def __call__(self, text: str) -> str | None:
        """The normalised answer in ``text``, or ``None`` when there is none."""
        ...


_NUMBER = "(?<![\\w.])[-+\u2212]?" + r"\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_NUMBER_RE = re.compile(_NUMBER)
_STATED_NUMBER = re.compile(
    r"(?:answer\s*(?:is|=|:)|^\s*####|result\s*(?:is|=|:)|=)\s*\**\s*(" + _NUMBER + r")",
    re.IGNORECASE | re.MULTILINE,
)


def _normalise_number(raw: str) -> str | None:
    cleaned = raw.replace(",", "").replace("$", "").replace(" ", "").replace("\u2212", "-")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text.removeprefix("+")


@dataclass(frozen=True, slots=True)
class NumberExtractor:
    """The stated number (``answer is``, ``Answer:``, ``####``, ``=``), else the last one."""

    def __call__(self, text: str) -> str | None:
        """The normalised number, or ``None``."""
        stated = _STATED_NUMBER.findall(text)
        found = stated or _NUMBER_RE.findall(text)
        if not found:
            return None
        return _normalise_number(found[-1])


@dataclass(frozen=True, slots=True)
class ChoiceExtractor:
    """A multiple-choice letter among ``letters``.

    Attributes:
        letters: The valid choices (case-insensitive).
    """

    letters: str = "ABCD"

    def __call__(self, text: str) -> str | None:
        """The chosen letter, upper-cased, or ``None``."""
        upper = re.escape(self.letters.upper())
        both = upper + re.escape(self.letters.lower())
        # an upper-case letter anywhere it is stated; a lower-case one only where it
        # cannot be an article or a word ("the answer is a bit unclear")
        patterns = (
            rf"(?i:answer)\s*(?i:is|:)?\s*(?i:option\s*)?\(?([{upper}])\b\)?",
            rf"(?i:answer)\s*(?i:is|:)\s*\(?([{both}])\)?\s*(?:$|[.)])",
            rf"^\s*\(?([{upper}])[).:]\s",
            rf"^\s*\(?([{both}])\)?\.?\s*$",
            rf"\(([{both}])\)",
            rf"(?i:option|choice)\s+([{both}])\b",
        )
        for pattern in patterns:
            found = re.findall(pattern, text, re.MULTILINE)
            if found:
                return str(found[-1]).upper()
        return None


_STATED = re.compile(r"(?:final\s+)?answer\s*(?:is|:)\s*(.+)", re.IGNORECASE)
_ARTICLES = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_EDGES = " \t\"'`*_.,;:!?()[]{}\u201c\u201d\u2018\u2019"


@dataclass(frozen=True, slots=True)
class ShortAnswerExtractor:
    """A short answer: the stated one or the first line, normalised for comparison."""

    def __call__(self, text: str) -> str | None:
        """The normalised short answer, or ``None`` for an empty reply."""
        stated = _STATED.findall(text)
        if stated:
            line = stated[-1]
        else:
            lines = [s for s in text.splitlines() if s.strip()]
            if not lines:
                return None
            line = lines[0]
        answer = " ".join(line.replace("**", "").split()).strip(_EDGES)
        answer = _ARTICLES.sub("", answer).strip(_EDGES).casefold()
        return answer or None


@dataclass(frozen=True, slots=True)
class ExactExtractor:
    """The whole reply, stripped (votes on identical replies)."""

    def __call__(self, text: str) -> str | None:
        """The stripped text, or ``None`` when blank."""
        return text.strip() or None


EXTRACTORS: Mapping[str, Extractor] = MappingProxyType(
    {
        "number": NumberExtractor(),
        "choice": ChoiceExtractor(),
        "short": ShortAnswerExtractor(),
        "exact": ExactExtractor(),
    }
)
"""The extractors YAML merge nodes may name (``params: {extractor: number}``)."""
