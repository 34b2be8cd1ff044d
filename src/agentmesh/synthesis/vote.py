"""``vote``: an ensemble vote over the branches' extracted answers.

Each item's reply goes through an extractor (``number``, ``choice``,
``short``, ``exact`` or any callable) to a normalised answer; items without
one abstain. Votes are weighted one each (``majority``) or by the routing
matrix's quality estimate of the model that produced the item for the task
(``quality``). A clear winner costs no model call at all. When the top
answers tie, a judge picks among them (``tie_break: judge``; stage ``judge``)
or the answer of the strongest model wins (``tie_break: strongest``). The
result's text is the original reply of one member of the winning group (the
best-weighted, then best-scored, then first; under ``tie_break: strongest`` the
strongest model's), never the normalised match key; the provenance keeps the
key (``answer``), every vote, the weights, the agreement (the winner's share of
the weight) and how a tie was broken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple

from pydantic import field_validator

from agentmesh.synthesis.base import (
    Item,
    SynthesisContext,
    SynthesisParams,
    SynthesisResult,
    Synthesizer,
    prepare_items,
)
from agentmesh.synthesis.extract import EXTRACTORS, Extractor
from agentmesh.synthesis.judge import Pick, judge_pick, strongest
from agentmesh.synthesis.run import SynthesisRun

__all__ = ["TIE_BREAKS", "WEIGHTINGS", "Ballot", "Vote", "VoteParams"]

_TIE = 1e-9

Weighting = Callable[[Sequence[Item], SynthesisContext], Awaitable[list[float]]]
"""Computes each item's vote weight."""


async def _majority(items: Sequence[Item], ctx: SynthesisContext) -> list[float]:
    return [1.0] * len(items)


async def _quality(items: Sequence[Item], ctx: SynthesisContext) -> list[float]:
    """Routing-matrix estimate of each item's model for the task (one state read).

    Items from models the catalog does not list weigh their own ``score``, else
    the matrix's default prior.
    """
    router = ctx.caller.router
    estimates = await router.quality_estimates((i.model for i in items if i.model), ctx.task)
    default = router.matrix.default_prior
    return [
        estimates.get(item.model or "", item.score if item.score is not None else default)
        for item in items
    ]


WEIGHTINGS: Mapping[str, Weighting] = MappingProxyType({"majority": _majority, "quality": _quality})
"""Vote weightings by the name ``params.weighting`` uses."""


@dataclass(frozen=True, slots=True)
class Ballot:
    """The counted vote.

    Attributes:
        items: The items that voted (abstentions excluded).
        answers: Each voting item's normalised answer, parallel to ``items``.
        weights: Each voting item's weight, parallel to ``items``.
    """

    items: tuple[Item, ...]
    answers: tuple[str, ...]
    weights: tuple[float, ...]

    def totals(self) -> dict[str, float]:
        """Answer -> total weight, in order of first appearance."""
        out: dict[str, float] = {}
        for answer, weight in zip(self.answers, self.weights, strict=True):
            out[answer] = out.get(answer, 0.0) + weight
        return out

    def voters(self, answer: str) -> list[Item]:
        """The items that voted for ``answer``."""
        return [i for i, a in zip(self.items, self.answers, strict=True) if a == answer]

    def representative(self, answer: str) -> Item:
        """The member of ``answer``'s group whose original text stands for it.

        The best-weighted voter, then the best-scored (a judge's ``score``), then
        the first in input order.
        """
        members = [
            (weight, item.score if item.score is not None else -1.0, -position, item)
            for position, (item, a, weight) in enumerate(
                zip(self.items, self.answers, self.weights, strict=True)
            )
            if a == answer
        ]
        return max(members, key=lambda m: m[:3])[3]

    def leaders(self) -> list[str]:
        """The answers with the highest total weight (more than one is a tie)."""
        totals = self.totals()
        top = max(totals.values())
        return [a for a, w in totals.items() if top - w <= _TIE]


class Decision(NamedTuple):
    """How a tie was broken: the answer, by what, and why."""

    answer: str
    by: str
    reasons: str


TieBreak = Callable[[Ballot, Sequence[str], SynthesisRun], Awaitable[Decision]]
"""Chooses among tied answers."""


