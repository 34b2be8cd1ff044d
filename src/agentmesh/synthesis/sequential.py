"""Sequential strategies: ``refine`` (one item per call) and ``compact`` (packed items).

Both keep a running answer and improve it with the next material. ``refine``
starts from the first item as is and makes one call per further item;
``compact`` packs as many items as the stage's smallest context window holds
into each call, so it makes fewer calls on the same input. Items larger than
a window are split (paragraphs, sentences, words, characters) and fed piece
by piece; a prompt never exceeds the window of any model the stage may use.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from agentmesh.synthesis.base import (
    Item,
    NoParams,
    SynthesisContext,
    SynthesisParams,
    SynthesisResult,
    Synthesizer,
    prepare_items,
)
from agentmesh.synthesis.pack import MIN_ROOM_TOKENS, Piece, join, pieces_of, take
from agentmesh.synthesis.prompts import StepPrompt
from agentmesh.synthesis.run import SynthesisRun

__all__ = ["Compact", "CompactParams", "Refine"]


def _refine_prompt(ctx: SynthesisContext) -> StepPrompt:
    return StepPrompt("refine", {"question": ctx.goal, "answer": "", "material": ""})


def _sources(seen: dict[str, None], pieces: Sequence[Piece]) -> tuple[str, ...]:
    for piece in pieces:
        seen.update(dict.fromkeys(piece.sources))
    return tuple(seen)


async def _refine_with(
    run: SynthesisRun,
    queue: deque[Piece],
    answer: str,
    seen: dict[str, None],
    *,
    cap: int | None = None,
    most: int | None = None,
) -> str:
    """Refine ``answer`` with the queued pieces, as many per call as fit (at most ``most``)."""
    base = _refine_prompt(run.ctx)
    while queue:
        room = run.room("refine", base)
        capacity = run.usable(room, reserve=run.count(answer), cap=cap)
        pack = take(queue, capacity, run.count, most=most)
        result = await run.call(
            "refine",
            base.with_inputs(answer=answer, material=join(pack)),
            sources=_sources(seen, pack),
            pieces=len(pack),
        )
        answer = result.response.text
    return answer


class Refine(Synthesizer[NoParams]):
    """Answer from the first item, then refine the running answer with each next item.

    One item is returned as is (no call); ``n`` items take ``n - 1`` calls
    (more when an item must be split to fit the stage's window). Stage:
    ``refine`` (template ``refine``).
    """

    name = "refine"
    stages = ("refine",)

    async def synthesize(
        self, items: Sequence[Item | str], ctx: SynthesisContext
    ) -> SynthesisResult:
        """Refine item by item."""
        kept, notes = prepare_items(items, self.name)
        run = SynthesisRun(self.name, ctx, kept, notes)
        if len(kept) == 1:
            return run.result(kept[0].text)
        room = run.room("refine", _refine_prompt(ctx))
        # half the room: the first piece becomes the answer, and answer + material must fit
        limit = run.usable(room) // 2
        pieces, split_notes = pieces_of(
            kept, max(limit, MIN_ROOM_TOKENS), run.count, labelled=False
        )
        run.notes.extend(split_notes)
        queue = deque(pieces)
        first = queue.popleft()
        seen = dict.fromkeys(first.sources)
        answer = await _refine_with(run, queue, first.text, seen, most=1)
        return run.result(answer)


class CompactParams(SynthesisParams):
    """Options of ``compact``.

    Attributes:
        max_pack_tokens: Most tokens of material in one prompt, below what the
            window allows (``None``: as much as the window holds).
    """

    max_pack_tokens: Annotated[int | None, Field(ge=MIN_ROOM_TOKENS)] = None


class Compact(Synthesizer[CompactParams]):
    """Pack items into as few prompts as the window allows, then refine across the packs.

    The first pack is answered with the ``summarize`` template (stage
    ``answer``); each later pack refines the running answer (stage ``refine``,
    template ``refine``), its room shrunk by the answer's tokens. One item is
    returned as is (no call).
    """

    name = "compact"
    Params = CompactParams
    stages = ("answer", "refine")

    async def synthesize(
        self, items: Sequence[Item | str], ctx: SynthesisContext
    ) -> SynthesisResult:
        """Answer the first pack, refine with the others."""
        kept, notes = prepare_items(items, self.name)
        run = SynthesisRun(self.name, ctx, kept, notes)
        if len(kept) == 1:
            return run.result(kept[0].text)
        cap = self.params.max_pack_tokens
        first_prompt = StepPrompt("summarize", {"question": ctx.goal, "texts": ""})
        capacity = run.usable(run.room("answer", first_prompt), cap=cap)
        pieces, split_notes = pieces_of(kept, capacity, run.count, labelled=True)
        run.notes.extend(split_notes)
        queue = deque(pieces)
        pack = take(queue, capacity, run.count)
        seen: dict[str, None] = {}
        result = await run.call(
            "answer",
            first_prompt.with_inputs(texts=join(pack)),
            sources=_sources(seen, pack),
            pieces=len(pack),
        )
        answer = await _refine_with(run, queue, result.response.text, seen, cap=cap)
        return run.result(answer)
