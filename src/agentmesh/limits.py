"""Limits on hostile input: file size, YAML nesting and aliases, template renders.

Every limit has a default that real files and prompts stay far below, and an
environment variable that raises (or lowers) it for one process::

    AGENTMESH_MAX_FILE_BYTES=4194304 agentmesh validate big.yaml

``FileLimits`` bounds what the YAML loaders (graphs, catalogs, policies, front
matter) read; ``RenderLimits`` bounds one prompt render. Both are immutable;
``from_env()`` reads the variables each time it is called (no cached state).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

__all__ = ["ENV_VARIABLES", "FileLimits", "LimitError", "RenderLimits"]


class LimitError(ValueError):
    """An environment variable that sets a limit holds no valid number."""


@dataclass(frozen=True, slots=True)
class FileLimits:
    """What a YAML file may contain before it is refused (never half-read).

    Attributes:
        max_bytes: Largest file read, in bytes (``AGENTMESH_MAX_FILE_BYTES``).
        max_depth: Deepest nesting of mappings and lists (``AGENTMESH_MAX_YAML_DEPTH``).
        max_nodes: Most values once every alias is expanded, which stops
            "billion laughs" alias bombs (``AGENTMESH_MAX_YAML_NODES``).
    """

    max_bytes: int = 1_048_576
    max_depth: int = 64
    max_nodes: int = 100_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The defaults, with any limit the environment sets.

        Raises:
            LimitError: A variable is set but is not a positive integer.
        """
        return cls(**_from_env(cls, os.environ if environ is None else environ))


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """What one prompt render may cost before it stops with a ``PromptError``.

    Attributes:
        max_chars: Longest rendered text, and longest string or list any
            expression may build (``AGENTMESH_MAX_RENDER_CHARS``).
        max_seconds: Longest render, wall clock (``AGENTMESH_MAX_RENDER_SECONDS``).
        max_iterations: Most loop iterations in one render, summed over
            every ``for`` (nested loops multiply) (``AGENTMESH_MAX_RENDER_ITERATIONS``).
    """

    max_chars: int = 2_000_000
    max_seconds: float = 2.0
    max_iterations: int = 1_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The defaults, with any limit the environment sets.

        Raises:
            LimitError: A variable is set but is not a positive number.
        """
        return cls(**_from_env(cls, os.environ if environ is None else environ))


_ENV: Mapping[tuple[type, str], str] = {
    (FileLimits, "max_bytes"): "AGENTMESH_MAX_FILE_BYTES",
    (FileLimits, "max_depth"): "AGENTMESH_MAX_YAML_DEPTH",
    (FileLimits, "max_nodes"): "AGENTMESH_MAX_YAML_NODES",
    (RenderLimits, "max_chars"): "AGENTMESH_MAX_RENDER_CHARS",
    (RenderLimits, "max_seconds"): "AGENTMESH_MAX_RENDER_SECONDS",
    (RenderLimits, "max_iterations"): "AGENTMESH_MAX_RENDER_ITERATIONS",
}
ENV_VARIABLES: tuple[str, ...] = tuple(_ENV.values())
"""Every environment variable that sets a limit."""


def _from_env(cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields of ``cls`` that ``environ`` sets, converted to their types."""
    values: dict[str, Any] = {}
    for field in fields(cls):
        name = _ENV[(cls, field.name)]
        raw = environ.get(name)
        if raw is None or not raw.strip():
            continue
        kind = float if field.type == "float" else int
        try:
            value = kind(raw)
        except ValueError:
            raise LimitError(f"{name}={raw!r}: expected a positive {kind.__name__}") from None
        if not value > 0:
            raise LimitError(f"{name}={raw!r}: expected a positive {kind.__name__}")
        values[field.name] = value
    return values
