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
      - cascade: ../models/routers/gsm8k-cascade.json   # a trained cascade judge

``cascade`` reads the answer *and* the question (the run's input, plus the
step of a planned branch): a judge trained by ``agentmesh train-router
--cascade`` re-checks the working and fails answers it finds likely wrong. In a
YAML graph its file is relative to the graph file.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jsonschema

from agentmesh._jsontext import loads as json_loads
from agentmesh.resilience.escalation import Verdict

__all__ = [
    "VALIDATORS",
    "CascadeJudge",
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
    """One rule; ``name`` is what YAML writes, the constructor takes its parameter.

    ``reads_file``: the parameter names a file (or is ``{file: ..., ...}``); a
    YAML graph's loader makes a relative one relative to the graph file.
    """

    name: ClassVar[str]
    reads_file: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, text: str) -> Verdict:
        """Judge ``text``; a failure says what to fix."""

    def judge(self, text: str, question: str) -> Verdict:
        """Judge ``text`` as the answer to ``question``; most rules read only the text."""
        return self(text)


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
            data = json_loads(text)
        except ValueError as exc:
            return Verdict(False, 0.0, f"not JSON: {exc}")
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(data))
        if error is None:
            return Verdict(True, 1.0)
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return Verdict(False, 0.0, f"JSON at {where}: {error.message}")


class CascadeJudge(RuleValidator):
    """A trained cascade judge (``agentmesh train-router --cascade``) over answer and question.

    The parameter is the judge file, or ``{file: FILE, threshold: T}``. The
    judge's escalate score (how likely the answer is wrong, in (0, 1)) above
    the threshold (default: the file's own, calibrated when it was trained)
    fails the answer; the verdict's score is 1 minus it, and the feedback names
    the checks that failed (a calculation that does not check out, an unused
    quantity...), for the model asked next. Scoring is pure Python, well under
    a millisecond per answer.
    """

    name = "cascade"
    reads_file = True

    def __init__(self, param: str | Mapping[str, Any]) -> None:
        from agentmesh.evaluation.cascade import CascadeModel

        threshold: Any = None
        if isinstance(param, Mapping) and "file" in param and set(param) <= {"file", "threshold"}:
            file, threshold = param["file"], param.get("threshold")
        else:
            file = param
        if not isinstance(file, str) or not file:
            raise ValueError(
                f"cascade: a judge file or {{file: FILE, threshold: T}}, got {param!r}"
            )
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 < threshold < 1
        ):
            raise ValueError(f"cascade: threshold must be a number in (0, 1), got {threshold!r}")
        self.model = CascadeModel.load(file)
        self.threshold = float(threshold) if threshold is not None else self.model.threshold

    def __call__(self, text: str) -> Verdict:
        """Judge ``text`` without its question (the question-reading checks see none)."""
        return self.judge(text, "")

    def judge(self, text: str, question: str) -> Verdict:
        """Judge ``text`` as the answer to ``question``."""
        wrong, notes = self.model.judge(text, question)
        if wrong <= self.threshold:
            return Verdict(True, 1.0 - wrong)
        why = f"the answer looks wrong (cascade judge {wrong:.2f} > {self.threshold:.2f})"
        return Verdict(False, 1.0 - wrong, why + (": " + "; ".join(notes) if notes else ""))


VALIDATORS: Mapping[str, Callable[[Any], RuleValidator]] = {
    MinWords.name: MinWords,
    MaxWords.name: MaxWords,
    Regex.name: Regex,
    NotRegex.name: NotRegex,
    Contains.name: Contains,
    JsonSchema.name: JsonSchema,
    CascadeJudge.name: CascadeJudge,
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
