"""Tables on stdout, drawn by ``rich``: columns sized to the content, cells wrapped to fit.

On a terminal the table fits its width (long cells wrap inside their column);
piped or redirected output keeps whole lines (``$COLUMNS``, when set, still
bounds the width), without trailing spaces. Cell text is printed as is:
``[simulated]`` is text, never ``rich`` markup.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["print_table"]

_UNBOUNDED = 100_000
"""Width of piped output without ``$COLUMNS``: wide enough that no line wraps."""


def print_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    wrap: Collection[str] = (),
    file: TextIO | None = None,
) -> None:
    """Print ``rows`` under ``header`` (one column per header cell), two spaces apart.

    Args:
        header: Column names.
        rows: One string per column each.
        wrap: Columns whose cells may wrap (at spaces, else anywhere) to fit a
            narrow terminal; the others always show whole.
        file: Where to print (default: stdout).
    """
    out = file if file is not None else sys.stdout
    body = [tuple(row) for row in rows]
    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        show_edge=False,
        header_style="bold",
    )
    for index, name in enumerate(header):
        if name in wrap:
            table.add_column(Text(name), overflow="fold")
        else:
            whole = max([len(name), *(len(row[index]) for row in body)])
            table.add_column(Text(name), no_wrap=True, min_width=whole)
    for row in body:
        table.add_row(*(Text(cell) for cell in row))
    terminal = out.isatty()
    width = None if terminal or "COLUMNS" in os.environ else _UNBOUNDED
    console = Console(file=out, width=width, highlight=False, markup=False, emoji=False)
    if terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    out.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
