"""The mutable bookkeeping of one resilient call, shared by the caller's steps.

A :class:`Run` is made by :class:`~agentmesh.resilience.ResilientCaller` for
each call and handed to every step of the attempt routine (the walk over a
decision's models, the hedge race, the consensus, the streaming plumbing):
the attempts so far, the models tried, the last error, and for a stream who
owns its output and what it has sent. Nothing outside the
caller's steps sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentmesh.models.errors import ModelError
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.resilience.breaker import CircuitBreaker
from agentmesh.resilience.call import Attempt, Call, Spend
from agentmesh.resilience.policy import ResiliencePolicy
from agentmesh.resilience.retry import RetryBudget
from agentmesh.routing.types import Outcome

__all__ = ["Invoke", "Run", "Sleep", "empty", "outcome"]

Sleep = Callable[[float], Awaitable[None]]
"""How to wait between retries (tests inject a fake)."""

Invoke = Callable[["Run", str, ModelRequest, Mapping[str, Any]], Awaitable[ModelResponse]]
"""How one attempt reaches the model: ``(run, model id, request, span attributes) -> response``."""


@dataclass(slots=True)
class Run:
    """Mutable bookkeeping of one call (private to the caller and its steps).

    Attributes:
        call: What is served.
        resilience: The policy in force (the call's or the caller's).
        invoke: How an attempt reaches the model (``invoke`` or ``stream``).
        breaker: The breaker transitions under the policy's thresholds.
        retry_budget: The retry token buckets under the policy's budget.
        deadline: The event-loop time the call must end by, if any.
        attempts: Every attempt so far, in order.
        tried: Models tried (or skipped) so far.
        last_error: The last model error.
        streaming: Attempts stream their answer (``stream()``).
        committed: Streamed text reached the consumer: no retry, no fallback.
        owner: The model whose deltas are streamed (the first to send one).
        claimed: Set when ``owner`` is (a hedged stream's race).
        streamed: The text deltas the owner has sent toward the consumer: what a
            stream cut off mid-answer is known to have generated.
    """

    call: Call
    resilience: ResiliencePolicy
    invoke: Invoke
    breaker: CircuitBreaker
    retry_budget: RetryBudget
    deadline: float | None
    attempts: list[Attempt] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    last_error: ModelError | None = None
    streaming: bool = False
    committed: bool = False
    owner: str | None = None
    claimed: asyncio.Event | None = None
    streamed: list[str] = field(default_factory=list)

    def claims(self, model: str) -> bool:
        """Whether ``model``'s delta may be streamed: the first to send one owns the stream."""
        if self.owner is None:
            self.owner = model
            if self.claimed is not None:
                self.claimed.set()
        return self.owner == model


def outcome(
    model: str, billed: Spend, *, latency_ms: float | None = None, error: str | None = None
) -> Outcome:
    """What the router learns from one attempt (a rejected answer is still billed)."""
    return Outcome(
        model,
        latency_ms=latency_ms,
        error=error,
        input_tokens=billed.input_tokens,
        output_tokens=billed.output_tokens,
        cost_usd=billed.cost_usd,
    )


def empty(response: ModelResponse) -> bool:
    """An answer with no text and no tool call."""
    return not response.text.strip() and not response.tool_calls
