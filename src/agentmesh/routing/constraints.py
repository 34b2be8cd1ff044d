"""`Constraints`: the bounds one routing decision works under (policy + a request's needs)."""

from __future__ import annotations

from dataclasses import dataclass

from agentmesh.models.spec import Capability

__all__ = ["Constraints"]


@dataclass(frozen=True, slots=True)
class Constraints:
    """The policy's bounds plus the capabilities one request needs (``Policy.constraints``)."""

    min_tier: int | None
    max_tier: int | None
    require: frozenset[Capability]
    allow_tags: frozenset[str]
    deny_tags: frozenset[str]
    quality_floor: float | None
    latency_slo_ms: float | None
    max_cost_usd: float | None
