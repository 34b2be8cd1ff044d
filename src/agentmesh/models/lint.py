"""Catalog warnings: entries that load and work, but not as their author likely expects.

``agentmesh validate --models FILE`` prints them on stderr and still exits 0:
each names the entry and says what will happen.

- an entry with no ``pricing``: every call costs $0, so run and global budgets
  never stop it and cost-ranking strategies (``cheapest``, ``quality_per_cost``,
  ``budget``) take it for the cheapest model;
- an ``openai`` entry that declares ``json`` against a server known to reject
  the default ``params.json_format`` (``json_schema``) without naming the
  format that server needs (:data:`JSON_FORMAT_NEEDS`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agentmesh.models.catalog import Catalog
from agentmesh.models.spec import Capability, ModelSpec, Provider

__all__ = ["CATALOG_CHECKS", "JSON_FORMAT_NEEDS", "ServerNeed", "catalog_warnings"]


@dataclass(frozen=True, slots=True)
class ServerNeed:
    """A server that rejects the default JSON request, and what it needs instead.

    Attributes:
        server: The server's name, for messages.
        pattern: Matched against the entry's ``base_url`` as written (before
            ``${VAR}`` expansion, so a variable's name counts too).
        json_format: The ``params.json_format`` it needs.
        why: What goes wrong with the default.
    """

    server: str
    pattern: re.Pattern[str]
    json_format: str
    why: str


JSON_FORMAT_NEEDS: tuple[ServerNeed, ...] = (
    ServerNeed(
        "llama.cpp's server",
        re.compile(r"llama[._-]?cpp", re.IGNORECASE),
        "json_object+schema",
        "it answers HTTP 500 to response_format type json_schema, so every JSON "
        "call fails (and falls back to another model, if any)",
    ),
)
"""Servers known to need a ``json_format``, found by their ``base_url``."""


def _no_pricing(spec: ModelSpec) -> str | None:
    if "pricing" in spec.model_fields_set:
        return None
    return (
        "no pricing: every call counts as $0, so run and global budgets never stop it and "
        "cost-ranking strategies (cheapest, quality_per_cost, budget) take it for the "
        "cheapest model; write pricing: {input: 0, output: 0} if it is free"
    )


def _json_format(spec: ModelSpec) -> str | None:
    if (
        spec.provider is not Provider.OPENAI
        or Capability.JSON not in spec.capabilities
        or "json_format" in spec.params
    ):
        return None
    for need in JSON_FORMAT_NEEDS:
        if spec.base_url and need.pattern.search(spec.base_url):
            return (
                f"declares json but no params.json_format, and its base_url looks like "
                f"{need.server}: JSON calls will ask for json_schema, and {need.why}; "
                f"add params: {{json_format: {need.json_format}}}"
            )
    return None


CATALOG_CHECKS: Mapping[str, Callable[[ModelSpec], str | None]] = MappingProxyType(
    {"pricing": _no_pricing, "json_format": _json_format}
)
"""Per-entry checks by name: each returns a warning, or ``None``."""


def catalog_warnings(catalog: Catalog) -> list[str]:
    """Every warning about ``catalog``'s entries, each naming the catalog and the entry."""
    return [
        f"{catalog.source}: model {spec.id!r}: {warning}"
        for spec in catalog.specs
        for check in CATALOG_CHECKS.values()
        if (warning := check(spec)) is not None
    ]
