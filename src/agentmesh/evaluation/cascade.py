r"""Cascade judges: score a weak model's answer, escalate the low ones to the strong model.

A cascade always calls the weak model first; validators read its answer and
the question, and a low combined score sends the query to the strong model.
Each validator is a function ``(response, prompt) -> float`` in ``[0, 1]``
(1 = nothing suspicious), registered by name in :data:`VALIDATORS`:

- ``answer_present``: a final answer is stated (``#### 18``, ``the answer is 18``).
- ``arithmetic``: every arithmetic step found (``16 - 3 = 13``, ``<<9*2=18>>``)
  re-evaluates to the value written; one wrong step scores 0.
- ``consistent``: the final answer is a number the working computed (or the last result).
- ``complete``: the answer does not stop mid-computation (truncated output).
- ``no_hedging``: no hedging or second-guessing ("however", "assume", "approximately").
- ``uses_inputs``: the working uses the numbers the question gives.
- ``concise``: not unusually long for its number of steps.

:class:`CascadeModel` combines them: a logistic model over the validator scores
(and two size signals), trained on rows with the weak model's responses
(:func:`fit_cascade`), or the hand-set :data:`DEFAULT_WEIGHTS`. Its
``escalate_score`` is higher when the answer looks wrong.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "CASCADE_FORMAT",
    "DEFAULT_WEIGHTS",
    "SIGNALS",
    "VALIDATORS",
    "CascadeModel",
    "arithmetic_steps",
    "final_answer",
    "safe_eval",
    "signal_matrix",
    "signals",
]

CASCADE_FORMAT = "agentmesh-cascade-router"

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"
_FINAL = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)", re.I
)
_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_STEP = re.compile(
    r"([\d.,$+\-*/x\u00d7\u00f7()%\\ ]+)=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)"
    r"(?![\d.]*\s*[-+*/x]\s*[($]*\s*\d)"
)
_HAS_OPERATION = re.compile(r"\d\s*\)?\s*(?:[-+*/x\u00d7\u00f7]|\\\*)\s*\(?\s*\$?\d")
_NUMBERS = re.compile(r"\d[\d,]*(?:\.\d+)?")
_HEDGES = (
    "however",
    "assume",
    "assuming",
    "approximately",
    "approx",
    "roughly",
    "not possible",
    "can't",
    "cannot",
    "impossible",
    "unclear",
    "not enough information",
    "wait",
    "actually",
    "mistake",
    "i think",
    "round",
    "it seems",
    "likely",
    "estimate",
)
_OPS: Mapping[type[ast.AST], Callable[[Any, Any], Any]] = MappingProxyType(
    {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Div: operator.truediv,
        ast.Pow: operator.pow,
    }
)


def _number(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        return float(cleaned)
    except ValueError:
        return None


def safe_eval(expression: str) -> float | None:
    """The value of a plain arithmetic expression (``+ - * / **``, parentheses), else ``None``.

    Only numbers and those operators are accepted (``x`` and the multiplication sign
    read as ``*``, the division sign as ``/``, ``%`` as ``/100``, ``$`` and thousands
    commas dropped); nothing is executed.
    """
    text = (
        expression.replace("\\*", "*")
        .replace("\u00d7", "*")
        .replace("\u00f7", "/")
        .replace("$", "")
        .replace("^", "**")
    )
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", text)
    text = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", text)
    if len(text) > 200:
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 12:
                raise ValueError("exponent too large")
            return float(_OPS[type(node.op)](left, right))
        raise ValueError("not arithmetic")

    try:
        value = walk(tree)
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return value if math.isfinite(value) else None


def _close(computed: float, written: float) -> bool:
    if abs(computed - written) <= 1e-6 + 0.011 * abs(written):
        return True
    # 2/3 = 0.67, 7.5 = 8 (rounding a count up or down is a choice, not an arithmetic slip)
    return abs(round(computed) - written) < 1e-9 or abs(round(computed, 2) - written) < 1e-9


def _balanced(expression: str) -> str:
    text = expression.strip()
    while text.startswith(")") or (text.startswith("(") and text.count("(") > text.count(")")):
        text = text[1:].lstrip()
    while text.endswith("(") or (text.endswith(")") and text.count(")") > text.count("(")):
        text = text[:-1].rstrip()
    return text


def arithmetic_steps(response: str) -> list[tuple[str, float | None, float]]:
    """Every ``expression = value`` step of ``response``: (expression, its value, value written).

    Calculator annotations (``<<9*2=18>>``) and inline steps (``9 * $2 = $18``) are
    both read; an inline step that repeats an annotation is counted once.
    """
    steps: list[tuple[str, float | None, float]] = []
    seen: set[tuple[str, float]] = set()
    for expression, result in _ANNOTATION.findall(response):
        written = _number(result)
        if written is None:
            continue
        key = (expression.replace(" ", ""), written)
        seen.add(key)
        steps.append((expression, safe_eval(expression), written))
    plain = _ANNOTATION.sub(" ", response)
    for raw, result in _STEP.findall(plain):
        expression = _balanced(raw)
        written = _number(result)
        if (
            written is None
            or not _HAS_OPERATION.search(expression)
            or expression.startswith(("+", "-", "*", "/", "x"))
        ):
            continue
        key = (expression.replace(" ", "").replace("$", ""), written)
        if key in seen:
            continue
        seen.add(key)
        steps.append((expression, safe_eval(expression), written))
    return steps


def final_answer(response: str) -> float | None:
    """The stated final answer (``#### N``, else ``answer is N``), or ``None``."""
    found = _FINAL.findall(response)
    if found:
        return _number(found[-1])
    found = _ANSWER_IS.findall(response)
    return _number(found[-1]) if found else None


def _answer_present(response: str, prompt: str) -> float:
    return 1.0 if final_answer(response) is not None else 0.0


def _arithmetic(response: str, prompt: str) -> float:
    steps = [s for s in arithmetic_steps(response) if s[1] is not None]
    if not steps:
        return 0.5
    wrong = sum(1 for _, computed, written in steps if not _close(computed or 0.0, written))
    return 0.0 if wrong else 1.0


def _consistent(response: str, prompt: str) -> float:
    answer = final_answer(response)
    if answer is None:
        return 0.0
    steps = arithmetic_steps(response)
    if not steps:
        return 0.5
    results = [w for _, _, w in steps] + [c for _, c, _ in steps if c is not None]
    if any(_close(answer, r) for r in results[-3:]) or _close(answer, steps[-1][2]):
        return 1.0
    return 0.6 if any(_close(answer, r) for r in results) else 0.0


def _complete(response: str, prompt: str) -> float:
    tail = response.rstrip()
    if not tail:
        return 0.0
    if _FINAL.search(tail[-40:]) or final_answer(tail[-120:]) is not None:
        return 1.0
    if tail.endswith((".", "!", ")", "*")):
        return 0.6
    return 0.0


def _no_hedging(response: str, prompt: str) -> float:
    lower = response.lower()
    hits = sum(1 for h in _HEDGES if h in lower)
    return 1.0 / (1.0 + hits)


def _uses_inputs(response: str, prompt: str) -> float:
    given = {n.replace(",", "") for n in _NUMBERS.findall(prompt)}
    if not given:
        return 1.0
    used = {n.replace(",", "") for n in _NUMBERS.findall(response)}
    return len(given & used) / len(given)


def _concise(response: str, prompt: str) -> float:
    words = len(response.split())
    steps = max(1, len(arithmetic_steps(response)))
    return 1.0 / (1.0 + max(0.0, words / steps - 40.0) / 40.0)


VALIDATORS: Mapping[str, Callable[[str, str], float]] = MappingProxyType(
    {
        "answer_present": _answer_present,
        "arithmetic": _arithmetic,
        "consistent": _consistent,
        "complete": _complete,
        "no_hedging": _no_hedging,
        "uses_inputs": _uses_inputs,
        "concise": _concise,
    }
)
"""Validator name -> ``(response, prompt) -> score in [0, 1]`` (1 = looks right)."""

SIGNALS: tuple[str, ...] = (*VALIDATORS, "log_steps", "log_words")
"""Inputs of a :class:`CascadeModel`: the validators plus two size signals."""


def signals(response: str, prompt: str) -> dict[str, float]:
    """Every validator's score, plus ``log_steps`` and ``log_words`` (scaled to ~[0, 1])."""
    values = {name: check(response, prompt) for name, check in VALIDATORS.items()}
    values["log_steps"] = math.log1p(len(arithmetic_steps(response))) / 3.0
    values["log_words"] = math.log1p(len(response.split())) / 6.0
    return values


DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "answer_present": 1.5,
        "arithmetic": 2.0,
        "consistent": 1.5,
        "complete": 1.0,
        "no_hedging": 1.0,
        "uses_inputs": 1.0,
        "concise": 0.5,
    }
)
"""Hand-set weights of the untrained cascade (each validator's vote for "looks right")."""


