"""`Ranked`: a strategy's candidates, best first, ordered and explained only when read.

A decision over N eligible models needs the best one at once, the next ones
only if it fails, and the notes (``"$0.000412 worst case"``) only when the
decision is traced or shown. :class:`Ranked` keeps what the strategy computed
(the eligible specs and one score each) and derives the rest on demand: the
best candidate with one pass in C (``max``), the full order with one sort the
first time anything past the best is read, and each note when that candidate
is built. :class:`Fallbacks` is the lazy "every ranked model but the selected
ones" view a decision hands its caller.

Ties are broken the same way everywhere: higher score, then cheaper worst case,
lower tier, id (see ``strategies.base.ordered``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import overload

from agentmesh.models.spec import ModelSpec
from agentmesh.routing.types import Candidate

__all__ = ["Fallbacks", "NoteFn", "Ranked", "first_model"]

NoteFn = Callable[[ModelSpec, float], str]
"""Formats one candidate's note from its spec and score (called only when it is read)."""


def _no_note(spec: ModelSpec, score: float) -> str:
    return ""


class Ranked(Sequence[Candidate]):
    """Candidates best first, built on demand from specs and scores.

    Args:
        specs: The eligible models (any order unless ``in_order``).
        scores: One score per spec, higher is better (any float sequence; a
            ``range`` works for an already ordered rotation).
        costs: Worst-case cost by model id, read only to break ties.
        note: Formats a candidate's note when the candidate is read.
        in_order: ``specs`` are already best first (no sort, no tie-break).
    """

    __slots__ = ("_costs", "_first", "_note", "_order", "_scores", "_specs")

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        scores: Sequence[float],
        costs: Mapping[str, float],
        note: NoteFn = _no_note,
        *,
        in_order: bool = False,
    ) -> None:
        if len(specs) != len(scores):
            raise ValueError(f"{len(specs)} candidates but {len(scores)} scores")
        self._specs = specs
        self._scores = scores
        self._costs = costs
        self._note = note
        if in_order or not specs:
            self._order: Sequence[int] | None = range(len(specs)) if in_order else None
            self._first = 0
            return
        self._order = None
        # The best: one ``max`` in C, a tie-break only among equal scores.
        top = max(scores)
        self._first = scores.index(top)
        if scores.count(top) > 1:
            tied = [i for i, s in enumerate(scores) if s == top]
            self._first = min(tied, key=self._tie)

    def _tie(self, index: int) -> tuple[float, float, int, str]:
        spec = self._specs[index]
        return (-self._scores[index], self._costs[spec.id], spec.tier, spec.id)

    def order(self) -> Sequence[int]:
        """Indices into ``specs``, best first (sorted once, on first use)."""
        if self._order is None:
            self._order = sorted(range(len(self._specs)), key=self._tie)
        return self._order

    def model(self, position: int) -> str:
        """The id at ``position`` (0 is the best) without building a candidate."""
        index = self._first if position == 0 else self.order()[position]
        return self._specs[index].id

    def models(self) -> list[str]:
        """Every id, best first."""
        specs = self._specs
        return [specs[i].id for i in self.order()]

    def _candidate(self, index: int) -> Candidate:
        spec, score = self._specs[index], float(self._scores[index])
        return Candidate(spec.id, score, self._note(spec, score))

    def __len__(self) -> int:
        return len(self._specs)

    @overload
    def __getitem__(self, position: int) -> Candidate: ...

    @overload
    def __getitem__(self, position: slice) -> tuple[Candidate, ...]: ...

    def __getitem__(self, position: int | slice) -> Candidate | tuple[Candidate, ...]:
        if isinstance(position, slice):
            return tuple(self._candidate(i) for i in self.order()[position])
        if position == 0 or position == -len(self._specs):
            return self._candidate(self._first)
        return self._candidate(self.order()[position])

    def __iter__(self) -> Iterator[Candidate]:
        for index in self.order():
            yield self._candidate(index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:  # immutable in content: the lazy parts only cache
        return hash(tuple(self.models()))

    def __repr__(self) -> str:
        return f"Ranked({list(self)!r})"


def first_model(ranked: Sequence[Candidate]) -> str:
    """The best candidate's id, without formatting its note when ``ranked`` is lazy."""
    return ranked.model(0) if isinstance(ranked, Ranked) else ranked[0].model


class Fallbacks(Sequence[str]):
    """The ranked ids except the selected ones, in rank order, listed on first read.

    Iterating it is what a resilient caller does only once the chosen model
    failed, so a decision that succeeds never sorts its candidates.
    """

    __slots__ = ("_ids", "_ranked", "_selected")

    def __init__(self, ranked: Sequence[Candidate], selected: tuple[str, ...]) -> None:
        self._ranked = ranked
        self._selected = selected
        self._ids: tuple[str, ...] | None = None

    def _all(self) -> tuple[str, ...]:
        if self._ids is None:
            ranked, selected = self._ranked, frozenset(self._selected)
            ids = ranked.models() if isinstance(ranked, Ranked) else [c.model for c in ranked]
            self._ids = tuple(m for m in ids if m not in selected)
        return self._ids

    def __len__(self) -> int:
        return len(self._all())

    @overload
    def __getitem__(self, position: int) -> str: ...

    @overload
    def __getitem__(self, position: slice) -> tuple[str, ...]: ...

    def __getitem__(self, position: int | slice) -> str | tuple[str, ...]:
        return self._all()[position]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return self._all() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"Fallbacks({list(self._all())!r})"
