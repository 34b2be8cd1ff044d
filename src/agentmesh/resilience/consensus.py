"""The consensus path: every selected model answers; the most common answer wins.

A ``consensus`` decision (``decision.selected`` holds several models) calls
each member at once, each one walk over its own model (retried, never replaced
by another: a substitute would not be the diverse pick the strategy made).
Answers that differ only in case and spacing vote together; ties go to rank
order. The result carries every member's answer and the winner's agreement.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace

from agentmesh.models.errors import MalformedResponse, ModelError
from agentmesh.models.types import ModelResponse
from agentmesh.resilience.call import CallResult
from agentmesh.resilience.run import Run
from agentmesh.routing.types import RouteDecision

__all__ = ["Walk", "consensus", "vote_key"]

Walk = Callable[[Run, RouteDecision, str], Awaitable[CallResult | str]]
"""The caller's walk over a decision's models: a result, or why it stopped."""


async def consensus(run: Run, decision: RouteDecision, walk: Walk) -> CallResult | str:
    """Call every selected model at once; the most common answer wins (ties: rank order).

    Returns ``"exhausted"`` (``run.last_error`` set) when no member answered.
    """
    members = decision.selected
    runs = [replace(run, attempts=[], tried=set(), committed=False) for _ in members]

    async def member(sub: Run, model: str) -> ModelResponse | ModelError:
        only = replace(decision, chosen=model, fallbacks=())
        found = await walk(sub, only, "")
        if isinstance(found, CallResult):
            return found.response
        return sub.last_error or MalformedResponse("no answer", model_id=model)

    answers = await asyncio.gather(*(member(s, m) for s, m in zip(runs, members, strict=True)))
    for sub in runs:
        run.attempts.extend(sub.attempts)
        run.tried.update(a.model for a in sub.attempts)
    served = [a for a in answers if isinstance(a, ModelResponse)]
    if not served:
        run.last_error = next(a for a in answers if isinstance(a, ModelError))
        return "exhausted"
    votes = Counter(vote_key(a.text) for a in served)
    best = max(votes.values())
    winner = next(a for a in served if votes[vote_key(a.text)] == best)
    return CallResult(
        winner,
        decision,
        tuple(run.attempts),
        decision.request.escalation,
        members=tuple(served),
        agreement=best / len(members),
    )


def vote_key(text: str) -> str:
    """Answers that differ only in case and spacing vote together."""
    return " ".join(text.split()).casefold()
