"""Builders for designed routing scenarios."""

from __future__ import annotations

from typing import Any

from agentmesh.models import Catalog, ModelSpec
from agentmesh.routing import Policy, RouteDecision, Router, RouteRequest


def spec(
    model_id: str,
    *,
    tier: int = 1,
    price: tuple[float, float] = (1.0, 2.0),
    window: int = 100_000,
    max_out: int | None = None,
    caps: tuple[str, ...] = ("json", "tools"),
    family: str = "fam",
    provider: str = "scripted",
    quality: dict[str, float] | None = None,
    tags: tuple[str, ...] = (),
) -> ModelSpec:
    fields: dict[str, Any] = {
        "id": model_id,
        "provider": provider,
        "model": model_id,
        "tier": tier,
        "pricing": {"input": price[0], "output": price[1]},
        "context_window": window,
        "max_output_tokens": max_out if max_out is not None else min(4096, window),
        "capabilities": list(caps),
        "family": family,
        "quality": quality or {},
        "tags": list(tags),
    }
    if provider == "openai":
        fields["base_url"] = "http://x.test/v1"
    return ModelSpec.model_validate(fields)


def catalog(*specs: ModelSpec) -> Catalog:
    return Catalog(specs, source="<scenario>")


def request(**fields: Any) -> RouteRequest:
    fields.setdefault("prompt_tokens", 1000)
    fields.setdefault("max_output_tokens", 1000)
    return RouteRequest(**fields)


async def route(router: Router, strategy: str = "cheapest", **fields: Any) -> RouteDecision:
    params = fields.pop("params", {})
    policy_fields = {k: fields.pop(k) for k in list(fields) if k in Policy.model_fields}
    policy = Policy(strategy=strategy, params=params, **policy_fields)
    return await router.route(request(**fields), policy)


def ids(decision: RouteDecision) -> list[str]:
    return [c.model for c in decision.candidates]


def why(decision_or_error: Any, model_id: str) -> str:
    return next(e.why for e in decision_or_error.excluded if e.model == model_id)
