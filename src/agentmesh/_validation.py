"""One wording for pydantic validation errors, wherever agentmesh reads user input.

Catalogs, graphs, policies, merge specs, prompt front matter and tool arguments
all report a bad field the same way: ``field.path: what is wrong (got value)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = ["describe_error", "describe_errors"]

_WORDING = {"missing": "required field is missing", "extra_forbidden": "unknown field"}


def describe_error(
    error: Mapping[str, Any], loc: Sequence[str | int] | None = None, *, prefix: str = ""
) -> str:
    """One error of ``ValidationError.errors()`` as ``field: problem (got value)``.

    Args:
        error: The error mapping.
        loc: The field path to show instead of ``error["loc"]`` (e.g. without a
            discriminator's tag).
        prefix: A path the field is under (``params``), put before it.

    The value is shown for scalar inputs only (a mapping or list would be the
    whole entry) and never for a missing field; ``Value error, `` is dropped.
    An error of the whole object (no field) is its message alone.
    """
    path = (prefix, *(error["loc"] if loc is None else loc))
    field = ".".join(str(part) for part in path if part != "")
    kind = error["type"]
    message = _WORDING.get(kind) or str(error["msg"]).removeprefix("Value error, ")
    if not field:
        return message
    value = error.get("input")
    shown = "" if kind == "missing" or isinstance(value, dict | list) else f" (got {value!r})"
    return f"{field}: {message}{shown}"


def describe_errors(exc: ValidationError, *, prefix: str = "", sep: str = "; ") -> str:
    """Every error of ``exc``, described by :func:`describe_error` and joined by ``sep``."""
    return sep.join(describe_error(e, prefix=prefix) for e in exc.errors())
