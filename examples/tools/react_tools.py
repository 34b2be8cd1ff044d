"""Tools of ``graphs/react_agent.yaml``: a reference lookup and a calculator.

Plain typed functions (agentmesh wraps them as LangChain ``StructuredTool``s,
validating arguments against their signatures). Both raise on input they
cannot serve, as real tools do: the agent gets the error as the tool's result
(``on_tool_error: return``) and works around it.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType

__all__ = ["calculator", "lookup"]

FACTS: Mapping[str, str] = MappingProxyType(
    {
        "lyon population": "Lyon: 522250 inhabitants (2021 census)",
        "marseille population": "Marseille: 873076 inhabitants (2021 census)",
        "paris population": "Paris: 2133111 inhabitants (2021 census)",
        "lyon area": "Lyon: 47.87 km2",
    }
)
"""An illustrative reference table (what a search or database tool would return)."""

_OPERATORS: Mapping[type[ast.AST], Callable[..., float]] = MappingProxyType(
    {
        ast.Add: operator.add,
        ast.Sub: operator.sub,
        ast.Mult: operator.mul,
        ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv,
        ast.Mod: operator.mod,
        ast.USub: operator.neg,
        ast.UAdd: operator.pos,
    }
)


def lookup(topic: str) -> str:
    """Look a fact up in the reference table, e.g. "Lyon population".

    Raises:
        KeyError: The table has no entry for the topic.
    """
    key = " ".join(topic.lower().split())
    if key not in FACTS:
        raise KeyError(f"no entry for {topic!r}; the table knows: {', '.join(sorted(FACTS))}")
    return FACTS[key]


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.left), _value(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_value(node.operand))
    raise ValueError(f"only numbers and + - * / // % are allowed, not {ast.dump(node)[:40]}")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression, e.g. "522250 + 873076".

    Raises:
        ValueError: Anything but numbers, parentheses and + - * / // %.
        ZeroDivisionError: A division by zero.
    """
    if len(expression) > 200:
        raise ValueError("expression longer than 200 characters")
    value = _value(ast.parse(expression, mode="eval").body)
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
