"""Research report: plan, research the steps in parallel, judge each, refine into a report.

A planner splits the question into steps (structured output), one executor per
step runs concurrently (LangGraph ``Send``), a judge checks each result against
a rubric (rules first, then an LLM judge) and sends a rejected one back one tier
up with its feedback, and a merge node refines the results into one report.
The graph is ``graphs/research_report.yaml``; no node names a model.

    python examples/research_report.py [--models models/sim.yaml] [--input "..."] [--trace t.jsonl]
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from _common import ROOT, options, report, run, traced
from agentmesh.graph import load_graph

QUESTION = "Should our 12-person company move its file storage from a local server to the cloud?"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the research-report workflow; print the report and every step."""
    args = options(__doc__.splitlines()[0], QUESTION, argv)
    spec = load_graph(ROOT / "graphs/research_report.yaml").spec
    with traced(args):
        result = asyncio.run(run(spec, args))
    print(result.output or "")
    print()
    report(result)
    escalated = [
        s
        for s in result.steps
        if s["node"] == "research" and s["escalation_level"] and s["status"] == "ok"
    ]
    if escalated:
        print(f"{len(escalated)} research steps were redone by a stronger tier after the judge")
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
