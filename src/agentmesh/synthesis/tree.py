"""``tree_summarize``: summarise groups, then the summaries, until one remains.

Items are packed into groups of at most ``fan_in`` pieces that fit the
``leaf`` stage's window; every group of a level is summarised concurrently
(``asyncio.gather``, optionally bounded by ``max_concurrency``); the
summaries become the next level's pieces. As soon as what is left fits one
prompt of the ``root`` stage (at most ``fan_in`` pieces), one root call
writes the answer. So leaves and root are routed separately: cheap leaves,
a strong root.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from agentmesh.synthesis.base import (
    Item,
    SynthesisContext,
    SynthesisError,
    SynthesisParams,
    SynthesisResult,
    Synthesizer,
    prepare_items,
)
from agentmesh.synthesis.pack import Piece, join, pieces_of, take
from agentmesh.synthesis.prompts import StepPrompt
from agentmesh.synthesis.run import SynthesisRun

__all__ = ["TreeParams", "TreeSummarize"]


class TreeParams(SynthesisParams):
    """Options of ``tree_summarize``.

    Attributes:
        fan_in: Most pieces summarised by one call.
        max_concurrency: Most summaries of a level running at once (``None``: all).
    """

    fan_in: Annotated[int, Field(ge=2)] = 4
    max_concurrency: Annotated[int | None, Field(ge=1)] = None


def _sources(pieces: Sequence[Piece]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for p in pieces for s in p.sources))


class TreeSummarize(Synthesizer[TreeParams]):
    """Summarise groups of ``fan_in`` concurrently, level by level, up to one root call.

    Stages: ``leaf`` (every summary below the root, all levels) and ``root``
    (the final call); both use the ``summarize`` template. One item is
    returned as is (no call).
    """

    name = "tree_summarize"
    Params = TreeParams
    stages = ("leaf", "root")

    async def synthesize(
        self, items: Sequence[Item | str], ctx: SynthesisContext
    ) -> SynthesisResult:
        """Summarise up the tree."""
        kept, notes = prepare_items(items, self.name)
        run = SynthesisRun(self.name, ctx, kept, notes)
        if len(kept) == 1:
            return run.result(kept[0].text)
        prompt = StepPrompt("summarize", {"question": ctx.goal, "texts": ""})
        fan_in = self.params.fan_in
        root_room = run.usable(run.room("root", prompt))
        pieces, split_notes = pieces_of(kept, root_room, run.count, labelled=True)
        run.notes.extend(split_notes)
        level = 0
        while len(pieces) > fan_in or run.count(join(pieces)) > root_room:
            leaf_room = run.usable(run.room("leaf", prompt))
            queue = deque(pieces)
            groups: list[list[Piece]] = []
            while queue:
                groups.append(take(queue, leaf_room, run.count, most=fan_in))
            if level > 0 and len(groups) >= len(pieces):
                raise run.error(
                    f"level {level}: the leaf window ({leaf_room} tokens of material) cannot "
                    f"hold two summaries; raise the window or lower max_output_tokens",
                    stage="leaf",
                )
            summaries = await self._level(run, prompt, groups, level)
            pieces = [
                Piece(f"[summary {level + 1}.{n}]\n{text}", _sources(group))
                for n, (group, text) in enumerate(zip(groups, summaries, strict=True), start=1)
            ]
            level += 1
        result = await run.call(
            "root",
            prompt.with_inputs(texts=join(pieces)),
            sources=_sources(pieces),
            pieces=len(pieces),
            level=level,
        )
        return run.result(result.response.text)

    async def _level(
        self, run: SynthesisRun, prompt: StepPrompt, groups: list[list[Piece]], level: int
    ) -> list[str]:
        """Summarise every group of a level concurrently; the summaries in group order.

        Every leaf runs to its end even when another fails, so the error
        carries every call that was made.
        """
        limit = self.params.max_concurrency
        gate: contextlib.AbstractAsyncContextManager[object] = (
            asyncio.Semaphore(limit) if limit is not None else contextlib.nullcontext()
        )

        async def leaf(group: list[Piece]) -> str:
            async with gate:
                result = await run.call(
                    "leaf",
                    prompt.with_inputs(texts=join(group)),
                    sources=_sources(group),
                    pieces=len(group),
                    level=level,
                )
            return result.response.text

        done = await asyncio.gather(*(leaf(g) for g in groups), return_exceptions=True)
        failed = [r for r in done if isinstance(r, BaseException)]
        for failure in failed:
            if not isinstance(failure, SynthesisError):
                raise failure
        if failed:
            raise run.error(
                f"{len(failed)} of {len(groups)} leaf summaries of level {level} failed; "
                f"first: {failed[0]}",
                stage="leaf",
            ) from failed[0]
        return [r for r in done if isinstance(r, str)]
