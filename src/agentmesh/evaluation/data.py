"""Per-query outcome data: rows of a prompt and how well each of two models answered it.

Three file formats, told apart by content (:func:`load_csv`):

- **correctness** (RouteLLM's layout): a ``prompt`` column, one True/False
  column per model (named by the model), optionally ``domain`` (e.g. the MMLU
  subject) and ``<model>_response`` (that model's full answer, used by
  cascades and for output token counts);
- **graded** (MT-Bench style): the same layout with numbers in the model
  columns, on a scale given with ``scale=(MIN, MAX)`` (``--scale MIN-MAX``) or
  inferred from the values (:func:`infer_scale`); a score becomes the quality
  ``(score - MIN) / (MAX - MIN)`` in [0, 1];
- **pairwise** (Chatbot Arena style): ``prompt``, ``model_a``, ``model_b``,
  ``winner`` (``model_a``, ``model_b`` or ``tie``), optionally ``domain``: the
  winner's quality is 1 and the loser's 0; a tie counts both as 1 (the weak
  answer was good enough). Rows comparing another pair of models are skipped
  (counted in :attr:`Dataset.extra`).

Which model is strong and which weak is given, or inferred: the one with the
higher mean quality (accuracy, score, or win rate) is the strong one. Every
error names the file, and for a bad cell its row (1 = the first data row)
and column.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = [
    "KINDS",
    "DataError",
    "Dataset",
    "Row",
    "concat",
    "infer_scale",
    "load_csv",
    "parse_scale",
    "split_rows",
    "subset",
    "write_csv",
]

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_RESERVED = frozenset({"prompt", "domain"})
_RESPONSE = "_response"
_PAIRWISE = ("prompt", "model_a", "model_b", "winner")
_WINNERS = ("model_a", "model_b", "tie")
_T = TypeVar("_T")
_SCALES = ((0.0, 1.0), (1.0, 10.0), (0.0, 10.0), (0.0, 100.0))
"""Scales :func:`infer_scale` recognises, tried in this order."""

KINDS = ("correctness", "graded", "pairwise")
"""The file formats :func:`load_csv` reads (:attr:`Dataset.kind`)."""


class DataError(ValueError):
    """A data file cannot be read or does not have the expected columns; names the file."""


@dataclass(frozen=True, slots=True)
class Row:
    """One query.

    Attributes:
        prompt: The prompt as the router sees it.
        weak_ok: Whether the weak model answered right (``None``: not known); for
            graded rows, whether its quality is at least 0.5.
        strong_ok: Whether the strong model answered right (``None``: not known).
        domain: Subject or task label, when the data has one (not seen at route time).
        weak_response: The weak model's answer, when known (cascades score it).
        strong_response: The strong model's answer, when known.
        weak_quality: The weak answer's quality in [0, 1] for graded rows
            (``None``: the row is True/False, :attr:`weak_value` reads ``weak_ok``).
        strong_quality: The strong answer's quality in [0, 1] for graded rows.
    """

    prompt: str
    weak_ok: bool | None
    strong_ok: bool | None
    domain: str | None = None
    weak_response: str | None = None
    strong_response: str | None = None
    weak_quality: float | None = None
    strong_quality: float | None = None

    @property
    def weak_value(self) -> float | None:
        """The weak answer's quality in [0, 1]: the grade, else 1.0 right / 0.0 wrong."""
        if self.weak_quality is not None:
            return self.weak_quality
        return None if self.weak_ok is None else float(self.weak_ok)

    @property
    def strong_value(self) -> float | None:
        """The strong answer's quality in [0, 1] (see :attr:`weak_value`)."""
        if self.strong_quality is not None:
            return self.strong_quality
        return None if self.strong_ok is None else float(self.strong_ok)


