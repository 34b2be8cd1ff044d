"""Text tables drawn by ``rich``: columns sized to the content, cells wrapped to fit.

Every table the command line prints goes through here. On a terminal a table
fits its width (cells of the ``wrap`` columns wrap inside their column);
piped or redirected output keeps whole lines (``$COLUMNS``, when set, still
bounds the width), without trailing spaces. Cell text is printed as is:
``[simulated]`` is text, never ``rich`` markup.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import TextIO

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

__all__ = ["print_table", "table_text"]

_UNBOUNDED = 100_000
"""Width of piped output without ``$COLUMNS``: wide enough that no line wraps."""


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    wrap: Collection[str],
    right: Collection[str],
) -> Table:
    body = [tuple(row) for row in rows]
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), show_edge=False)
    for index, name in enumerate(header):
        justify: JustifyMethod = "right" if name in right else "left"
        if name in wrap:
            table.add_column(Text(name), overflow="fold", justify=justify)
        else:
            whole = max([len(name), *(len(row[index]) for row in body)])
            table.add_column(Text(name), no_wrap=True, min_width=whole, justify=justify)
    for row in body:
        table.add_row(*(Text(cell) for cell in row))
    return table


def table_text(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    wrap: Collection[str] = (),
    right: Collection[str] = (),
    width: int | None = None,
) -> str:
    """The table as plain text, one row per line, no trailing spaces.

    Args:
        header: Column names.
        rows: One string per column each.
        wrap: Columns whose cells may wrap (at spaces, else anywhere) to fit
            ``width``; the others always show whole.
        right: Columns aligned right (numbers).
        width: Most characters per line; ``None`` for whole lines.
    """
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width or _UNBOUNDED,
        highlight=False,
        markup=False,
        emoji=False,
        color_system=None,
    )
    console.print(_table(header, rows, wrap, right))
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def print_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    wrap: Collection[str] = (),
    right: Collection[str] = (),
    file: TextIO | None = None,
) -> None:
    """Print the table (see :func:`table_text`) to ``file`` (default stdout).

    A terminal gets a table that fits its width, headers in bold; other
    output gets whole lines, or lines of ``$COLUMNS`` characters when it is set.
    """
    out = file if file is not None else sys.stdout
    if out.isatty():
        console = Console(file=out, highlight=False, markup=False, emoji=False)
        table = _table(header, rows, wrap, right)
        table.header_style = "bold"
        console.print(table)
        return
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else None
    out.write(table_text(header, rows, wrap=wrap, right=right, width=width))