async def _by_strongest(ballot: Ballot, tied: Sequence[str], run: SynthesisRun) -> Decision:
    voters = [(answer, item) for answer in tied for item in ballot.voters(answer)]
    answer, item = voters[strongest([i for _, i in voters], run.ctx)]
    model = item.model or "unknown model"
    return Decision(answer, "strongest", f"tie broken by the strongest model's answer ({model})")


async def _by_judge(ballot: Ballot, tied: Sequence[str], run: SynthesisRun) -> Decision:
    shown: list[str] = []
    sources: list[str] = []
    for answer in tied:
        voters = ballot.voters(answer)
        best = voters[strongest(voters, run.ctx)]
        names = ", ".join(v.source for v in voters)
        shown.append(f"Answer: {answer}\nGiven by: {names}\nSupporting reply:\n{best.text}")
        sources.extend(v.source for v in voters)
    pick = await judge_pick(
        run,
        shown,
        sources=sources,
        criteria="These answers tied in a vote. Pick the one most likely to be correct.",
    )
    if isinstance(pick, Pick):
        return Decision(tied[pick.position], "judge", pick.reasons)
    fallback = await _by_strongest(ballot, tied, run)
    why = f"judge answer invalid ({pick}); {fallback.reasons}"
    run.notes.append(why)
    return Decision(fallback.answer, "strongest", why)


TIE_BREAKS: Mapping[str, TieBreak] = MappingProxyType(
    {"judge": _by_judge, "strongest": _by_strongest}
)
"""Tie-breaks by the name ``params.tie_break`` uses."""


class VoteParams(SynthesisParams):
    """Options of ``vote``.

    Attributes:
        extractor: Name of the answer extractor (see ``EXTRACTORS``).
        weighting: ``majority`` (one vote each) or ``quality`` (routing-matrix estimate).
        tie_break: ``judge`` (an LLM call among the tied answers) or ``strongest``
            (the answer of the highest-tier model).
    """

    extractor: str = "short"
    weighting: Literal["majority", "quality"] = "majority"
    tie_break: Literal["judge", "strongest"] = "judge"

    @field_validator("extractor")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in EXTRACTORS:
            raise ValueError(f"unknown extractor {value!r}; known: {', '.join(sorted(EXTRACTORS))}")
        return value


class Vote(Synthesizer[VoteParams]):
    """Majority or quality-weighted vote over extracted answers; the judge only breaks ties.

    Args:
        params: The options.
        extractor: An extractor to use instead of the one named in ``params``.
    """

    name = "vote"
    Params = VoteParams
    stages = ("judge",)

    def __init__(self, params: VoteParams | None = None, *, extractor: Extractor | None = None):
        super().__init__(params)
        self.extractor: Extractor = extractor or EXTRACTORS[self.params.extractor]

    async def synthesize(
        self, items: Sequence[Item | str], ctx: SynthesisContext
    ) -> SynthesisResult:
        """Count the votes; break a tie if there is one."""
        kept, notes = prepare_items(items, self.name)
        run = SynthesisRun(self.name, ctx, kept, notes)
        answers = [self.extractor(i.text) for i in kept]
        abstained = tuple(i.source for i, a in zip(kept, answers, strict=True) if a is None)
        voting = [(i, a) for i, a in zip(kept, answers, strict=True) if a is not None]
        if not voting:
            raise run.error("no answer could be extracted from any item", abstained=abstained)
        weights = await WEIGHTINGS[self.params.weighting]([i for i, _ in voting], ctx)
        ballot = Ballot(tuple(i for i, _ in voting), tuple(a for _, a in voting), tuple(weights))
        totals = ballot.totals()
        votes = {a: [i.source for i in ballot.voters(a)] for a in totals}
        leaders = ballot.leaders()
        by: str
        if len(leaders) == 1:
            winner, by, reasons, tie = leaders[0], self.params.weighting, "", None
        else:
            decision = await TIE_BREAKS[self.params.tie_break](ballot, leaders, run)
            winner, by, reasons, tie = decision.answer, decision.by, decision.reasons, decision.by
        total = sum(totals.values())
        group = ballot.voters(winner)
        chosen = (
            group[strongest(group, ctx)] if by == "strongest" else ballot.representative(winner)
        )
        return run.result(
            chosen.text,
            answer=winner,
            selected=tuple(votes[winner]),
            votes=votes,
            weights=totals,
            abstained=abstained,
            agreement=totals[winner] / total if total > 0 else 0.0,
            tie_broken_by=tie,
            decided_by=by,
            reasons=reasons,
        )