@dataclass(frozen=True, slots=True)
class Dataset:
    """Rows plus the names of the two models they describe.

    Attributes:
        rows: The queries.
        strong: The strong model's name (its column, or its name in a pairwise file).
        weak: The weak model's name.
        source: Where the rows come from (file names, joined by ``+``).
        extra: Notes on the reading (scale, skipped rows), for reports.
        kind: ``correctness``, ``graded`` or ``pairwise`` (:data:`KINDS`).
    """

    rows: tuple[Row, ...]
    strong: str = "strong"
    weak: str = "weak"
    source: str = "<memory>"
    extra: dict[str, str] = field(default_factory=dict)
    kind: str = "correctness"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labelled(self) -> tuple[Row, ...]:
        """Rows where both models' outcome is known (what the metrics need)."""
        return tuple(
            r for r in self.rows if r.weak_value is not None and r.strong_value is not None
        )

    def accuracy(self, which: str) -> float:
        """Mean quality (accuracy for True/False data) of ``"weak"`` or ``"strong"``."""
        rows = self.labelled
        if not rows:
            return 0.0
        if which == "weak":
            return sum(r.weak_value or 0.0 for r in rows) / len(rows)
        return sum(r.strong_value or 0.0 for r in rows) / len(rows)


def _bool(value: str) -> bool | None:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_scale(text: str) -> tuple[float, float]:
    """``"1-10"`` -> ``(1.0, 10.0)`` (``MIN-MAX``, MIN < MAX; negatives as ``-5--1``).

    Raises:
        ValueError: Not two numbers separated by ``-``, or MIN >= MAX.
    """
    head, sep, tail = text.strip()[1:].partition("-")
    low, high = _number(text.strip()[:1] + head) if sep else None, _number(tail)
    if low is None or high is None or low >= high:
        raise ValueError(f"scale must be MIN-MAX with MIN < MAX (e.g. 1-10), got {text!r}")
    return low, high


def infer_scale(values: Iterable[float]) -> tuple[float, float] | None:
    """The first of 0-1, 1-10, 0-10, 0-100 that holds every value (``None``: none does)."""
    found = list(values)
    if not found:
        return None
    low, high = min(found), max(found)
    return next(((a, b) for a, b in _SCALES if a <= low and high <= b), None)


