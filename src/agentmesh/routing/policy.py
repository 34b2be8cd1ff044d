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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentmesh._validation import describe_errors
from agentmesh._yamlfile import YamlFileError, describe_yaml_error, parse_yaml, read_text
from agentmesh.models.controls import (
    CacheSetting,
    HedgePolicy,
    RedactSetting,
    SemanticCacheSetting,
    check_redact,
)
from agentmesh.models.spec import Capability
from agentmesh.routing.constraints import Constraints
from agentmesh.routing.strategies import STRATEGIES
from agentmesh.routing.types import RouteRequest

__all__ = [
    "BudgetLimits",
    "Policy",
    "PolicyError",
    "load_policy",
    "policy_document",
    "read_policy_file",
    "split_policy",
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
        cache: Response caching of the calls it routes (``None``: the
            caller's default; ``false`` wins over every other level).
        ttl: Seconds a cached answer of these calls lives.
        hedge: Delayed hedged requests (race the next candidate when slow).
        redact: Redact what is sent to models tagged ``external``.
        unredact: Put the redacted values back into the answer (by placeholder).
        semantic_cache: The opt-in semantic cache of the calls it routes
            (wins over a catalog entry's).

    The last six are gateway controls, applied by the resilient caller; the
    router itself reads none of them.
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
    cache: CacheSetting | None = None
    ttl: Annotated[float | None, Field(gt=0)] = None
    hedge: HedgePolicy | None = None
    redact: RedactSetting | None = None
    unredact: bool = False
    semantic_cache: SemanticCacheSetting | None = None

    @field_validator("redact")
    @classmethod
    def _redactor(cls, value: RedactSetting | None) -> RedactSetting | None:
        return check_redact(value)

    @model_validator(mode="after")
    def _check(self) -> Policy:
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

    def constraints(self, request: RouteRequest) -> Constraints:
        """The bounds of this policy plus what ``request`` needs (its capabilities).

        Bounds live in the policy only: a request says what the call needs, the
        policy what the node may use.
        """
        return Constraints(
            min_tier=self.min_tier,
            max_tier=self.max_tier,
            require=self.require | request.capabilities,
            allow_tags=self.allow_tags,
            deny_tags=self.deny_tags,
            quality_floor=self.quality_floor,
            latency_slo_ms=self.latency_slo_ms,
            max_cost_usd=self.max_cost_usd,
        )

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


def policy_document(path: str | Path, what: str = "policy") -> Any:
    """The YAML document of a policy file, within :class:`~agentmesh.limits.FileLimits`.

    Args:
        path: The file.
        what: What the file is, in errors (``policy``, ``policies``).

    Raises:
        PolicyError: Unreadable, too large, not UTF-8, or not valid YAML;
            names the file and line.
    """
    try:
        return parse_yaml(read_text(Path(path), what))[0]
    except YamlFileError as exc:
        raise PolicyError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise PolicyError(describe_yaml_error(exc, path)) from None


def split_policy(
    data: Any, source: str, *, strategy: str | None = None
) -> tuple[Policy, Mapping[str, Any]]:
    """A policy mapping's routing policy, and its raw ``resilience:`` block.

    Args:
        data: The mapping (a policy file's document, or one entry of a policies file).
        source: Where it comes from, in errors (file, and entry).
        strategy: A strategy overriding the mapping's; its ``params`` are dropped
            when it differs, as they belong to its own strategy.

    Raises:
        PolicyError: Not a mapping, or not a valid policy.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: a policy is a mapping (strategy: ..., min_tier: ...)")
    data = dict(data)
    resilience = data.pop("resilience", None) or {}
    if not isinstance(resilience, dict):
        raise PolicyError(f"{source}: resilience: must be a mapping")
    if strategy is not None:
        if data.get("strategy") != strategy:
            data.pop("params", None)
        data["strategy"] = strategy
    return Policy.from_mapping(data, source=source), resilience


def read_policy_file(
    path: str | Path, *, strategy: str | None = None
) -> tuple[Policy, Mapping[str, Any]]:
    """The one reader of policy files: the routing policy, and the raw ``resilience:`` block.

    A policy file holds routing keys (``strategy``, bounds, ``params``) and, optionally,
    a ``resilience:`` mapping for the calls it routes; every command reads it here
    (:func:`agentmesh.resilience.load_call_policy` validates the resilience part).

    Args:
        path: The YAML file.
        strategy: A strategy overriding the file's (``--strategy``); the file's
            ``params`` are dropped when it differs, as they belong to its own strategy.

    Raises:
        PolicyError: The file is unreadable, not a mapping, or not a valid policy.
    """
    return split_policy(policy_document(path), str(path), strategy=strategy)


def load_policy(path: str | Path) -> Policy:
    """Load the routing policy of a policy file (its ``resilience:`` block is not read here).

    Raises:
        PolicyError: The file is unreadable, not a mapping, or not a valid policy.
    """
    return read_policy_file(path)[0]


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
