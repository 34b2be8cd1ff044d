"""Choosing among candidates: ``best_of_n`` (a judge picks), and the helpers vote shares.

A judge step is one call listing numbered candidates and asking for JSON
``{"best": <number>, "reasons": "..."}`` (template ``pick_best``, schema
:data:`~agentmesh.synthesis.prompts.PICK_BEST_SCHEMA`). An answer that is not
that JSON, or names no candidate, does not fail the synthesis: the candidate
of the strongest model (highest tier, then the catalog's quality prior, then
input order) is taken and the judge's problem recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NamedTuple

from agentmesh._jsontext import loads as json_loads
from agentmesh.models.spec import ModelSpec
from agentmesh.synthesis.base import (
    Item,
    SynthesisContext,
    SynthesisParams,
    SynthesisResult,
    Synthesizer,
    prepare_items,
)
from agentmesh.synthesis.pack import split_text
from agentmesh.synthesis.prompts import StepPrompt
from agentmesh.synthesis.run import SynthesisRun

__all__ = [
    "BestOfN",
    "BestOfNParams",
    "Pick",
    "judge_pick",
    "numbered",
    "parse_pick",
    "strongest",
]


class Pick(NamedTuple):
    """A judge's choice: the 0-based position of the best candidate, and why."""

    position: int
    reasons: str


def parse_pick(text: str, candidates: int) -> Pick:
    """Read a judge's JSON answer.

    Raises:
        ValueError: Not a JSON object, or ``best`` is not a candidate number
            (1 to ``candidates``); the message says which.
    """
    try:
        data = json_loads(text)
    except ValueError:
        raise ValueError(f"not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object: {text[:80]!r}")
    best = data.get("best")
    if isinstance(best, bool) or not isinstance(best, int):
        raise ValueError(f"'best' must be a candidate number, got {best!r}")
    if not 1 <= best <= candidates:
        raise ValueError(f"'best' is {best}, but there are {candidates} candidates")
    reasons = data.get("reasons", "")
    return Pick(best - 1, reasons if isinstance(reasons, str) else json.dumps(reasons))


def numbered(texts: Sequence[str]) -> str:
    """Candidates as ``Candidate 1:`` ... blocks, separated by blank lines."""
    return "\n\n".join(f"Candidate {n}:\n{text}" for n, text in enumerate(texts, start=1))


def _fit(run: SynthesisRun, texts: Sequence[str], capacity: int) -> list[str]:
    """``texts`` cut to equal shares of ``capacity`` when they do not fit together."""
    count = run.count
    if count(numbered(texts)) <= capacity:
        return list(texts)
    share = (capacity - count(numbered([""] * len(texts)))) // len(texts) - 1
    if share < 1:
        raise run.error(
            f"{len(texts)} candidates do not fit the judge's window ({capacity} tokens)",
            stage="judge",
        )
    cut = [
        t if count(t) <= share else split_text(t, max(share - 2, 1), count)[0] + " ..."
        for t in texts
    ]
    run.notes.append(f"candidates cut to {share} tokens each to fit the judge's window")
    return cut


def _strength(spec: ModelSpec | None, item: Item, ctx: SynthesisContext) -> tuple[int, float]:
    if spec is None:
        return 0, item.score if item.score is not None else 0.0
    return spec.tier, ctx.caller.router.matrix.prior(spec, ctx.task)


def strongest(items: Sequence[Item], ctx: SynthesisContext) -> int:
    """Index of the item answered by the strongest model (tier, then quality prior, then order)."""
    specs = {s.id: s for s in ctx.caller.router.catalog.specs}
    ranked = [
        (*_strength(specs.get(item.model or ""), item, ctx), -index)
        for index, item in enumerate(items)
    ]
    return -max(ranked)[2]


async def judge_pick(
    run: SynthesisRun,
    candidates: Sequence[str],
    *,
    sources: Sequence[str],
    criteria: str = "",
    stage: str = "judge",
) -> Pick | str:
    """Ask a judge (stage ``stage``) to pick the best of ``candidates``.

    Returns:
        The pick, or why the judge's answer was unusable.

    Raises:
        SynthesisError: No model served the judge call.
    """
    base = StepPrompt(
        "pick_best", {"question": run.ctx.goal, "candidates": "", "criteria": criteria}
    )
    room = run.room(stage, base, json=True)
    shown = _fit(run, candidates, run.usable(room))
    result = await run.call(
        stage,
        base.with_inputs(candidates=numbered(shown)),
        sources=sources,
        pieces=len(shown),
        json=True,
    )
    try:
        return parse_pick(result.response.text, len(candidates))
    except ValueError as exc:
        return f"{result.model} answered {exc}"


class BestOfNParams(SynthesisParams):
    """Options of ``best_of_n``.

    Attributes:
        criteria: What makes a candidate the best, shown to the judge.
    """

    criteria: str = ""


class BestOfN(Synthesizer[BestOfNParams]):
    """A judge picks the best of N candidates and says why (stage ``judge``).

    One candidate is returned as is (no call). Candidates too long to fit the
    judge's window together are shown cut to equal shares (noted). An invalid
    judgement falls back to the strongest model's candidate, with the reason.
    """

    name = "best_of_n"
    Params = BestOfNParams
    stages = ("judge",)

    async def synthesize(
        self, items: Sequence[Item | str], ctx: SynthesisContext
    ) -> SynthesisResult:
        """Let the judge pick."""
        kept, notes = prepare_items(items, self.name)
        run = SynthesisRun(self.name, ctx, kept, notes)
        if len(kept) == 1:
            return run.result(kept[0].text, selected=(kept[0].source,))
        pick = await judge_pick(
            run,
            [i.text for i in kept],
            sources=[i.source for i in kept],
            criteria=self.params.criteria,
        )
        if isinstance(pick, Pick):
            winner = kept[pick.position]
            return run.result(
                winner.text, selected=(winner.source,), decided_by="judge", reasons=pick.reasons
            )
        winner = kept[strongest(kept, ctx)]
        why = (
            f"judge answer invalid ({pick}); took the candidate of the strongest model "
            f"({winner.source}, {winner.model or 'unknown model'})"
        )
        run.notes.append(why)
        return run.result(
            winner.text, selected=(winner.source,), decided_by="strongest", reasons=why
        )
