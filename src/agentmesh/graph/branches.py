"""Conditional edges: where a node goes next, chosen by what it answered.

A node's ``branch:`` picks its successor from ``cases`` by a field of its
structured output (``field: category``), by a judge's or a person's verdict
(``field: verdict``), or, in the Python builder only, by a function of the run's
state (``by=``). A value no case names goes to ``default``; without one it
fails the run (``no_branch``), unless the checks proved the cases cover every
value the node's output schema allows (an ``enum``, or a boolean).

.. code-block:: yaml

    classify:
      kind: executor
      prompt: classify_ticket
      inputs: {ticket: $input}
      branch:
        field: category              # a field of the JSON answer (dotted: fields.kind)
        cases: {billing: billing, technical: technical, account: account}
        default: general             # optional when the cases cover the field's enum

Compiled, a branch is LangGraph's ``add_conditional_edges(node, route,
{case: target})``, so drawings label each edge with its case. This module
holds the format and the pure parts (reading the value, checking cases
against a schema); :mod:`agentmesh.graph.compile` wires it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "DEFAULT_CASE",
    "VERDICT",
    "BranchSpec",
    "StateFunction",
    "case_key",
    "case_problems",
    "field_schema",
    "read_field",
    "unknown_targets",
]

VERDICT = "verdict"
"""``field: verdict``: the decision of a judge, a human node or a node's ``interrupt: after``."""

DEFAULT_CASE = "default"
"""The label of the ``default`` edge in drawings (``(default)`` when a case has that name)."""

_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_SCALARS = ("string", "boolean", "integer")

StateFunction = Callable[[Mapping[str, Any]], Any]
"""``by=``: the run's state (``input``, ``results``, ``verdicts``...) -> the case to take."""


def case_key(value: Any) -> str:
    """The case a value selects: strings as they are, ``true``/``false``, integers as digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return repr(value)  # matches no case written in a file: it goes to the default


class BranchSpec(BaseModel):
    """A conditional edge out of a node.

    Attributes:
        field: The field of the node's JSON output that decides (dotted for
            nested fields), or ``verdict`` for a judge's, a human node's or an
            ``interrupt: after``'s decision.
        by: Builder only: a function of the run's state returning the case.
        cases: Case value -> next node (or ``END``).
        default: Next node for values no case names (required unless the
            cases cover the field's enum).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str | None = None
    by: SkipJsonSchema[StateFunction | None] = Field(default=None, exclude=True)
    cases: dict[str, str] = Field(min_length=1)
    default: str | None = None

    @field_validator("cases", mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        # YAML reads `true:` and `3:` as a boolean and a number: a case names their text.
        if isinstance(value, Mapping):
            return {case_key(k) if isinstance(k, bool | int) else k: v for k, v in value.items()}
        return value

    @field_validator("field")
    @classmethod
    def _field(cls, value: str | None) -> str | None:
        if value is not None and not _FIELD_RE.match(value):
            raise ValueError(f"{value!r}: name a field of the node's output (e.g. category)")
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> BranchSpec:
        if (self.field is None) == (self.by is None):
            raise ValueError(
                "a branch needs field: NAME (YAML and Python) or by=FUNCTION (Python), not both"
            )
        if self.by is not None and self.default is None:
            raise ValueError("a branch by a function needs a default (its values are unknown)")
        return self

    @property
    def targets(self) -> tuple[str, ...]:
        """Every node this branch may lead to, in order, once each."""
        found = [*self.cases.values(), *([self.default] if self.default is not None else [])]
        return tuple(dict.fromkeys(found))

    def path_map(self) -> dict[str, str]:
        """``{label: target}`` for LangGraph: the cases, then the default's label."""
        labels = dict(self.cases)
        if self.default is not None:
            labels[self.default_label] = self.default
        return labels

    @property
    def default_label(self) -> str:
        """The default edge's label (one no case uses)."""
        return DEFAULT_CASE if DEFAULT_CASE not in self.cases else f"({DEFAULT_CASE})"

    def choose(self, value: Any) -> str | None:
        """The label of the edge ``value`` takes (``None``: no case and no default)."""
        key = case_key(value)
        if key in self.cases:
            return key
        return self.default_label if self.default is not None else None


def read_field(data: Any, path: str) -> Any:
    """The value at dotted ``path`` of a JSON value (``None`` when absent)."""
    value = data
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def field_schema(schema: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The JSON Schema of the field at dotted ``path`` (``None``: the schema has no such field)."""
    current: Mapping[str, Any] = schema
    for key in path.split("."):
        properties = current.get("properties")
        if not isinstance(properties, Mapping) or not isinstance(properties.get(key), Mapping):
            return None
        current = properties[key]
    return current


def _values(field: Mapping[str, Any]) -> tuple[list[str] | None, str | None]:
    """The field's possible case keys (``None``: unbounded) and its type (``None``: unusable)."""
    if isinstance(field.get("enum"), list):
        return [case_key(v) for v in field["enum"]], "enum"
    kind = field.get("type", "string")
    kinds = [k for k in (kind if isinstance(kind, list) else [kind]) if k != "null"]
    if len(kinds) != 1 or kinds[0] not in _SCALARS:
        return None, None
    return (["true", "false"] if kinds[0] == "boolean" else None), kinds[0]


def case_problems(branch: BranchSpec, field: Mapping[str, Any] | None, where: str) -> list[str]:
    """What is wrong with ``branch``'s cases for a field of schema ``field``.

    Args:
        branch: The branch.
        field: The schema of the field it reads (``None``: not known before
            the run, so only a default can make it safe).
        where: How to name the field in messages (``category of prompt 'x'``).
    """
    problems: list[str] = []
    if field is None:
        if branch.default is None:
            problems.append(f"branch.default: {where} has no known values; add a default")
        return problems
    values, kind = _values(field)
    if kind is None:
        shown = field.get("type", "?")
        usable = "a string, enum, boolean or integer"
        return [f"branch.field: {where} is of type {shown}; branch on {usable}"]
    if values is not None:
        for case in branch.cases:
            if case not in values:
                problems.append(
                    f"branch.cases.{case}: not a value of {where} ({', '.join(values)})"
                )
        missing = [v for v in values if v not in branch.cases]
        if missing and branch.default is None:
            problems.append(
                f"branch: cases do not cover {where}: no case for {', '.join(missing)}; "
                "add cases or a default"
            )
        return problems
    if kind == "integer":
        problems.extend(
            f"branch.cases.{case}: {where} is an integer"
            for case in branch.cases
            if not re.fullmatch(r"-?\d+", case)
        )
    if branch.default is None:
        problems.append(f"branch.default: {where} is any {kind}; add a default")
    return problems


def unknown_targets(branch: BranchSpec, nodes: Sequence[str], end: str) -> list[str]:
    """Problems for cases and a default naming no node."""
    known = ", ".join([*nodes, end])
    problems = [
        f"branch.cases.{case}: no node {target!r} (nodes: {known})"
        for case, target in branch.cases.items()
        if target != end and target not in nodes
    ]
    if branch.default is not None and branch.default != end and branch.default not in nodes:
        problems.append(f"branch.default: no node {branch.default!r} (nodes: {known})")
    return problems
