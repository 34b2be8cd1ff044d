"""Spans of the gateway controls: cache lookups, rate-limiter waits, hedges, probes.

Each control of the attempt routine leaves one short span beside the ``chat``
spans of the call (same parent), named after what it did:

- ``cache {model}``: one lookup; ``agentmesh.cache.hit`` and, on a hit,
  ``agentmesh.cache.saved_usd`` (what the original call cost).
- ``ratelimit {model}``: a wait for the local limiter; ``agentmesh.ratelimit.wait_s``
  and ``agentmesh.ratelimit.limit`` (``rpm``, ``tpm``, ``concurrency``).
- ``hedge {model}``: a hedged attempt; ``agentmesh.hedge.after_ms``, the
  extra model ``agentmesh.hedge.model`` and ``agentmesh.hedge.winner``.
- ``health {model}``: one health probe; ``agentmesh.health.ok``.

``trace summary`` reads them back (hit rate and savings, waits, hedges).
"""

from __future__ import annotations

from typing import Final

from agentmesh.tracing.attributes import NODE_NAME
from agentmesh.tracing.spans import SpanScope

__all__ = [
    "CACHE_HIT",
    "CACHE_SAVED_USD",
    "CACHE_SEMANTIC",
    "CACHE_SIMILARITY",
    "HEALTH_OK",
    "HEDGE_AFTER_MS",
    "HEDGE_MODEL",
    "HEDGE_WINNER",
    "RATELIMIT_LIMIT",
    "RATELIMIT_WAIT_S",
    "cache_span",
    "health_span",
    "hedge_span",
    "ratelimit_span",
]

CACHE_HIT: Final = "agentmesh.cache.hit"
CACHE_SAVED_USD: Final = "agentmesh.cache.saved_usd"
CACHE_SEMANTIC: Final = "agentmesh.cache.semantic"
"""True on the ``cache {model}`` span of a semantic lookup."""
CACHE_SIMILARITY: Final = "agentmesh.cache.similarity"
"""A semantic lookup's best cosine similarity in its namespace (hit or not)."""
RATELIMIT_WAIT_S: Final = "agentmesh.ratelimit.wait_s"
RATELIMIT_LIMIT: Final = "agentmesh.ratelimit.limit"
HEDGE_AFTER_MS: Final = "agentmesh.hedge.after_ms"
HEDGE_MODEL: Final = "agentmesh.hedge.model"
HEDGE_WINNER: Final = "agentmesh.hedge.winner"
HEALTH_OK: Final = "agentmesh.health.ok"


def _scope(kind: str, model: str, node: str | None) -> SpanScope:
    attrs = {"gen_ai.request.model": model}
    if node is not None:
        attrs[NODE_NAME] = node
    return SpanScope(f"{kind} {model}", attrs)


def cache_span(model: str, node: str | None) -> SpanScope:
    """``cache {model}``: set :data:`CACHE_HIT` (and :data:`CACHE_SAVED_USD`) inside."""
    return _scope("cache", model, node)


def ratelimit_span(model: str, node: str | None) -> SpanScope:
    """``ratelimit {model}``: set :data:`RATELIMIT_WAIT_S` and :data:`RATELIMIT_LIMIT` inside."""
    return _scope("ratelimit", model, node)


def hedge_span(model: str, node: str | None) -> SpanScope:
    """``hedge {model}``: the primary ``model``'s hedge; set the ``agentmesh.hedge.*`` inside."""
    return _scope("hedge", model, node)


def health_span(model: str) -> SpanScope:
    """``health {model}``: one probe; set :data:`HEALTH_OK` inside."""
    return _scope("health", model, None)