def _read(name: str) -> list[dict[str, str]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(name, encoding="utf-8", newline="") as handle:
            records = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{name}: cannot read: {exc}") from None
    if not records:
        raise DataError(f"{name}: no rows")
    if "prompt" not in records[0]:
        raise DataError(f"{name}: no 'prompt' column (columns: {', '.join(records[0])})")
    return records


def load_csv(
    path: str | Path,
    *,
    strong: str | None = None,
    weak: str | None = None,
    scale: tuple[float, float] | None = None,
) -> Dataset:
    """Read a correctness, graded or pairwise CSV (see the module docstring).

    Args:
        path: The file.
        strong: The strong model's column, or name in a pairwise file (default:
            the model with the higher mean quality).
        weak: The weak model's (default: the other one).
        scale: ``(MIN, MAX)`` of graded scores (default: :func:`infer_scale`).

    Raises:
        DataError: Unreadable file, no ``prompt`` column, not exactly two model
            columns (when ``strong``/``weak`` do not name them), or a cell that
            does not parse (naming its row and column).
    """
    name = str(path)
    records = _read(name)
    columns = list(records[0])
    if all(c in columns for c in _PAIRWISE):
        return _pairwise(name, records, strong, weak)
    has_domain = "domain" in columns
    kinds = {c: _column_kind(records, c) for c in columns if c not in _RESERVED}
    models = [c for c, k in kinds.items() if k is not None and not c.endswith(_RESPONSE)]
    for given in (strong, weak):
        if given is not None and given not in models:
            raise DataError(
                f"{name}: no True/False or numeric column {given!r} (model columns: {models})"
            )
    chosen = [c for c in (strong, weak) if c is not None]
    pool = chosen if len(chosen) == 2 else _pick_pool(name, models, kinds, chosen)
    kind = kinds[pool[0]]
    if any(kinds[c] != kind for c in pool):
        raise DataError(
            f"{name}: columns {pool[0]!r} and {pool[1]!r} differ: one is True/False, "
            "the other numeric"
        )
    bounds: tuple[float, float] | None = None
    if kind == "graded":
        numbers = [_cells(name, records, c, _number, "a number") for c in pool]
        values = dict(zip(pool, numbers, strict=True))
        bounds = scale or infer_scale(x for v in numbers for x in v if x is not None)
        if bounds is None:
            seen = [x for v in numbers for x in v if x is not None]
            raise DataError(
                f"{name}: cannot infer the scale of the graded columns (values "
                f"{min(seen):g} to {max(seen):g}): give --scale MIN-MAX"
            )
        quality = {c: _normalise(name, v, c, bounds) for c, v in values.items()}
    else:
        flags = {c: _cells(name, records, c, _bool, "True or False") for c in pool}
        quality = {c: [None if f is None else float(f) for f in v] for c, v in flags.items()}
    strong, weak = _order(pool, quality, strong, weak)
    graded = kind == "graded"
    rows = []
    for i, r in enumerate(records):
        w, s = quality[weak][i], quality[strong][i]
        rows.append(
            Row(
                r["prompt"],
                None if w is None else w >= (0.5 if graded else 1.0),
                None if s is None else s >= (0.5 if graded else 1.0),
                domain=r["domain"] if has_domain else None,
                weak_response=r.get(weak + _RESPONSE),
                strong_response=r.get(strong + _RESPONSE),
                weak_quality=w if graded else None,
                strong_quality=s if graded else None,
            )
        )
    notes = {}
    if graded and bounds is not None:
        notes["scale"] = f"{bounds[0]:g}-{bounds[1]:g}" + ("" if scale else " (inferred)")
    return Dataset(
        tuple(rows), strong=strong, weak=weak, source=name, extra=notes, kind=kind or "correctness"
    )


def _column_kind(records: Sequence[dict[str, str]], column: str) -> str | None:
    """``correctness`` when most filled cells are True/False, ``graded`` when numbers."""
    cells = [(r.get(column) or "").strip() for r in records]
    filled = [c for c in cells if c]
    if not filled:
        return None
    if sum(_bool(c) is not None for c in filled) * 2 >= len(filled):
        return "correctness"
    if sum(_number(c) is not None for c in filled) * 2 >= len(filled):
        return "graded"
    return None


def _pick_pool(
    name: str, models: list[str], kinds: dict[str, str | None], chosen: list[str]
) -> list[str]:
    for kind in ("correctness", "graded"):
        of_kind = [m for m in models if kinds[m] == kind]
        if chosen and kinds[chosen[0]] != kind:
            continue
        others = [m for m in of_kind if m not in chosen]
        if len(others) == 2 - len(chosen):
            return chosen + others
    raise DataError(
        f"{name}: expected two True/False model columns (or two numeric, graded ones), "
        f"found {models}; name them with --strong-column/--weak-column"
    )


def _cells(
    name: str,
    records: Sequence[dict[str, str]],
    column: str,
    parse: Callable[[str], _T | None],
    what: str,
) -> list[_T | None]:
    out: list[_T | None] = []
    for i, r in enumerate(records, start=1):
        text = (r.get(column) or "").strip()
        value = parse(text) if text else None
        if text and value is None:
            raise DataError(f"{name}: row {i}, column {column!r}: {text!r} is not {what}")
        out.append(value)
    return out


def _normalise(
    name: str, values: Sequence[float | None], column: str, bounds: tuple[float, float]
) -> list[float | None]:
    low, high = bounds
    out: list[float | None] = []
    for i, v in enumerate(values, start=1):
        if v is None:
            out.append(None)
            continue
        x = v
        if not low <= x <= high:
            raise DataError(
                f"{name}: row {i}, column {column!r}: {x:g} is outside the scale {low:g}-{high:g}"
            )
        out.append((x - low) / (high - low))
    return out


def _mean(values: Sequence[float | None]) -> float:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else 0.0


def _order(
    pool: Sequence[str],
    quality: dict[str, list[float | None]],
    strong: str | None,
    weak: str | None,
) -> tuple[str, str]:
    first, second = pool
    if strong is not None:
        return strong, second if first == strong else first
    if weak is not None:
        return (second if first == weak else first), weak
    if _mean(quality[first]) >= _mean(quality[second]):
        return first, second
    return second, first


def _pairwise(
    name: str, records: Sequence[dict[str, str]], strong: str | None, weak: str | None
) -> Dataset:
    """Rows of a pairwise file: the winner's quality 1, the loser's 0, a tie 1 and 1."""
    wins: dict[str, float] = {}
    games: dict[str, int] = {}
    for i, r in enumerate(records, start=1):
        winner = (r.get("winner") or "").strip().lower()
        if winner not in _WINNERS:
            raise DataError(
                f"{name}: row {i}, column 'winner': {r.get('winner')!r} is not one of "
                f"{', '.join(_WINNERS)}"
            )
        for side in ("model_a", "model_b"):
            model = (r.get(side) or "").strip()
            if not model:
                raise DataError(f"{name}: row {i}, column {side!r}: no model named")
            games[model] = games.get(model, 0) + 1
            won = 0.5 if winner == "tie" else float(winner == side)
            wins[model] = wins.get(model, 0.0) + won
    models = sorted(games)
    for given in (strong, weak):
        if given is not None and given not in games:
            raise DataError(f"{name}: no model {given!r} in model_a/model_b (models: {models})")
    if strong is None or weak is None:
        given = strong or weak
        others = [m for m in models if m != given]
        if len(others) != (1 if given else 2):
            raise DataError(
                f"{name}: {len(models)} models in model_a/model_b ({', '.join(models[:8])}"
                f"{'...' if len(models) > 8 else ''}); name the pair to route between with "
                "--strong-column/--weak-column"
            )
        if given is None:
            rate = {m: wins[m] / games[m] for m in others}
            strong, weak = sorted(others, key=lambda m: (-rate[m], m))
        elif strong is None:
            strong = others[0]
        else:
            weak = others[0]
    assert strong is not None
    assert weak is not None
    rows: list[Row] = []
    skipped = 0
    for r in records:
        a, b = (r.get("model_a") or "").strip(), (r.get("model_b") or "").strip()
        if {a, b} != {strong, weak}:
            skipped += 1
            continue
        winner = (r.get("winner") or "").strip().lower()
        by = {"model_a": a, "model_b": b}.get(winner)
        weak_q, strong_q = (1.0, 1.0) if by is None else (float(by == weak), float(by == strong))
        rows.append(
            Row(
                r["prompt"],
                weak_q > 0,
                strong_q > 0,
                domain=r.get("domain") or None,
                weak_quality=weak_q,
                strong_quality=strong_q,
            )
        )
    if not rows:
        raise DataError(f"{name}: no row compares {strong!r} with {weak!r}")
    notes = {"skipped_rows": str(skipped)} if skipped else {}
    return Dataset(tuple(rows), strong=strong, weak=weak, source=name, extra=notes, kind="pairwise")


def concat(datasets: Sequence[Dataset]) -> Dataset:
    """One dataset of the rows of several (``--train`` given more than once).

    The first file's model names are kept; the sources are joined by ``+``.

    Raises:
        ValueError: No dataset.
    """
    if not datasets:
        raise ValueError("no data to concatenate")
    if len(datasets) == 1:
        return datasets[0]
    first = datasets[0]
    kinds = {d.kind for d in datasets}
    return Dataset(
        tuple(r for d in datasets for r in d.rows),
        strong=first.strong,
        weak=first.weak,
        source=" + ".join(d.source for d in datasets),
        extra={k: v for d in datasets for k, v in d.extra.items()},
        kind=first.kind if len(kinds) == 1 else "mixed",
    )


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
    return Dataset(
        tuple(data.rows[i] for i in indices),
        data.strong,
        data.weak,
        data.source,
        dict(data.extra),
        data.kind,
    )


def _cell(ok: bool | None, quality: float | None) -> str:
    if quality is not None:
        return repr(quality)
    return "" if ok is None else str(ok)


def write_csv(data: Dataset, path: str | Path) -> None:
    """Write ``data`` in the layout :func:`load_csv` reads (model names as column names).

    Graded and pairwise rows are written as graded ones, qualities on the 0-1 scale.
    """
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
            line += [
                r.prompt,
                _cell(r.weak_ok, r.weak_quality),
                _cell(r.strong_ok, r.strong_quality),
            ]
            line += [r.weak_response or ""] if has_weak else []
            line += [r.strong_response or ""] if has_strong else []
            writer.writerow(line)