@dataclass(frozen=True, slots=True)
class CascadeModel:
    """Logistic judge over validator scores: ``p(answer wrong)``; high = escalate.

    File format (JSON)::

        {"format": "agentmesh-cascade-router", "version": 1,
         "signals": ["answer_present", ...], "weights": [...], "bias": 1.2,
         "threshold": 0.5, "meta": {...}}
    """

    signals: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.5
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [s for s in self.signals if s not in SIGNALS]
        if unknown:
            raise ValueError(f"unknown cascade signals {unknown}; known: {list(SIGNALS)}")
        if len(self.signals) != len(self.weights):
            raise ValueError(f"{len(self.signals)} signals but {len(self.weights)} weights")

    @classmethod
    def default(cls) -> CascadeModel:
        """The untrained judge: :data:`DEFAULT_WEIGHTS` as votes against escalation."""
        names = tuple(DEFAULT_WEIGHTS)
        weights = tuple(-w for w in DEFAULT_WEIGHTS.values())
        return cls(names, weights, bias=sum(DEFAULT_WEIGHTS.values()) * 0.8)

    def escalate_score(self, response: str, prompt: str) -> float:
        """Probability-like score in (0, 1) that the weak answer is wrong."""
        values = signals(response, prompt)
        z = self.bias + sum(w * values[s] for s, w in zip(self.signals, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def save(self, path: str | Path) -> None:
        """Write the model file."""
        document = {
            "format": CASCADE_FORMAT,
            "version": 1,
            "signals": list(self.signals),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "meta": dict(self.meta),
        }
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CascadeModel:
        """Read a model file.

        Raises:
            ValueError: Not a cascade model file (names the file and the problem).
        """
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read cascade router: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != CASCADE_FORMAT:
            raise ValueError(f"{path}: not a cascade router (format must be {CASCADE_FORMAT!r})")
        try:
            return cls(
                signals=tuple(doc["signals"]),
                weights=tuple(float(w) for w in doc["weights"]),
                bias=float(doc["bias"]),
                threshold=float(doc.get("threshold", 0.5)),
                meta=dict(doc.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None


def signal_matrix(pairs: Sequence[tuple[str, str]]) -> list[list[float]]:
    """Signals of ``(response, prompt)`` pairs as rows in :data:`SIGNALS` order."""
    out = []
    for response, prompt in pairs:
        values = signals(response, prompt)
        out.append([values[s] for s in SIGNALS])
    return out
