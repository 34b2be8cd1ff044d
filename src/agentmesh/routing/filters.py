"""Filters: each decides whether one model may serve the request, and if not, why.

A filter is a small object with a ``name`` and ``why_not(spec, ctx)``, which
returns ``None`` to let the model through or a short reason that ends up in the
decision's ``excluded`` list. Filters read only the :class:`RouteContext`.

A filter may also define ``applies(constraints) -> bool``: False when those
bounds (a policy's) leave it nothing to check whatever the request and the
state, so the router, which prepares each policy once, never asks its
``active()`` for that policy's decisions. The built-in filters whose
``active()`` reads only the constraints define it; without it a filter is asked
on every decision.
"""

from __future__ import annotations

import time
from typing import ClassVar, Protocol

from agentmesh.models.spec import ModelSpec
from agentmesh.routing.constraints import Constraints
from agentmesh.routing.context import RouteContext

__all__ = [
    "DEFAULT_FILTERS",
    "BudgetFilter",
    "CallerExcludeFilter",
    "CapabilityFilter",
    "ContextWindowFilter",
    "Filter",
    "HealthFilter",
    "LatencyFilter",
    "LocalRateLimitFilter",
    "QualityFloorFilter",
    "TagFilter",
    "TierFilter",
]


class Filter(Protocol):
    """Lets a model through (``None``) or says why not."""

    name: ClassVar[str]

    def active(self, ctx: RouteContext) -> bool:
        """Whether this decision gives the filter anything to check (skipped if not)."""
        ...

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """``None`` if ``spec`` may serve the request, else the reason it may not."""
        ...


class CallerExcludeFilter:
    """Models the caller ruled out (e.g. those that already failed this step)."""

    name: ClassVar[str] = "exclude"

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return bool(ctx.request.exclude)

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded when listed in ``request.exclude``."""
        if spec.id in ctx.request.exclude:
            return "excluded by the caller (already tried for this step)"
        return None


class CapabilityFilter:
    """Every required capability must be declared by the model."""

    name: ClassVar[str] = "capability"

    def applies(self, constraints: Constraints) -> bool:
        """Whether ``constraints`` require any capability (see the module docstring)."""
        return bool(constraints.require)

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return bool(ctx.constraints.require)

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded when a required capability is missing."""
        missing = ctx.constraints.require - spec.capabilities
        if missing:
            return "lacks " + ", ".join(sorted(str(c) for c in missing))
        return None


class ContextWindowFilter:
    """Estimated prompt plus the call's output must fit the context window."""

    name: ClassVar[str] = "context_window"

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return bool(ctx.overflowing)

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded when the call would not fit."""
        if spec.id not in ctx.overflowing:
            return None
        prompt = ctx.prompt_tokens_for(spec)
        needed = prompt + ctx.output_tokens(spec)
        if needed > spec.context_window:
            return (
                f"context window {spec.context_window} < {prompt} prompt + "
                f"{ctx.output_tokens(spec)} output tokens"
            )
        return None


class TierFilter:
    """Tier bounds from policy and request; escalation raises the floor.

    Strategies that interpret escalation themselves (``cascade``) get
    ``escalate=False``.
    """

    name: ClassVar[str] = "tier"

    def __init__(self, *, escalate: bool = True) -> None:
        self.escalate = escalate

    def applies(self, constraints: Constraints) -> bool:
        """Whether a tier bound is set or escalation may raise the floor."""
        return constraints.min_tier is not None or constraints.max_tier is not None or self.escalate

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        c = ctx.constraints
        return (
            c.min_tier is not None
            or c.max_tier is not None
            or (self.escalate and ctx.request.escalation > 0)
        )

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded below the (escalated) minimum or above the maximum tier."""
        low = ctx.constraints.min_tier
        escalation = ctx.request.escalation if self.escalate else 0
        if escalation:
            low = max(low or ctx.min_catalog_tier, ctx.min_catalog_tier + escalation)
        if low is not None and spec.tier < low:
            why = f"tier {spec.tier} below minimum {low}"
            return f"{why} (escalation {escalation})" if escalation else why
        high = ctx.constraints.max_tier
        if high is not None and spec.tier > high:
            return f"tier {spec.tier} above maximum {high}"
        return None


