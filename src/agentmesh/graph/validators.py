r"""Rule validators of judge nodes: cheap, deterministic checks run before any LLM judge.

In YAML a judge lists them as ``{name: params}``; Python code may register
its own checks (``Runtime(validators={"cites": fn})``, ``fn(text) -> Verdict
| bool``) and list them by name.

.. code-block:: yaml

    validators:
      - min_words: 40
      - regex: '(?i)\\bsecurity\\b'
      - not_regex: '(?i)looks good to me'
      - json_schema: {type: object, required: [answer]}
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jsonschema

from agentmesh.resilience.escalation import Verdict

__all__ = [
    "VALIDATORS",
    "Check",
    "Contains",
    "JsonSchema",
    "MaxWords",
    "MinWords",
    "NotRegex",
    "Regex",
    "RuleValidator",
    "build_validator",
]

Check = Callable[[str], "Verdict | bool"]
"""A custom rule: the answer text in, a verdict (or pass/fail) out."""


class RuleValidator(ABC):
    """One rule; ``name`` is what YAML writes, the constructor takes its parameter."""

    name: ClassVar[str]

    @abstractmethod
    def __call__(self, text: str) -> Verdict:
        """Judge ``text``; a failure says what to fix."""


class MinWords(RuleValidator):
    """At least ``n`` words."""

    name = "min_words"

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"min_words: a positive integer, got {n!r}")
        self.n = n

    def __call__(self, text: str) -> Verdict:
        """Judge ``text``."""
        words = len(text.split())
        if words >= self.n:
            return Verdict(True, 1.0)
        return Verdict(False, words / self.n, f"too short: {words} words, at least {self.n}")


class MaxWords(RuleValidator):
    """At most ``n`` words."""

    name = "max_words"

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"max_words: a positive integer, got {n!r}")
        self.n = n

    def __call__(self, text: str) -> Verdict:
        """Judge ``text``."""
        words = len(text.split())
        if words <= self.n:
            return Verdict(True, 1.0)
        return Verdict(False, self.n / words, f"too long: {words} words, at most {self.n}")


class Regex(RuleValidator):
    """The text matches a regular expression (``re.search``)."""

    name = "regex"

    def __init__(self, pattern: str) -> None:
        try:
            self.pattern = re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ValueError(f"{self.name}: invalid regex {pattern!r}: {exc}") from None

    def __call__(self, text: str) -> Verdict:
        """Judge ``text``."""
        if self.pattern.search(text):
            return Verdict(True, 1.0)
        return Verdict(False, 0.0, f"must match {self.pattern.pattern!r}")


class NotRegex(Regex):
    """The text does not match a regular expression."""

    name = "not_regex"

    def __call__(self, text: str) -> Verdict:
        """Judge ``text``."""
        found = self.pattern.search(text)
        if found is None:
            return Verdict(True, 1.0)
        return Verdict(False, 0.0, f"must not contain {found.group(0)!r}")


class Contains(RuleValidator):
    """The text contains every one of some phrases (case-insensitive)."""

    name = "contains"

    def __init__(self, phrases: str | list[str]) -> None:
        listed = [phrases] if isinstance(phrases, str) else phrases
        if not listed or not all(isinstance(p, str) and p for p in listed):
            raise ValueError(f"contains: a phrase or a list of phrases, got {phrases!r}")
        self.phrases = tuple(listed)

    def __call__(self, text: str) -> Verdict:
        """Judge ``text``."""
        lowered = text.lower()
        missing = [p for p in self.phrases if p.lower() not in lowered]
        if not missing:
            return Verdict(True, 1.0)
        score = 1 - len(missing) / len(self.phrases)
        return Verdict(False, score, "must mention: " + ", ".join(missing))


class JsonSchema(RuleValidator):
    """The text is JSON that follows a JSON Schema."""

    name = "json_schema"

    def __init__(self, schema: Mapping[str, Any]) -> None:
        if not isinstance(schema, Mapping):
            raise ValueError(f"json_schema: a JSON Schema mapping, got {schema!r}")
        try:
            jsonschema.Draft202012Validator.check_schema(dict(schema))
        except jsonschema.SchemaError as exc:
            raise ValueError(f"json_schema: invalid schema: {exc.message}") from None
        self.validator = jsonschema.Draft202012Validator(dict(schema))

    def __call__(self, text: str) -> Verdict:
        """Judge ``text``."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            return Verdict(False, 0.0, f"not JSON: {exc}")
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(data))
        if error is None:
            return Verdict(True, 1.0)
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return Verdict(False, 0.0, f"JSON at {where}: {error.message}")


VALIDATORS: Mapping[str, Callable[[Any], RuleValidator]] = {
    MinWords.name: MinWords,
    MaxWords.name: MaxWords,
    Regex.name: Regex,
    NotRegex.name: NotRegex,
    Contains.name: Contains,
    JsonSchema.name: JsonSchema,
}
"""Built-in rule validators by YAML name."""


class _Custom(RuleValidator):
    name = "custom"

    def __init__(self, label: str, check: Check) -> None:
        self.label = label
        self.check = check

    def __call__(self, text: str) -> Verdict:
        """Judge ``text``."""
        verdict = self.check(text)
        if isinstance(verdict, Verdict):
            return verdict
        return Verdict(
            bool(verdict), float(bool(verdict)), "" if verdict else f"{self.label} failed"
        )


def build_validator(entry: Any, custom: Mapping[str, Check] | None = None) -> RuleValidator:
    """Build one validator from its YAML form: ``{name: param}`` or a custom check's name.

    Raises:
        ValueError: Unknown name or bad parameter; the message names the validator.
    """
    custom = custom or {}
    if isinstance(entry, str):
        if entry in custom:
            return _Custom(entry, custom[entry])
        name, param = entry, None
    elif isinstance(entry, Mapping) and len(entry) == 1:
        name, param = next(iter(entry.items()))
    else:
        raise ValueError(f"a validator is {{name: parameter}} or a registered name, got {entry!r}")
    if name in custom:
        return _Custom(name, custom[name])
    cls = VALIDATORS.get(name)
    if cls is None:
        known = ", ".join([*VALIDATORS, *custom])
        raise ValueError(f"unknown validator {name!r}; known: {known}")
    if param is None:
        raise ValueError(f"{name}: needs a parameter")
    return cls(param)
