"""`SynthesisRun`: the bookkeeping of one synthesis, and how its steps call models.

Every LLM step goes through :meth:`SynthesisRun.call`, which routes it on its
own (``RouteRequest(node=<merge node>, role="merge:<stage>")`` under the
stage's policy, with the run id for the router's budgets), calls it through
the shared :class:`~agentmesh.resilience.ResilientCaller` with span attributes
naming the strategy and stage, and records a :class:`StepRecord` whether it
succeeded or failed. A failed step raises :class:`SynthesisError` carrying
every record so far.

:meth:`SynthesisRun.room` answers "how much text fits in one prompt of this
stage?" for the strategies that pack or split, from the catalog models the
stage's policy admits (see ``ARCHITECTURE.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentmesh.models.spec import Capability, ModelSpec
from agentmesh.resilience.call import Call, CallFailed, CallResult
from agentmesh.routing.types import RouteRequest
from agentmesh.synthesis.base import (
    ATTR_ITEMS,
    ATTR_LEVEL,
    ATTR_STAGE,
    ATTR_STRATEGY,
    Contributor,
    Item,
    Provenance,
    StepRecord,
    SynthesisContext,
    SynthesisError,
    SynthesisResult,
)
from agentmesh.synthesis.pack import MIN_ROOM_TOKENS, Counter
from agentmesh.synthesis.prompts import StepPrompt, request_tokens

__all__ = ["Room", "SynthesisRun"]


@dataclass(frozen=True, slots=True)
class Room:
    """How much material fits in one prompt of a stage.

    Attributes:
        stage: The stage.
        window: The smallest context window among the models the stage may use.
        overhead: Prompt tokens of the step without its material, for the
            largest prompt variant among those models.
        output: Output tokens reserved for the answer.
        margin: Share of what is left kept unused (counting error).
        models: The models the stage's policy made eligible.
    """

    stage: str
    window: int
    overhead: int
    output: int
    margin: float
    models: tuple[str, ...]

    @property
    def tokens(self) -> int:
        """Tokens of material that fit: ``(window - output - overhead) * (1 - margin)``."""
        return int((self.window - self.output - self.overhead) * (1.0 - self.margin))


def _record(
    stage: str, result: CallResult, sources: tuple[str, ...], level: int | None
) -> StepRecord:
    return StepRecord(
        stage=stage,
        model=result.model,
        attempts=result.attempts,
        sources=sources,
        decision_id=result.decision.decision_id,
        reason=result.decision.reason,
        level=level,
    )


class SynthesisRun:
    """One synthesis in progress: its items, calls, notes and per-stage rooms.

    Args:
        strategy: The synthesizer's name.
        ctx: The synthesis context.
        items: The prepared items (contributors of the result).
        notes: Notes so far (e.g. dropped blank items).
    """

    def __init__(
        self,
        strategy: str,
        ctx: SynthesisContext,
        items: Sequence[Item],
        notes: Sequence[str] = (),
    ) -> None:
        self.strategy = strategy
        self.ctx = ctx
        self.items = tuple(items)
        self.calls: list[StepRecord] = []
        self.notes: list[str] = list(notes)
        self._rooms: dict[str, Room] = {}

    @property
    def count(self) -> Counter:
        """The token counter of the context."""
        return self.ctx.count_tokens

    def provenance(self, **fields: Any) -> Provenance:
        """Provenance with every item as a contributor and the notes so far."""
        contributors = tuple(Contributor(i.source, i.model) for i in self.items)
        return Provenance(self.strategy, contributors, notes=tuple(self.notes), **fields)

    def result(self, text: str, **fields: Any) -> SynthesisResult:
        """The final result, with every call made."""
        return SynthesisResult(text.strip(), self.provenance(**fields), tuple(self.calls))

    def error(self, message: str, *, stage: str | None = None, **fields: Any) -> SynthesisError:
        """A :class:`SynthesisError` carrying the partial provenance and every call so far."""
        return SynthesisError(
            f"{self.strategy}: {message}",
            strategy=self.strategy,
            stage=stage,
            provenance=self.provenance(**fields),
            calls=self.calls,
        )

    def _remaining(self) -> float | None:
        left = self.ctx.remaining_budget_usd
        if left is None:
            return None
        return left - sum(c.cost_usd for c in self.calls)

    def _route_request(self, stage: str, prompt: StepPrompt, json: bool) -> RouteRequest:
        ctx = self.ctx
        return RouteRequest(
            node=ctx.node,
            role=f"merge:{stage}",
            task=ctx.task,
            prompt=prompt.text,
            prompt_tokens=request_tokens(prompt.plain(ctx.max_output_tokens), self.count),
            max_output_tokens=ctx.max_output_tokens,
            capabilities=frozenset({Capability.JSON}) if json else frozenset(),
            remaining_budget_usd=self._remaining(),
            run_id=ctx.run_id,
            run_budget_usd=ctx.run_budget_usd,
        )

    async def call(
        self,
        stage: str,
        prompt: StepPrompt,
        *,
        sources: Sequence[str],
        pieces: int,
        json: bool = False,
        level: int | None = None,
    ) -> CallResult:
        """Route and call one step of ``stage``; record it either way.

        Raises:
            SynthesisError: No model served the step (after retries and fallbacks).
        """
        ctx = self.ctx
        used = tuple(dict.fromkeys(sources))
        attributes: dict[str, str | int] = {
            ATTR_STRATEGY: self.strategy,
            ATTR_STAGE: stage,
            ATTR_ITEMS: pieces,
        }
        if level is not None:
            attributes[ATTR_LEVEL] = level
        try:
            result = await ctx.caller.call(
                Call(
                    self._route_request(stage, prompt, json),
                    prompt.builder(ctx.prompts, ctx.max_output_tokens),
                    ctx.policy_for(stage),
                    ctx.resilience,
                    attributes,
                )
            )
        except CallFailed as failure:
            self.calls.append(
                StepRecord(
                    stage=stage,
                    model=None,
                    attempts=failure.attempts,
                    sources=used,
                    error=failure.kind,
                    level=level,
                )
            )
            raise self.error(f"stage {stage!r} failed: {failure}", stage=stage) from failure
        self.calls.append(_record(stage, result, used, level))
        return result

    def usable(self, room: Room, *, reserve: int = 0, cap: int | None = None) -> int:
        """Tokens of material that fit ``room`` after ``reserve`` (e.g. the running answer).

        Raises:
            SynthesisError: Less than :data:`~agentmesh.synthesis.pack.MIN_ROOM_TOKENS` fit.
        """
        tokens = room.tokens - reserve
        if cap is not None:
            tokens = min(tokens, cap)
        if tokens < MIN_ROOM_TOKENS:
            raise self.error(
                f"stage {room.stage!r}: a window of {room.window} tokens leaves {tokens} for "
                f"material (prompt {room.overhead}, output {room.output}"
                + (f", running answer {reserve}" if reserve else "")
                + f"); at least {MIN_ROOM_TOKENS} are needed",
                stage=room.stage,
            )
        return tokens

    def _admitted(self, stage: str, request: RouteRequest) -> list[ModelSpec]:
        """Catalog models the stage's policy bounds admit (tiers, capabilities, tags, window)."""
        router = self.ctx.caller.router
        bounds = (self.ctx.policy_for(stage) or router.policy).constraints(request)
        need = (request.prompt_tokens or 0) + request.max_output_tokens
        return [
            s
            for s in router.catalog.specs
            if (bounds.min_tier is None or s.tier >= bounds.min_tier)
            and (bounds.max_tier is None or s.tier <= bounds.max_tier)
            and bounds.require <= s.capabilities
            and (not bounds.allow_tags or bounds.allow_tags & s.tags)
            and not bounds.deny_tags & s.tags
            and s.context_window >= need
        ]

    def room(self, stage: str, empty: StepPrompt, *, json: bool = False) -> Room:
        """How much material fits one prompt of ``stage`` (computed once per stage).

        The stage's candidates are the catalog models its policy's bounds admit
        (tiers, required capabilities, tags, and a window that holds the empty
        prompt and the output). Health, budget, latency and quality filters can
        only remove models from that set, so the smallest window among them,
        with the largest prompt overhead among their variants of ``empty`` (the
        step's prompt without material), fits whichever model the call ends up
        on, fallbacks included. Nothing is routed, so no decision, reservation
        or round-robin turn is spent on the question.

        Raises:
            SynthesisError: No model of the catalog is admitted for the stage.
        """
        found = self._rooms.get(stage)
        if found is not None:
            return found
        ctx = self.ctx
        specs = self._admitted(stage, self._route_request(stage, empty, json))
        if not specs:
            raise self.error(
                f"no model of the catalog fits stage {stage!r} (its policy's tiers, "
                f"capabilities and tags, and a window for the prompt and "
                f"{ctx.max_output_tokens} output tokens)",
                stage=stage,
            )
        build = empty.builder(ctx.prompts, ctx.max_output_tokens)
        room = Room(
            stage=stage,
            window=min(s.context_window for s in specs),
            overhead=max(request_tokens(build(s), self.count) for s in specs),
            output=ctx.max_output_tokens,
            margin=ctx.token_margin,
            models=tuple(s.id for s in specs),
        )
        self._rooms[stage] = room
        return room
