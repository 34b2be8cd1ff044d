"""Backoff with full jitter, and the retry budget (token bucket per model)."""

from __future__ import annotations

import random
import threading

from agentmesh.resilience.policy import RetryBudgetPolicy, RetryPolicy

__all__ = ["RetryBudget", "backoff_delay"]


def backoff_delay(
    policy: RetryPolicy,
    retry: int,
    rng: random.Random,
    retry_after: float | None = None,
) -> float | None:
    """Seconds to wait before retry number ``retry`` (0-based), or ``None`` not to wait.

    Full jitter: ``uniform(0, min(cap_s, base_s * 2**retry))``. A provider's
    Retry-After is a floor; one longer than ``max_retry_after_s`` returns
    ``None``: the caller should move to another model rather than wait.
    """
    if retry_after is not None and retry_after > policy.max_retry_after_s:
        return None
    ceiling = min(policy.cap_s, policy.base_s * (2**retry))
    delay = rng.uniform(0.0, ceiling)
    return max(delay, retry_after or 0.0)


class RetryBudget:
    """gRPC-style retry throttling: one token bucket per model, in this process.

    Thread-safe. Retries of a model are allowed only while its bucket holds
    more than half its capacity; failures drain it, successes refill it slowly.
    """

    def __init__(self, policy: RetryBudgetPolicy | None = None) -> None:
        self.policy = policy or RetryBudgetPolicy()
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def tokens(self, model: str) -> float:
        """Tokens left in ``model``'s bucket."""
        with self._lock:
            return self._tokens.get(model, self.policy.max_tokens)

    def allows_retry(self, model: str) -> bool:
        """Whether a retry of ``model`` is within budget now."""
        return self.tokens(model) > self.policy.max_tokens / 2

    def on_success(self, model: str) -> None:
        """A call succeeded: refill by ``token_ratio``."""
        with self._lock:
            left = self._tokens.get(model, self.policy.max_tokens)
            self._tokens[model] = min(self.policy.max_tokens, left + self.policy.token_ratio)

    def on_failure(self, model: str) -> None:
        """A call failed: take one token."""
        with self._lock:
            left = self._tokens.get(model, self.policy.max_tokens)
            self._tokens[model] = max(0.0, left - 1.0)
