"""Declared inputs of a template and how values are checked against them.

A template's front matter declares its inputs with a type each (``str``,
``int``, ``float``, ``bool``, ``list``, ``dict``). Before anything renders,
the given values are checked and coerced: strings from the command line
become the declared type (``--var n=3`` gives ``3`` for an ``int``; ``list``
and ``dict`` take JSON), missing required inputs and unknown extra inputs are
errors naming the template and the variable.
"""

from __future__ import annotations

import copy
import keyword
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, model_validator

from agentmesh._jsontext import loads as json_loads
from agentmesh.prompts.errors import PromptError

__all__ = [
    "RESERVED_NAMES",
    "InputSpec",
    "InputType",
    "check_inputs",
    "coerce",
    "valid_input_name",
]

InputType = Literal["str", "int", "float", "bool", "list", "dict"]

RESERVED_NAMES = frozenset(
    {
        # what the library passes to every template
        "model",
        # Jinja's own names and default globals
        "self",
        "loop",
        "super",
        "caller",
        "varargs",
        "kwargs",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
        "true",
        "false",
        "none",
    }
)
"""Names an input may not take: they would shadow what templates rely on."""


def _to_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _to_float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


_BOOL_WORDS: Mapping[str, bool] = MappingProxyType(
    {
        "true": True,
        "yes": True,
        "on": True,
        "1": True,
        "false": False,
        "no": False,
        "off": False,
        "0": False,
    }
)


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise ValueError(f"expected true or false, got {value!r}")


def _json(value: str, wanted: type) -> Any:
    try:
        parsed = json_loads(value)
    except ValueError:
        raise ValueError(f"expected a JSON {wanted.__name__}, got {value!r}") from None
    if not isinstance(parsed, wanted):
        raise ValueError(f"expected a JSON {wanted.__name__}, got {value!r}")
    return parsed


def _to_list(value: object) -> list[Any]:
    if isinstance(value, list | tuple):
        return copy.deepcopy(list(value))
    if isinstance(value, str):
        parsed: list[Any] = _json(value, list)
        return parsed
    raise ValueError(f"expected a list, got {type(value).__name__}")


def _to_dict(value: object) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return copy.deepcopy(dict(value))
    if isinstance(value, str):
        parsed: dict[str, Any] = _json(value, dict)
        return parsed
    raise ValueError(f"expected a mapping, got {type(value).__name__}")


_COERCERS: Mapping[str, Callable[[object], object]] = MappingProxyType(
    {
        "str": _to_str,
        "int": _to_int,
        "float": _to_float,
        "bool": _to_bool,
        "list": _to_list,
        "dict": _to_dict,
    }
)


def coerce(type_name: InputType, value: object) -> object:
    """Check ``value`` against a declared input type, converting strings.

    Raises:
        ValueError: The value does not fit the type.
    """
    return _COERCERS[type_name](value)


def valid_input_name(name: str) -> bool:
    """Whether ``name`` can be an input: an identifier, not reserved, no leading ``_``."""
    return (
        name.isidentifier()
        and not keyword.iskeyword(name)
        and not name.startswith("_")
        and name not in RESERVED_NAMES
    )


class InputSpec(BaseModel):
    """One declared input of a template.

    Attributes:
        type: The value's type; strings given for other types are converted.
        required: A required input must be given and has no default.
        default: Value of an optional input that is not given (``None`` if unset).
        description: What the input is, for humans and ``prompts list``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: InputType = "str"
    required: bool = True
    default: Any = None
    description: str = ""

    @model_validator(mode="after")
    def _default_fits(self) -> Self:
        if "default" not in self.model_fields_set or self.default is None:
            return self
        if self.required:
            raise ValueError("a required input cannot have a default; set 'required: false'")
        coerce(self.type, self.default)
        return self


def check_inputs(
    specs: Mapping[str, InputSpec],
    values: Mapping[str, object],
    *,
    template: str | None = None,
    file: str | None = None,
    lines: Mapping[str, int] | None = None,
) -> dict[str, object]:
    """Check and coerce input values against their declarations.

    Args:
        specs: The declared inputs.
        values: The given values (strings are converted to the declared type).
        template: Template name, for errors.
        file: The file declaring the inputs, for errors.
        lines: Line of each input's declaration in ``file``, for errors.

    Returns:
        Every declared input's value: given, else the default, else ``None``.

    Raises:
        PromptError: An unknown input, a missing required input, or a value of
            the wrong type; the error names the template and the variable.
    """
    where = lines or {}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        declared = ", ".join(sorted(specs)) or "none"
        raise PromptError(
            f"unknown input(s) {', '.join(map(repr, unknown))}; declared inputs: {declared}",
            template=template,
            variable=unknown[0],
            file=file,
        )
    checked: dict[str, object] = {}
    for name, spec in specs.items():
        line = where.get(name)
        if name not in values or (values[name] is None and not spec.required):
            if spec.required:
                raise PromptError(
                    f"missing required input {name!r} ({spec.type})",
                    template=template,
                    variable=name,
                    line=line,
                    file=file,
                )
            checked[name] = None if spec.default is None else coerce(spec.type, spec.default)
            continue
        try:
            checked[name] = coerce(spec.type, values[name])
        except ValueError as exc:
            raise PromptError(
                f"input {name!r} ({spec.type}): {exc}",
                template=template,
                variable=name,
                line=line,
                file=file,
            ) from None
    return checked
