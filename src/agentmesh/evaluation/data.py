"""Per-query correctness data: rows of a prompt and whether each model answered it right.

The CSV layout is RouteLLM's: a ``prompt`` column, one True/False column per
model (named by the model), optionally ``domain`` (e.g. the MMLU subject) and
``<model>_response`` (that model's full answer, used by cascades and for output
token counts). Which model is strong and which weak is given, or inferred: the
more accurate of the two correctness columns is the strong one.
"""

from __future__ import annotations

import csv
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DataError", "Dataset", "Row", "load_csv", "split_rows", "subset", "write_csv"]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_RESERVED = frozenset({"prompt", "domain"})
_RESPONSE = "_response"


class DataError(ValueError):
    """A data file cannot be read or does not have the expected columns; names the file."""


@dataclass(frozen=True, slots=True)
class Row:
    """One query.

    Attributes:
        prompt: The prompt as the router sees it.
        weak_ok: Whether the weak model answered right (``None``: not known).
        strong_ok: Whether the strong model answered right (``None``: not known).
        domain: Subject or task label, when the data has one (not seen at route time).
        weak_response: The weak model's answer, when known (cascades score it).
        strong_response: The strong model's answer, when known.
    """

    prompt: str
    weak_ok: bool | None
    strong_ok: bool | None
    domain: str | None = None
    weak_response: str | None = None
    strong_response: str | None = None


@dataclass(frozen=True, slots=True)
class Dataset:
    """Rows plus the names of the two models they describe."""

    rows: tuple[Row, ...]
    strong: str = "strong"
    weak: str = "weak"
    source: str = "<memory>"
    extra: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labelled(self) -> tuple[Row, ...]:
        """Rows where both models' correctness is known (what the metrics need)."""
        return tuple(r for r in self.rows if r.weak_ok is not None and r.strong_ok is not None)

    def accuracy(self, which: str) -> float:
        """Accuracy of ``"weak"`` or ``"strong"`` over the labelled rows."""
        rows = self.labelled
        if not rows:
            return 0.0
        if which == "weak":
            return sum(bool(r.weak_ok) for r in rows) / len(rows)
        return sum(bool(r.strong_ok) for r in rows) / len(rows)


def _bool(value: str) -> bool | None:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def load_csv(path: str | Path, *, strong: str | None = None, weak: str | None = None) -> Dataset:
    """Read a RouteLLM-style CSV.

    Args:
        path: The file.
        strong: The strong model's column (default: the more accurate model column).
        weak: The weak model's column (default: the other one).

    Raises:
        DataError: Unreadable file, no ``prompt`` column, or not exactly two model
            columns (when ``strong``/``weak`` do not name them).
    """
    name = str(path)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(name, encoding="utf-8", newline="") as handle:
            records = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{name}: cannot read: {exc}") from None
    if not records:
        raise DataError(f"{name}: no rows")
    columns = list(records[0])
    if "prompt" not in columns:
        raise DataError(f"{name}: no 'prompt' column (columns: {', '.join(columns)})")
    models = [
        c
        for c in columns
        if c not in _RESERVED
        and not c.endswith(_RESPONSE)
        and all(_bool(r.get(c) or "") is not None for r in records)
    ]
    for given in (strong, weak):
        if given is not None and given not in models:
            raise DataError(f"{name}: no True/False column {given!r} (model columns: {models})")
    if strong is None or weak is None:
        given = strong or weak
        others = [m for m in models if m != given]
        if len(others) != (1 if given else 2):
            raise DataError(
                f"{name}: expected two True/False model columns, found {models}; "
                "name them with --strong-column/--weak-column"
            )

        def accuracy(column: str) -> float:
            return sum(bool(_bool(r[column])) for r in records) / len(records)

        if given is None:
            first, second = others
            strong, weak = (
                (first, second) if accuracy(first) >= accuracy(second) else (second, first)
            )
        elif strong is None:
            strong = others[0]
        else:
            weak = others[0]
    assert strong is not None
    assert weak is not None
    has_domain = "domain" in columns
    rows = tuple(
        Row(
            prompt=r["prompt"],
            weak_ok=_bool(r[weak]),
            strong_ok=_bool(r[strong]),
            domain=r["domain"] if has_domain else None,
            weak_response=r.get(weak + _RESPONSE),
            strong_response=r.get(strong + _RESPONSE),
        )
        for r in records
    )
    return Dataset(rows, strong=strong, weak=weak, source=name)


def split_rows(
    rows: Sequence[Row],
    fraction: float = 0.7,
    seed: int = 0,
    by: Callable[[Row], object] | None = None,
) -> tuple[list[int], list[int]]:
    """Indices of a (train, test) split, stratified by ``by`` (e.g. the domain).

    Within each group the indices are shuffled with ``random.Random(seed)``
    (groups in sorted order) and the first ``round(fraction * size)`` go to train.
    """
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(str(by(row)) if by else "", []).append(i)
    train: list[int] = []
    test: list[int] = []
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        cut = round(len(members) * fraction)
        train += members[:cut]
        test += members[cut:]
    return sorted(train), sorted(test)


def subset(data: Dataset, indices: Iterable[int]) -> Dataset:
    """The rows of ``data`` at ``indices``, same models."""
    return Dataset(tuple(data.rows[i] for i in indices), data.strong, data.weak, data.source)


def write_csv(data: Dataset, path: str | Path) -> None:
    """Write ``data`` in the layout :func:`load_csv` reads (model names as column names)."""
    has_domain = any(r.domain is not None for r in data.rows)
    has_weak = any(r.weak_response is not None for r in data.rows)
    has_strong = any(r.strong_response is not None for r in data.rows)
    columns = (["domain"] if has_domain else []) + ["prompt", data.weak, data.strong]
    columns += [data.weak + _RESPONSE] if has_weak else []
    columns += [data.strong + _RESPONSE] if has_strong else []
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for r in data.rows:
            line = [r.domain or ""] if has_domain else []
            line += [r.prompt, str(r.weak_ok), str(r.strong_ok)]
            line += [r.weak_response or ""] if has_weak else []
            line += [r.strong_response or ""] if has_strong else []
            writer.writerow(line)
