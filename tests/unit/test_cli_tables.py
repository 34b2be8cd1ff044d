"""CLI tables (``rich``): whole lines when piped, cells wrapped to a narrow width, text as is."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.cli._table import print_table

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")
PROMPTS = str(ROOT / "prompts")


@pytest.mark.parametrize(
    "argv",
    [["models", "list", "--models", SIM], ["prompts", "list", "--dir", PROMPTS]],
    ids=["models", "prompts"],
)
def test_a_table_fits_the_width_columns_asks_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(argv) == 0
    wide = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in wide) > 100, "piped: whole lines, as wide as they are"
    monkeypatch.setenv("COLUMNS", "100")
    assert main(argv) == 0
    narrow = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in narrow) <= 100
    assert len(narrow) > len(wide), "long cells wrapped onto more lines"
    assert narrow[0].split()[0] == wide[0].split()[0]


def test_cells_are_text_never_markup_and_lines_have_no_trailing_spaces() -> None:
    out = io.StringIO()
    print_table(("NAME", "NOTE"), [("[bold]a[/bold]", "x"), ("b", "[simulated] :smile:")], file=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["NAME", "NOTE"]
    assert lines[1].split() == ["[bold]a[/bold]", "x"]
    assert lines[2].split() == ["b", "[simulated]", ":smile:"]
    assert all(line == line.rstrip() for line in lines)
    assert lines[1].index("x") == lines[0].index("NOTE"), "columns aligned"
