"""Fitting text into context windows: split what is too large, pack what is small.

Everything here counts with a ``count(text) -> tokens`` function (the
calibrated estimate by default, a model tokenizer when one is plugged in).
A text larger than the room is split at the coarsest boundary that works:
paragraphs, then lines, then sentences, then words, and finally characters.
Pieces are packed greedily in order, so neighbouring text stays together.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from agentmesh.synthesis.base import Item

__all__ = [
    "MIN_ROOM_TOKENS",
    "SEPARATOR",
    "Counter",
    "Piece",
    "join",
    "pieces_of",
    "split_text",
    "take",
]

Counter = Callable[[str], int]
"""Counts the tokens of a text."""

MIN_ROOM_TOKENS = 16
"""The least room worth packing into; less means the window cannot hold the step."""

SEPARATOR = "\n\n"
"""What joins packed pieces."""

# (pattern that splits, separator that re-joins), coarsest first.
_LEVELS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\n\s*\n"), "\n\n"),
    (re.compile(r"\n"), "\n"),
    (re.compile(r"(?<=[.!?;:])\s+"), " "),
    (re.compile(r"\s+"), " "),
)


class Piece(NamedTuple):
    """Text ready to go into a prompt, and the item sources it stands for."""

    text: str
    sources: tuple[str, ...]


def _hard_split(text: str, limit: int, count: Counter) -> list[str]:
    """Split by characters into prefixes of at most ``limit`` tokens."""
    out: list[str] = []
    rest = text
    while rest:
        total = count(rest)
        if total <= limit:
            out.append(rest)
            break
        size = max(1, len(rest) * limit // total)
        while size > 1 and count(rest[:size]) > limit:
            size = max(1, size * 9 // 10)
        out.append(rest[:size])
        rest = rest[size:]
    return out


def _split(text: str, limit: int, count: Counter, level: int) -> list[str]:
    if count(text) <= limit:
        return [text]
    if level == len(_LEVELS):
        return _hard_split(text, limit, count)
    pattern, glue = _LEVELS[level]
    parts = [p for p in pattern.split(text) if p.strip()]
    if len(parts) <= 1:
        return _split(text, limit, count, level + 1)
    small = [s for part in parts for s in _split(part, limit, count, level + 1)]
    return _merge(small, glue, limit, count)


def _merge(parts: Sequence[str], glue: str, limit: int, count: Counter) -> list[str]:
    """Greedily join neighbouring parts while the (checked) count fits."""
    out: list[str] = []
    current: list[str] = []
    running = 0
    joint = count(glue) + 1
    for part in parts:
        tokens = count(part)
        # sum of the counts plus the glue and one token of slack per join; checked below
        if current and running + joint + tokens > limit:
            out.extend(_checked(glue.join(current), current, limit, count))
            current, running = [], 0
        running += joint + tokens if current else tokens
        current.append(part)
    if current:
        out.extend(_checked(glue.join(current), current, limit, count))
    return out


def _checked(joined: str, parts: list[str], limit: int, count: Counter) -> list[str]:
    """``joined`` if it really fits, else its parts (each of which fits)."""
    return [joined] if count(joined) <= limit else parts


def split_text(text: str, limit: int, count: Counter) -> list[str]:
    """Split ``text`` into consecutive pieces of at most ``limit`` tokens.

    Boundaries are tried coarse to fine (paragraphs, lines, sentences, words,
    characters); whitespace at the boundaries may be dropped.

    Raises:
        ValueError: ``limit`` is below one token.
    """
    if limit < 1:
        raise ValueError(f"cannot split into pieces of {limit} tokens")
    return _split(text, limit, count, 0)


def _label(item: Item, part: int, parts: int) -> str:
    model = f", model {item.model}" if item.model else ""
    of = f", part {part} of {parts}" if parts > 1 else ""
    return f"[{item.source}{model}{of}]"


def pieces_of(
    items: Sequence[Item], limit: int, count: Counter, *, labelled: bool
) -> tuple[list[Piece], list[str]]:
    """Each item as one or more pieces of at most ``limit`` tokens, plus split notes.

    Labelled pieces start with a line naming the source (and model and part),
    so a model reading several knows where each comes from.
    """
    pieces: list[Piece] = []
    notes: list[str] = []
    for item in items:
        text = item.text.strip()
        room = limit
        if labelled:
            room -= count(_label(item, 999, 999)) + 1
        chunks = split_text(text, room, count) if count(text) > room else [text]
        if len(chunks) > 1:
            notes.append(f"split {item.source} into {len(chunks)} pieces of <= {room} tokens")
        for number, chunk in enumerate(chunks, start=1):
            shown = f"{_label(item, number, len(chunks))}\n{chunk}" if labelled else chunk
            pieces.append(Piece(shown, (item.source,)))
    return pieces, notes


def join(pieces: Sequence[Piece]) -> str:
    """The pieces' texts, separated by blank lines."""
    return SEPARATOR.join(p.text for p in pieces)


def take(
    queue: deque[Piece], capacity: int, count: Counter, *, most: int | None = None
) -> list[Piece]:
    """Pop the leading pieces of ``queue`` that fit ``capacity`` tokens together.

    At most ``most`` pieces are taken. When even the first piece does not fit,
    it is split: its head is taken and the rest goes back to the front.

    Raises:
        ValueError: ``capacity`` is below :data:`MIN_ROOM_TOKENS` or the queue is empty.
    """
    if capacity < MIN_ROOM_TOKENS:
        raise ValueError(f"only {capacity} tokens of room (at least {MIN_ROOM_TOKENS} needed)")
    if not queue:
        raise ValueError("nothing to take")
    first = queue.popleft()
    if count(first.text) > capacity:
        head, *rest = split_text(first.text, capacity, count)
        for text in reversed(rest):
            queue.appendleft(Piece(text, first.sources))
        return [Piece(head, first.sources)]
    taken = [first]
    glue = count(SEPARATOR) + 1
    running = count(first.text)
    while queue and (most is None or len(taken) < most):
        tokens = count(queue[0].text)
        if running + glue + tokens > capacity:
            break
        taken.append(queue.popleft())
        running += glue + tokens
    while len(taken) > 1 and count(join(taken)) > capacity:  # the slack was not enough
        queue.appendleft(taken.pop())
    return taken
