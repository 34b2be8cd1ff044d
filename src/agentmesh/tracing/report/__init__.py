"""``agentmesh trace report``: one self-contained HTML page of runs from trace files.

:func:`build_report` reads span records into runs and figures
(:mod:`~agentmesh.tracing.report.data`) and renders them
(:mod:`~agentmesh.tracing.report.render`); ``report.css`` and ``report.js`` are
package data inlined into the page, which fetches nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentmesh.tracing.reader import SpanRecord
from agentmesh.tracing.report.data import (
    AttemptView,
    DecisionView,
    NodeView,
    RunView,
    VerdictView,
    comparison,
    figures,
    run_views,
)
from agentmesh.tracing.report.render import Side, render_report

__all__ = [
    "AttemptView",
    "DecisionView",
    "NodeView",
    "RunView",
    "Side",
    "VerdictView",
    "build_report",
    "comparison",
    "figures",
    "render_report",
    "run_views",
    "side",
]


def side(label: str, records: Sequence[SpanRecord]) -> Side:
    """One set of runs: ``records`` (from one or more files) under ``label``."""
    runs = run_views(records, label)
    return Side(label, runs, figures(records, runs))


def build_report(
    sources: Sequence[tuple[str, Sequence[SpanRecord]]], *, compare: bool = False
) -> str:
    """The report's HTML for ``(label, records)`` sources; ``compare`` puts two side by side.

    Without ``compare`` every source's records are pooled into one set of runs.
    """
    if compare:
        if len(sources) != 2:
            raise ValueError(f"a comparison needs two sources, got {len(sources)}")
        return render_report([side(label, records) for label, records in sources], compare=True)
    label = ", ".join(label for label, _ in sources)
    pooled = [r for _, records in sources for r in records]
    return render_report([side(label, pooled)])
