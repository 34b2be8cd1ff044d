"""`Policy`: filters' bounds plus one strategy, as written in Python or YAML.

A policy is what a graph node declares instead of a model::

    strategy: cheapest
    min_tier: 2
    require: [json]
    quality_floor: 0.6
    params: {}          # the strategy's own options, validated by its Params model

Policies are validated when built: an unknown strategy or a bad parameter is an
error naming the field (and the file, when loaded from one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentmesh._validation import describe_errors
from agentmesh._yamlfile import YamlFileError, describe_yaml_error, parse_yaml, read_text
from agentmesh.models.spec import Capability
from agentmesh.routing.types import RouteRequest

__all__ = [
    "BudgetLimits",
    "Constraints",
    "Policy",
    "PolicyError",
    "load_policy",
    "read_policy_file",
]


class PolicyError(ValueError):
    """A policy is invalid; the message names the source and the field."""


class Policy(BaseModel):
    """How a node wants its model chosen.

    Attributes:
        strategy: Name of the ranking strategy (see ``agentmesh.routing.STRATEGIES``).
        min_tier: Lowest acceptable tier.
        max_tier: Highest acceptable tier.
        require: Capabilities every candidate must have.
        allow_tags: If set, candidates must carry at least one of these tags.
        deny_tags: Candidates carrying any of these tags are excluded.
        quality_floor: Lowest acceptable quality estimate for the task.
        latency_slo_ms: Highest acceptable observed p95 latency.
        max_cost_usd: Highest acceptable worst-case cost per call.
        params: The strategy's own parameters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = "cheapest"
    min_tier: Annotated[int | None, Field(ge=1)] = None
    max_tier: Annotated[int | None, Field(ge=1)] = None
    require: frozenset[Capability] = frozenset()
    allow_tags: frozenset[str] = frozenset()
    deny_tags: frozenset[str] = frozenset()
    quality_floor: Annotated[float | None, Field(ge=0, le=1)] = None
    latency_slo_ms: Annotated[float | None, Field(gt=0)] = None
    max_cost_usd: Annotated[float | None, Field(ge=0)] = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Policy:
        from agentmesh.routing.strategies import STRATEGIES

        if self.strategy not in STRATEGIES:
            known = ", ".join(sorted(STRATEGIES))
            raise ValueError(f"unknown strategy {self.strategy!r}; known: {known}")
        if (
            self.min_tier is not None
            and self.max_tier is not None
            and self.min_tier > self.max_tier
        ):
            raise ValueError(f"min_tier {self.min_tier} is above max_tier {self.max_tier}")
        STRATEGIES[self.strategy].Params.model_validate(self.params)
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy") -> Policy:
        """Validate ``data``; errors name ``source`` and the field.

        Raises:
            PolicyError: Unknown strategy, bad parameter, contradictory bounds.
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise PolicyError(f"{source}: {describe_errors(exc)}") from None


def read_policy_file(path: str | Path) -> Any:
    """The YAML document of a policy file, within :class:`~agentmesh.limits.FileLimits`.

    Raises:
        PolicyError: Unreadable, too large, not UTF-8, or not valid YAML;
            names the file and line.
    """
    try:
        return parse_yaml(read_text(Path(path), "policy"))[0]
    except YamlFileError as exc:
        raise PolicyError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise PolicyError(describe_yaml_error(exc, path)) from None


def load_policy(path: str | Path) -> Policy:
    """Load a policy from a YAML file.

    Raises:
        PolicyError: The file is unreadable, not a mapping, or not a valid policy.
    """
    data = read_policy_file(path)
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a policy is a mapping (strategy: ..., min_tier: ...)")
    return Policy.from_mapping(data, source=str(path))


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """Spending limits in USD; ``None`` means unlimited.

    Attributes:
        run_usd: Limit per workflow run (``RouteRequest.run_id``).
        global_usd: Limit over everything this router's state has seen.
        lease_s: A call's reservation counts as spent until the call is settled,
            or this many seconds at most: a process killed mid-call frees its
            reservations by itself instead of holding budget forever. Keep it
            above the longest call, retries included (a longer call's
            reservation lapses early; its actual cost is still charged).
    """

    run_usd: float | None = None
    global_usd: float | None = None
    lease_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise ValueError(f"BudgetLimits.lease_s must be > 0 seconds, got {self.lease_s}")

    def keys(
        self, run_id: str | None, run_usd: float | None = None
    ) -> tuple[tuple[str, float], ...]:
        """``(state key, limit)`` for every limit that applies to ``run_id``.

        ``run_usd`` (a run's own budget, e.g. ``agentmesh run --budget``) replaces
        the router's per-run limit for that run.
        """
        out: list[tuple[str, float]] = []
        limit = run_usd if run_usd is not None else self.run_usd
        if limit is not None and run_id is not None:
            out.append((f"run:{run_id}", limit))
        if self.global_usd is not None:
            out.append(("global", self.global_usd))
        return tuple(out)


def _stricter(a: float | None, b: float | None, pick: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return pick(a, b)


@dataclass(frozen=True, slots=True)
class Constraints:
    """The policy's bounds and the request's, merged (the stricter wins)."""

    min_tier: int | None
    max_tier: int | None
    require: frozenset[Capability]
    allow_tags: frozenset[str]
    deny_tags: frozenset[str]
    quality_floor: float | None
    latency_slo_ms: float | None
    max_cost_usd: float | None

    @classmethod
    def merge(cls, policy: Policy, request: RouteRequest) -> Constraints:
        """Combine a node's policy with one request's needs."""
        return cls(
            min_tier=_stricter(policy.min_tier, request.min_tier, max),
            max_tier=_stricter(policy.max_tier, request.max_tier, min),
            require=policy.require | request.capabilities,
            allow_tags=policy.allow_tags,
            deny_tags=policy.deny_tags,
            quality_floor=_stricter(policy.quality_floor, request.quality_floor, max),
            latency_slo_ms=_stricter(policy.latency_slo_ms, request.latency_slo_ms, min),
            max_cost_usd=_stricter(policy.max_cost_usd, request.max_cost_usd, min),
        )
