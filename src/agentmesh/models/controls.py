"""Settings of the gateway controls, as catalog entries and policies write them.

The controls themselves (response cache, rate limiter, hedging, redaction,
health probes) are steps of the resilient caller's attempt routine
(:mod:`agentmesh.resilience`); this module only holds their frozen, validated
settings, low enough in the layers for both a :class:`~agentmesh.models.ModelSpec`
(``cache``, ``ttl``, ``limits``, ``redact``, ``health``) and a routing
:class:`~agentmesh.routing.Policy` (``cache``, ``ttl``, ``hedge``, ``redact``)
to carry them::

    - id: gpt-small
      limits: {rpm: 500, tpm: 200000, concurrency: 8, max_wait: 10}
      cache: true          # or false, or "sampled" (also cache temperature > 0 calls)
      ttl: 3600            # seconds a cached answer lives
      redact: true         # or "package.module:function"
      health: {interval_s: 30}
      semantic_cache: {model: gemma-embed, threshold: 0.95}   # also on a policy / node
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CacheSetting",
    "HealthProbe",
    "HedgePolicy",
    "RateLimits",
    "RedactSetting",
    "SemanticCacheSetting",
    "check_redact",
]

CacheSetting = bool | Literal["sampled"]
"""``true``: cache deterministic calls; ``false``: never; ``sampled``: temperature > 0 too."""

RedactSetting = bool | str
"""``true``: the built-in patterns; ``"package.module:function"``: a callable of your own."""

_IMPORT_PATH = re.compile(r"[\w.]+:[\w.]+")


def check_redact(value: RedactSetting | None) -> RedactSetting | None:
    """Validate a ``redact:`` value (shared by specs and policies).

    Raises:
        ValueError: A string that is not ``package.module:function``.
    """
    if isinstance(value, str) and not _IMPORT_PATH.fullmatch(value):
        raise ValueError(f"must be true, false or 'package.module:function' (got {value!r})")
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateLimits(_Frozen):
    """Client-side limits of one catalog entry, enforced before each call.

    Attributes:
        rpm: Requests per window (a minute by default).
        tpm: Tokens per window: the prompt estimate plus the call's output cap,
            as providers count them against their own limit.
        concurrency: Calls in flight at once.
        max_wait: Longest wait, in seconds, for a saturated model when no other
            candidate fits (then the call fails over as on a provider's 429).
        window_s: Length of the rpm/tpm window; 60 makes them per minute.
            Shorter windows (same rate, finer grain) suit tests and bursts.
    """

    rpm: Annotated[int | None, Field(gt=0)] = None
    tpm: Annotated[int | None, Field(gt=0)] = None
    concurrency: Annotated[int | None, Field(gt=0)] = None
    max_wait: Annotated[float, Field(ge=0)] = 30.0
    window_s: Annotated[int, Field(gt=0, le=86400)] = 60


class HedgePolicy(_Frozen):
    """Delayed hedged requests: race the next candidate when the first is slow.

    Attributes:
        after_ms: Milliseconds without an answer (streaming: without a first
            token) before the next candidate starts, or ``p95``: the first
            model's observed p95 latency (no hedge until it has one).
        max_extra: Extra calls started per attempt.
    """

    after_ms: Annotated[float, Field(gt=0)] | Literal["p95"] = "p95"
    max_extra: Annotated[int, Field(ge=1, le=3)] = 1


class HealthProbe(_Frozen):
    """A cheap periodic call that feeds the entry's circuit breaker.

    Attributes:
        interval_s: Seconds between probes.
        prompt: What the probe asks (one output token is requested).
    """

    interval_s: Annotated[float, Field(gt=0)] = 30.0
    prompt: str = "ping"

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class SemanticCacheSetting(_Frozen):
    """The opt-in semantic cache: answer a prompt with a stored answer of a paraphrase.

    A stored answer serves a new call only in the same namespace (the model,
    the node, the prompt template's hash and every message but the last user
    message, the parameters, tools and response format) when the cosine
    similarity of the two last user messages' embeddings reaches ``threshold``
    and, with ``guard``, both carry the same numbers and the same negations.

    Attributes:
        model: Catalog id of a ``kind: embeddings`` entry that embeds the prompts.
        threshold: Lowest cosine similarity that counts as the same question.
        guard: Also require equal numbers and negation words in both prompts
            (what keeps "refund 12 euros" from answering "refund 120 euros").
        max_entries: Answers kept per namespace (the oldest leave first).
    """

    model: Annotated[str, Field(min_length=1)]
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.95
    guard: bool = True
    max_entries: Annotated[int, Field(gt=0, le=100_000)] = 1000
