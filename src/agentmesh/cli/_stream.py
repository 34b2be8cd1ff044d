"""``agentmesh run --stream``: the output node's tokens on stdout as they arrive.

Standard library only at the top (CLI start-up); the tokens are
:class:`agentmesh.graph.streaming.Token` values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from agentmesh.graph.streaming import Token

__all__ = ["TokenWriter"]

Key = tuple[str, int]
"""One execution of the output node: its branch and round."""


class TokenWriter:
    """Writes one node's streamed text to ``out``, one model answer at a time.

    The first answer to stream is written live, token by token; an answer
    streaming at the same time (another fan-out branch) is held and written
    whole once the live one ends, so answers never interleave. Each answer
    ends with a newline. A model turn without text (a tool request) writes
    nothing.

    Attributes:
        wrote: Some text was written.
    """

    def __init__(self, node: str, out: TextIO) -> None:
        self.node = node
        self.out = out
        self.wrote = False
        self._live: Key | None = None
        self._open = False  # the live answer has text on the current line
        self._held: dict[Key, list[str]] = {}
        self._ended: set[Key] = set()

    def __call__(self, token: Token) -> None:
        """Take one token (of any node; only :attr:`node`'s are written)."""
        if token.node != self.node:
            return
        key = (token.branch, token.round)
        if self._live is None:
            self._live = key
        if key != self._live:
            if token.last:
                self._ended.add(key)
            else:
                self._held.setdefault(key, []).append(token.text)
            return
        if not token.last:
            self._write(token.text)
        elif self._open:
            self._end_answer()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self.wrote = self._open = True

    def _end_answer(self) -> None:
        self._write("\n")
        self._open = False
        self._live = None
        while self._held:
            key = next(iter(self._held))
            self._write("".join(self._held.pop(key)))
            if key not in self._ended:
                self._live = key
                return
            self._ended.discard(key)
            self._write("\n")
            self._open = False

    def close(self) -> None:
        """Write what is still held (a run that stopped mid-answer) and end the line."""
        if self._open:
            self._write("\n")
        for text in self._held.values():
            self._write("".join(text) + "\n")
        self._held.clear()
        self._open = False
