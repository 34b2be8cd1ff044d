r"""Reading a worked arithmetic answer: its steps, its final answer, the quantities it uses.

Pure Python, no model: what the cascade validators (:mod:`agentmesh.evaluation.cascade`)
check a weak model's answer with.

- :func:`safe_eval`: the value of a plain arithmetic expression (nothing is executed).
- :func:`arithmetic_steps`: every ``expression = value`` step (``16 - 3 = 13``,
  calculator annotations ``<<9*2=18>>``), with the value it re-evaluates to.
- :func:`final_answer`: the stated answer (``#### 18``, ``the answer is 18``);
  :func:`last_number` falls back to the last number of the response.
- :func:`quantities`: the numbers a text gives, digits and number words
  (``three``, ``twice``, ``half``, ``a dozen``).
- :func:`close`: whether a written result matches the computed one (rounding
  to a whole number or to cents is accepted; an off-by-a-few-percent product is not).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "NUMBER_WORDS",
    "annotation_mismatches",
    "arithmetic_steps",
    "close",
    "final_answer",
    "last_number",
    "parse_number",
    "quantities",
    "safe_eval",
]

FINAL = re.compile(r"####\s*\$?\s*(-?[\d,]*\.?\d+)")
ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)?\s*\**\s*\$?\s*(-?[\d,]*\.?\d+)", re.I
)
_ANNOTATION = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
_ANNOTATION_ECHO = re.compile(r"<<[^<>=]+=([^<>]+)>>\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")
_STEP = re.compile(
    r"([\d.,$+\-*/x\u00d7\u00f7()%\\ ]+)=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)"
    r"(?![\d.]*\s*[-+*/x]\s*[($]*\s*\d)"
)
_SENTENCE_END = re.compile(r"^\s*[.,]+\s+")
"""A sentence's end the step pattern swallows (``apples. 12 - 2 = 10``), not a decimal (``.5``)."""
_HAS_OPERATION = re.compile(r"\d\s*\)?\s*(?:[-+*/x\u00d7\u00f7]|\\\*)\s*\(?\s*\$?\d")
_DIGITS = re.compile(r"(?<![\w.])\$?(\d[\d,]*(?:\.\d+)?)")
_ANY_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+")
_OPS: Mapping[type[ast.AST], Callable[[Any, Any], Any]] = MappingProxyType(
    {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Div: operator.truediv,
        ast.Pow: operator.pow,
    }
)

NUMBER_WORDS: Mapping[str, float] = MappingProxyType(
    {
        "two": 2,
        "three": 3,
        "four": 4,
        "five": 5,
        "six": 6,
        "seven": 7,
        "eight": 8,
        "nine": 9,
        "ten": 10,
        "eleven": 11,
        "twelve": 12,
        "thirteen": 13,
        "fourteen": 14,
        "fifteen": 15,
        "sixteen": 16,
        "seventeen": 17,
        "eighteen": 18,
        "nineteen": 19,
        "twenty": 20,
        "thirty": 30,
        "forty": 40,
        "fifty": 50,
        "sixty": 60,
        "seventy": 70,
        "eighty": 80,
        "ninety": 90,
        "hundred": 100,
        "thousand": 1000,
        "dozen": 12,
        "twice": 2,
        "double": 2,
        "triple": 3,
        "thrice": 3,
        "half": 0.5,
        "quarter": 0.25,
        "third": 1 / 3,
        "thirds": 1 / 3,
    }
)
"""Words that give a quantity (``one`` is left out: it is mostly an article)."""


def parse_number(text: str) -> float | None:
    """``"$1,200."`` -> ``1200.0``; ``None`` when it is not a number."""
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


def close(computed: float, written: float) -> bool:
    """Whether ``written`` is ``computed`` as a person would write it.

    Exact up to 0.2% (``3.33`` for 10/3), or rounded/truncated to a whole number
    or to two decimals (``2/3 = 0.67``, ``7.5 = 8``): rounding a count is a choice,
    not an arithmetic slip. ``490 * 194 = 94660`` (0.4% off) is a slip.
    """
    if abs(computed - written) <= 1e-6 + 0.002 * abs(written):
        return True
    return any(
        abs(v - written) < 1e-9
        for v in (round(computed), round(computed, 2), math.floor(computed), math.ceil(computed))
    )


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
        written = parse_number(result)
        if written is None:
            continue
        key = (expression.replace(" ", ""), written)
        seen.add(key)
        steps.append((expression, safe_eval(expression), written))
    plain = _ANNOTATION.sub(" ", response)
    for raw, result in _STEP.findall(plain):
        expression = _SENTENCE_END.sub("", _balanced(raw))
        written = parse_number(result)
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


def annotation_mismatches(response: str) -> int:
    """Calculator annotations whose result differs from the number written after them.

    ``<<0.1*1000=100>>100`` agrees; ``<<(2000-1800)/2000=0.1>>100`` does not.
    """
    bad = 0
    for inside, outside in _ANNOTATION_ECHO.findall(response):
        a, b = parse_number(inside), parse_number(outside)
        if a is not None and b is not None and not close(a, b):
            bad += 1
    return bad


def final_answer(response: str) -> float | None:
    """The stated final answer (``#### N``, else ``answer is N``), or ``None``."""
    found = FINAL.findall(response)
    if found:
        return parse_number(found[-1])
    found = ANSWER_IS.findall(response)
    return parse_number(found[-1]) if found else None


def last_number(response: str) -> float | None:
    """The stated final answer, else the last number in the response's last 200 characters."""
    answer = final_answer(response)
    if answer is not None:
        return answer
    found = _ANY_NUMBER.findall(response.strip()[-200:])
    return parse_number(found[-1]) if found else None


def quantities(text: str) -> list[float]:
    """The numbers ``text`` gives, in order: digit runs (``$1,200``, ``2.5``) then number words."""
    out = [v for v in (parse_number(m) for m in _DIGITS.findall(text)) if v is not None]
    out += [NUMBER_WORDS[w] for w in _WORD.findall(text.lower()) if w in NUMBER_WORDS]
    return out
