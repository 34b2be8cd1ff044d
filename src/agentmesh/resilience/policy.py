"""`ResiliencePolicy`: how calls survive failures, written in Python or YAML.

::

    resilience:
      retry: {max_attempts: 3, base_s: 0.2, cap_s: 5, max_retry_after_s: 30}
      retry_budget: {max_tokens: 10, token_ratio: 0.1}
      breaker: {failure_threshold: 5, window_s: 30, cooldown_s: 30, half_open_probes: 1}
      on_error: {content_filtered: fail}     # overrides of the defaults below
      degrade: {allow: true, min_tier: 1}
      deadline_s: 60

What each error kind does by default (:data:`DEFAULT_ACTIONS`):

=================  ==============================================================
``retry``          retry the same model (backoff, Retry-After), then fall back:
                   rate_limited, timeout, unavailable, malformed_response
``larger_context`` fall back only to models with a larger context window:
                   context_overflow
``fail``           stop at once with a clear error: auth_error, bad_request,
                   content_filtered (a refusal is never silently sent elsewhere)
``fallback``       go to the next model without retrying
=================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentmesh.routing.policy import Policy, PolicyError, policy_document, split_policy

__all__ = [
    "DEFAULT_ACTIONS",
    "Action",
    "BreakerPolicy",
    "DegradePolicy",
    "ResiliencePolicy",
    "RetryBudgetPolicy",
    "RetryPolicy",
]

Action = Literal["retry", "fallback", "larger_context", "fail"]

DEFAULT_ACTIONS: Mapping[str, Action] = MappingProxyType(
    {
        "rate_limited": "retry",
        "timeout": "retry",
        "unavailable": "retry",
        "malformed_response": "retry",
        "context_overflow": "larger_context",
        "content_filtered": "fail",
        "auth_error": "fail",
        "bad_request": "fail",
    }
)
"""Error kind -> action, unless a policy's ``on_error`` says otherwise."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    """Retries of one model, with exponential backoff and full jitter.

    The n-th retry (n = 0, 1, ...) waits ``uniform(0, min(cap_s, base_s * 2**n))``
    seconds, or the provider's Retry-After when that is longer (up to
    ``max_retry_after_s``; a longer Retry-After falls back instead of waiting).

    Attributes:
        max_attempts: Calls of one model per request, the first included.
        base_s: Backoff base.
        cap_s: Largest backoff.
        max_retry_after_s: Longest Retry-After the caller is willing to wait.
    """

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    base_s: Annotated[float, Field(ge=0)] = 0.2
    cap_s: Annotated[float, Field(ge=0)] = 5.0
    max_retry_after_s: Annotated[float, Field(ge=0)] = 30.0


class RetryBudgetPolicy(_Frozen):
    """Token bucket limiting retries to a share of calls (gRPC retry throttling).

    Each model's bucket starts full at ``max_tokens``; a failure takes one token,
    a success gives back ``token_ratio``; retries are allowed only while the
    bucket holds more than half of ``max_tokens``. In an outage retries stop
    after a few failures, so they cannot multiply the load.
    """

    max_tokens: Annotated[float, Field(gt=0)] = 10.0
    token_ratio: Annotated[float, Field(gt=0, le=1)] = 0.1


class BreakerPolicy(_Frozen):
    """A circuit breaker per model, kept in the shared routing state.

    Attributes:
        failure_threshold: Consecutive failures (within ``window_s``) that open it.
        window_s: A failure streak older than this starts over.
        cooldown_s: How long it stays open before probes are let through.
        half_open_probes: Trial calls allowed while half-open; one success closes it.
        counts: Error kinds that count as the model's failure (client errors don't).
    """

    failure_threshold: Annotated[int, Field(ge=1)] = 5
    window_s: Annotated[float, Field(gt=0)] = 30.0
    cooldown_s: Annotated[float, Field(gt=0)] = 30.0
    half_open_probes: Annotated[int, Field(ge=1)] = 1
    counts: frozenset[str] = frozenset(
        {"rate_limited", "timeout", "unavailable", "malformed_response"}
    )


class DegradePolicy(_Frozen):
    """Whether, when every capable model is down, a lower tier may serve.

    Attributes:
        allow: Accept degradation (recorded on the result) instead of failing.
        min_tier: The lowest tier degradation may go to.
    """

    allow: bool = False
    min_tier: Annotated[int, Field(ge=1)] = 1


class ResiliencePolicy(_Frozen):
    """Everything about surviving failures, for one node or call.

    Attributes:
        retry: Retries of one model.
        retry_budget: Share of calls that may be retries.
        breaker: Circuit breaker settings.
        on_error: Error kind -> action overrides of :data:`DEFAULT_ACTIONS`.
        degrade: Lower-tier service when every capable model is down.
        deadline_s: Total time for the whole call, every attempt included.
        max_models: Most distinct models tried for one call (primary included).
    """

    retry: RetryPolicy = RetryPolicy()
    retry_budget: RetryBudgetPolicy = RetryBudgetPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    on_error: dict[str, Action] = Field(default_factory=dict)
    degrade: DegradePolicy = DegradePolicy()
    deadline_s: Annotated[float | None, Field(gt=0)] = None
    max_models: Annotated[int, Field(ge=1)] = 4

    def action(self, kind: str) -> Action:
        """What to do after an error of ``kind`` (unknown kinds fall back)."""
        return self.on_error.get(kind) or DEFAULT_ACTIONS.get(kind, "fallback")

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, source: str = "resilience"
    ) -> ResiliencePolicy:
        """Validate ``data``; errors name ``source`` and the field.

        Raises:
            ValueError: An invalid field, naming it.
        """
        unknown = set(data.get("on_error", {}) or {}) - set(DEFAULT_ACTIONS)
        if unknown:
            raise ValueError(
                f"{source}: on_error: unknown error kinds {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_ACTIONS)}"
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(
                ".".join(str(p) for p in e["loc"]) + ": " + str(e["msg"]) for e in exc.errors()
            )
            raise ValueError(f"{source}: {problems}") from None


def load_call_policy(
    path: str | Path | None, strategy: str | None = None
) -> tuple[Policy, ResiliencePolicy]:
    """The routing and resilience policies of a policy file (or of a bare strategy).

    Every command that takes ``--policy FILE`` reads it here (through
    :func:`call_policy_of`, the reader ``agentmesh serve --policies`` uses for each
    entry too), so a file one command accepts
    every command accepts.

    Args:
        path: The policy YAML; ``None`` for ``strategy`` (default ``cheapest``) alone.
        strategy: A strategy overriding the file's.

    Raises:
        PolicyError: The file is unreadable or invalid, naming the file and field.
    """
    if path is None:
        return Policy.from_mapping(
            {"strategy": strategy or "cheapest"}, source="--strategy"
        ), ResiliencePolicy()
    return call_policy_of(policy_document(path), str(path), strategy=strategy)


def call_policy_of(
    data: Any, source: str, *, strategy: str | None = None
) -> tuple[Policy, ResiliencePolicy]:
    """The routing and resilience policies of one policy mapping (a file's, or an entry's).

    Raises:
        PolicyError: Not a mapping, or an invalid policy, naming ``source`` and the field.
    """
    routing, resilience = split_policy(data, source, strategy=strategy)
    try:
        res = ResiliencePolicy.from_mapping(resilience, source=f"{source} resilience")
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    return routing, res