class TagFilter:
    """Allow-list and deny-list of catalog tags."""

    name: ClassVar[str] = "tags"

    def applies(self, constraints: Constraints) -> bool:
        """Whether ``constraints`` allow or deny any tag."""
        return bool(constraints.deny_tags or constraints.allow_tags)

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return bool(ctx.constraints.deny_tags or ctx.constraints.allow_tags)

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded by a denied tag, or for lacking every allowed tag."""
        denied = spec.tags & ctx.constraints.deny_tags
        if denied:
            return "tagged " + ", ".join(sorted(denied)) + " (denied)"
        allowed = ctx.constraints.allow_tags
        if allowed and not spec.tags & allowed:
            return "has none of the allowed tags " + ", ".join(sorted(allowed))
        return None


class HealthFilter:
    """Models whose circuit breaker is open are skipped until it may be probed."""

    name: ClassVar[str] = "health"

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return bool(ctx.snapshot.breakers)

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded while the breaker is open."""
        breaker = ctx.snapshot.breakers.get(spec.id)
        if breaker is None or not breaker.blocks(ctx.snapshot.now):
            return None
        reason = f": {breaker.reason}" if breaker.reason else ""
        if breaker.state == "half_open":
            return f"circuit half-open, its probe calls are in flight{reason}"
        until = time.strftime("%H:%M:%S", time.gmtime(breaker.until))
        return f"circuit open until {until} UTC{reason}"


class LocalRateLimitFilter:
    """Models whose client-side rate limit is full now (``RouteRequest.saturated``).

    The caller fills ``saturated`` from its limiter; when this filter leaves no
    model, the caller routes again without it and waits for the chosen one.
    """

    name: ClassVar[str] = "rate_limited_locally"

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return bool(ctx.request.saturated)

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded while its local rate limit is full."""
        why = ctx.request.saturated.get(spec.id)
        return None if why is None else f"rate_limited_locally: {why}"


class LatencyFilter:
    """Observed p95 latency must meet the latency SLO (unobserved models pass)."""

    name: ClassVar[str] = "latency"

    def applies(self, constraints: Constraints) -> bool:
        """Whether ``constraints`` set a latency SLO."""
        return constraints.latency_slo_ms is not None

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return ctx.constraints.latency_slo_ms is not None and bool(ctx.snapshot.stats)

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded when the observed p95 is above the SLO."""
        slo = ctx.constraints.latency_slo_ms
        stats = ctx.snapshot.stats.get(spec.id)
        if slo is None or stats is None or stats.p95_latency_ms is None:
            return None
        if stats.p95_latency_ms > slo:
            return f"p95 latency {stats.p95_latency_ms:.0f} ms above SLO {slo:.0f} ms"
        return None


class QualityFloorFilter:
    """The quality estimate for the task must reach the floor."""

    name: ClassVar[str] = "quality"

    def applies(self, constraints: Constraints) -> bool:
        """Whether ``constraints`` set a quality floor."""
        return constraints.quality_floor is not None

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return ctx.constraints.quality_floor is not None

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded below the quality floor."""
        floor = ctx.constraints.quality_floor
        if floor is None:
            return None
        quality = ctx.quality(spec)
        if quality < floor:
            return f"quality {quality:.2f} for {ctx.task or 'any task'} below floor {floor:.2f}"
        return None


class BudgetFilter:
    """The call's worst-case cost must fit the per-call limit and every budget left."""

    name: ClassVar[str] = "budget"

    def active(self, ctx: RouteContext) -> bool:
        """See :meth:`Filter.active`."""
        return (
            ctx.constraints.max_cost_usd is not None
            or bool(ctx.budgets)
            or ctx.request.remaining_budget_usd is not None
        )

    def why_not(self, spec: ModelSpec, ctx: RouteContext) -> str | None:
        """Excluded when the worst case is over a limit."""
        worst = ctx.worst_cost(spec)
        limit = ctx.constraints.max_cost_usd
        if limit is not None and worst > limit:
            return f"worst-case cost ${worst:.6f} above per-call limit ${limit:.6f}"
        tightest = ctx.remaining()
        if tightest is not None and worst > tightest[1]:
            scope, left = tightest
            return (
                f"worst-case cost ${worst:.6f} exceeds ${max(left, 0):.6f} left in budget {scope}"
            )
        return None


DEFAULT_FILTERS: tuple[Filter, ...] = (
    CallerExcludeFilter(),
    CapabilityFilter(),
    ContextWindowFilter(),
    TierFilter(),
    TagFilter(),
    HealthFilter(),
    LocalRateLimitFilter(),
    LatencyFilter(),
    QualityFloorFilter(),
    BudgetFilter(),
)
"""Every filter, in the order their reasons are reported (first reason wins)."""
