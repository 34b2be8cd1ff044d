"""Names the parsers offer as choices, known without importing their registries.

Building the parser imports every command module, so it must not import the
routing strategies, the catalog's pydantic models or the router evaluation
(LangChain, pydantic, NumPy...). These tuples repeat their registries' keys;
``tests/unit/test_cli_startup.py`` checks each against its registry.
"""

from __future__ import annotations

__all__ = ["CAPABILITIES", "ROUTERS", "STRATEGIES"]

STRATEGIES = (
    "budget",
    "cascade",
    "cheapest",
    "complexity",
    "consensus",
    "learned",
    "least_latency",
    "quality_per_cost",
    "round_robin",
    "task",
)
"""The keys of :data:`agentmesh.routing.STRATEGIES`, sorted."""

CAPABILITIES = ("json", "tools", "streaming", "vision")
"""The values of :class:`agentmesh.models.Capability`, in its order."""

ROUTERS = ("random", "oracle", "length", "subject-prior", "learned", "learned-unguarded", "cascade")
"""The keys of :data:`agentmesh.evaluation.ROUTERS`, in its order."""
