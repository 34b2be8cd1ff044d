"""The `Strategy` contract: rank the eligible models of one decision.

A strategy is a small class with a ``name`` (its YAML name), a ``Params``
pydantic model for its options, and one method, :meth:`Strategy.rank`. It sees
only models that passed every filter and returns them ranked (best first) with
a one-line reason; it may also exclude more models, saying why. Ties are broken
the same way everywhere (:func:`ordered`): cheaper worst case, lower tier, id.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from agentmesh._slots import slot_setters
from agentmesh.models.spec import ModelSpec
from agentmesh.routing.context import RouteContext
from agentmesh.routing.ranked import Ranked
from agentmesh.routing.types import Candidate, Exclusion, RouteRequest

__all__ = ["NoParams", "Ranking", "Strategy", "StrategyParams", "by_quality", "ordered"]


class StrategyParams(BaseModel):
    """Base of strategy parameter models: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NoParams(StrategyParams):
    """For strategies without options."""


P = TypeVar("P", bound=StrategyParams)


@dataclass(frozen=True, slots=True, init=False)
class Ranking:
    """A strategy's answer.

    Attributes:
        ranked: Eligible models, best first (never empty); a lazy :class:`Ranked`
            sorts and formats notes only when read past the first.
        reason: One line on why the first one won.
        excluded: Models the strategy itself ruled out, with why.
        selected: Models to call together (``consensus``); empty means the first.
    """

    ranked: Sequence[Candidate]
    reason: str
    excluded: tuple[Exclusion, ...] = ()
    selected: tuple[str, ...] = ()

    def __init__(
        self,
        ranked: Sequence[Candidate],
        reason: str,
        excluded: tuple[Exclusion, ...] = (),
        selected: tuple[str, ...] = (),
    ) -> None:
        set_ranked, set_reason, set_excluded, set_selected = _RANKING_SETTERS
        set_ranked(self, ranked)
        set_reason(self, reason)
        set_excluded(self, excluded)
        set_selected(self, selected)


_RANKING_SETTERS = slot_setters(Ranking)  # built on every decision: see agentmesh._slots


class Strategy(ABC, Generic[P]):
    """Ranks candidates for one decision.

    Class attributes:
        name: The name policies use.
        Params: The parameter model (validated from a policy's ``params``).
        needs_task: The router must know the task (classifying when not given).
        needs_classification: The router must classify the prompt even when
            the task is given (the ``complexity`` strategy reads the level).
        handles_escalation: The strategy reads ``request.escalation`` itself;
            otherwise the tier filter raises the minimum tier by it.
        needs_stats: The strategy reads ``ctx.snapshot.stats`` (observed latency,
            errors). When neither it nor the latency filter does, the router reads
            no model's statistics: the snapshot's cost then does not grow with the
            catalog (one Redis script reads the breakers, counter and budgets
            only). True by default, so a strategy written before this flag keeps
            its statistics; the built-in ones that never read them say False.
    """

    name: ClassVar[str]
    Params: ClassVar[type[StrategyParams]] = NoParams
    needs_task: ClassVar[bool] = False
    needs_classification: ClassVar[bool] = False
    handles_escalation: ClassVar[bool] = False
    needs_stats: ClassVar[bool] = True

    def __init__(self, params: P) -> None:
        self.params = params

    def counter_key(self, request: RouteRequest) -> str | None:
        """A state counter to increment and read with the snapshot, if the strategy needs one."""
        return None

    @abstractmethod
    async def rank(self, candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranking:
        """Rank ``candidates`` (non-empty, all eligible) for ``ctx``."""


def ordered(scored: Iterable[tuple[ModelSpec, float, str]], ctx: RouteContext) -> Ranked:
    """Candidates by score (high first), then cheaper worst case, lower tier, id.

    For strategies whose notes are already written; :class:`Ranked` directly
    defers them (and the sort) until the ranking is read.
    """
    rows = list(scored)
    notes = {spec.id: note for spec, _, note in rows}
    return Ranked(
        [row[0] for row in rows],
        [row[1] for row in rows],
        ctx.costs,
        lambda spec, _: notes[spec.id],
    )


def _quality_note(spec: ModelSpec, score: float) -> str:
    return f"quality {score:.2f}"


def by_quality(candidates: Sequence[ModelSpec], ctx: RouteContext) -> Ranked:
    """Candidates by estimated quality for the task (best first), noted with it."""
    quality = ctx.qualities(candidates)
    return Ranked(candidates, [quality[s.id] for s in candidates], ctx.costs, _quality_note)
