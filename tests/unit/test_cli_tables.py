"""CLI tables (``rich``): whole lines when piped, cells wrapped to a narrow width, text as is."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agentmesh._table import print_table
from agentmesh.cli import main

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


def test_the_trace_summary_tables_align_numbers_right_and_wrap_to_a_width() -> None:
    from agentmesh.tracing.summary import render_summary

    routing = {f"model-{i}": {"decisions": 1, "share": 0.25} for i in range(4)}
    node = {
        "decisions": 4,
        "calls": 12,
        "errors": 0,
        "fallback_rate": 0.0,
        "escalation_rate": None,
        "input_tokens": 10,
        "output_tokens": 2000,
        "cost_usd": 0.5,
        "routing": routing,
    }
    model = {
        "decisions": 1,
        "calls": 3,
        "errors": 1,
        "fallbacks": 1,
        "input_tokens": 5,
        "output_tokens": 7,
        "cost_usd": 0.25,
        "latency_ms": {"p50": 10.0, "p95": None},
        "error_types": {"rate_limited": 1},
    }
    summary = {
        "traces": 1,
        "runs": 1,
        "spans": 9,
        "totals": {**node, "no_route": 0},
        "nodes": {"research": node},
        "models": {"model-0": model},
    }
    lines = render_summary(summary).splitlines()
    header = next(line for line in lines if line.startswith("NODE"))
    row = next(line for line in lines if line.startswith("research"))
    assert row.index("0.500000") + len("0.500000") == header.index("COST USD") + len("COST USD")
    assert "model-3 1 (25.0%)" in row, "whole lines by default"
    narrow = render_summary(summary, width=110).splitlines()
    assert max(len(line) for line in narrow[1:]) <= 110
    assert len(narrow) > len(lines), "ROUTED TO wrapped onto more lines"
    assert all(line == line.rstrip() for line in narrow)
