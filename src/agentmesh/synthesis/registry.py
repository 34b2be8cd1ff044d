"""`SYNTHESIZERS`: the one registry from a merge node's ``strategy:`` name to its class."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from agentmesh.synthesis.base import Synthesizer
from agentmesh.synthesis.judge import BestOfN
from agentmesh.synthesis.sequential import Compact, Refine
from agentmesh.synthesis.tree import TreeSummarize
from agentmesh.synthesis.vote import Vote

__all__ = ["SYNTHESIZERS", "build_synthesizer"]

SYNTHESIZERS: Mapping[str, type[Synthesizer[Any]]] = MappingProxyType(
    {cls.name: cls for cls in (Refine, Compact, Vote, TreeSummarize, BestOfN)}
)
"""The one place a merge node's ``strategy:`` name is resolved to a class."""


def build_synthesizer(name: str, params: Mapping[str, Any] | None = None) -> Synthesizer[Any]:
    """Instantiate the synthesizer registered as ``name`` with validated ``params``.

    Raises:
        KeyError: No synthesizer has that name.
        pydantic.ValidationError: The parameters are invalid.
    """
    cls = SYNTHESIZERS[name]
    return cls(cls.Params.model_validate(dict(params or {})))
