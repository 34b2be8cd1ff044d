"""Synthetic, deterministic candidates shared by both sides of ``routing_overhead.py``.

One seeded generator describes model ``m{i}`` (family, tier, prices, context window,
quality priors, load-balancing weight and observed latencies) independently of how
many models are built, so the 10-model catalog is a prefix of the 100-model one and
agentmesh and LiteLLM are given the very same candidates.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentmesh.models.catalog import Catalog
from agentmesh.models.spec import ModelSpec

__all__ = [
    "LITELLM_MODEL_GROUP",
    "OBSERVATIONS_PER_MODEL",
    "PROMPT",
    "SEED",
    "SyntheticModel",
    "agentmesh_catalog",
    "litellm_model_list",
    "synthetic_models",
]

SEED = 20240611
"""Seed of every pseudo-random value; change it to get another (equally valid) catalog."""

PROMPT = (
    "A bakery sells muffins for $3 each and cookies for $1.50 each. On Monday it sold 48 "
    "muffins and twice as many cookies as muffins. On Tuesday it sold 25 percent more muffins "
    "than on Monday and 30 fewer cookies than on Monday. How much money did the bakery make "
    "over the two days? Explain your reasoning step by step and give the final answer as a "
    "single number."
)
"""A fixed, realistic ~60-word math word problem routed on every call."""

LITELLM_MODEL_GROUP = "bench"
"""The one LiteLLM ``model_name`` every synthetic deployment shares."""

_FAMILIES = ("gpt", "claude", "gemma", "llama", "qwen")
_CAPABILITIES = ("json", "tools", "streaming", "vision")
_INPUT_USD_PER_MTOK = {1: 0.15, 2: 0.8, 3: 3.0, 4: 12.0}
"""Typical input price (USD per million tokens) by tier, scattered +-40% per model."""
_LATENCY_MS = {1: 350.0, 2: 700.0, 3: 1200.0, 4: 2200.0}
"""Typical latency by tier, scattered +-30% per model and +-10% per observation."""
OBSERVATIONS_PER_MODEL = 5
"""Latency (and quality) observations recorded for every model before timing."""


@dataclass(frozen=True, slots=True)
class SyntheticModel:
    """Everything both routers are told about one synthetic model.

    Attributes:
        spec: The agentmesh catalog entry.
        weight: Integer load-balancing weight (agentmesh ``round_robin`` weights and
            LiteLLM ``litellm_params.weight``).
        latencies_ms: Latencies to record as observed successful calls.
        math_scores: Judged quality scores to record for the ``math`` task (agentmesh only;
            LiteLLM has no quality model).
    """

    spec: ModelSpec
    weight: int
    latencies_ms: tuple[float, ...]
    math_scores: tuple[float, ...]


def _model(index: int, seed: int) -> SyntheticModel:
    rng = random.Random(seed * 1_000_003 + index)
    tier = rng.randint(1, 4)
    price_in = round(_INPUT_USD_PER_MTOK[tier] * rng.uniform(0.6, 1.4), 4)
    price_out = round(price_in * rng.uniform(2.0, 5.0), 4)
    context_window = rng.choice((8192, 32768, 131072))
    max_output = min(context_window // 2, rng.choice((2048, 4096, 8192)))
    prior = min(0.98, 0.35 + 0.13 * tier + rng.uniform(-0.08, 0.08))
    capabilities = sorted(rng.sample(_CAPABILITIES, rng.randint(0, 3)))
    spec = ModelSpec.model_validate(
        {
            "id": f"m{index}",
            "provider": "scripted",
            "model": f"m{index}",
            "family": rng.choice(_FAMILIES),
            "tier": tier,
            "pricing": {"input": price_in, "output": price_out},
            "context_window": context_window,
            "max_output_tokens": max_output,
            "capabilities": capabilities,
            "quality": {
                "default": round(prior, 3),
                "math": round(min(0.99, prior + rng.uniform(-0.1, 0.1)), 3),
            },
        }
    )
    base = _LATENCY_MS[tier] * rng.uniform(0.7, 1.3)
    latencies = tuple(round(base * rng.uniform(0.9, 1.1), 3) for _ in range(OBSERVATIONS_PER_MODEL))
    scores = tuple(
        round(min(1.0, max(0.0, prior + rng.uniform(-0.15, 0.15))), 3)
        for _ in range(OBSERVATIONS_PER_MODEL)
    )
    return SyntheticModel(spec, rng.randint(1, 3), latencies, scores)


def synthetic_models(count: int, seed: int = SEED) -> tuple[SyntheticModel, ...]:
    """The first ``count`` synthetic models (``m0`` .. ``m{count-1}``) of ``seed``."""
    return tuple(_model(i, seed) for i in range(count))


def agentmesh_catalog(models: Sequence[SyntheticModel]) -> Catalog:
    """An agentmesh :class:`Catalog` of ``models``."""
    return Catalog([m.spec for m in models], source=f"synthetic-{len(models)}")


def litellm_model_list(models: Sequence[SyntheticModel]) -> list[dict[str, Any]]:
    """LiteLLM ``Router(model_list=...)`` deployments for ``models``, one model group.

    Every deployment points at a closed loopback port (``127.0.0.1:9``) with a dummy
    key: deployment selection never calls it, and nothing could be reached if it did.
    Prices are the catalog's, converted from USD per million tokens to USD per token.
    """
    return [
        {
            "model_name": LITELLM_MODEL_GROUP,
            "litellm_params": {
                "model": f"openai/{m.spec.id}",
                "api_key": "x",
                "api_base": "http://127.0.0.1:9/v1",
                "input_cost_per_token": m.spec.pricing.input / 1_000_000,
                "output_cost_per_token": m.spec.pricing.output / 1_000_000,
                "weight": m.weight,
            },
            "model_info": {"id": m.spec.id},
        }
        for m in models
    ]
