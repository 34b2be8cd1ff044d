"""Math consensus: three differently routed solvers, then a quality-weighted vote.

Three executors answer the same word problem concurrently, each routed by its
own policy (the cheapest model; the best for math up to tier 2; the best for
math overall). The merge node extracts each final number and votes, weighting each vote by
the routing matrix's quality estimate of its model for math; a tie goes to the
strongest model. The result keeps the votes and the agreement.

    python examples/math_consensus.py [--models models/sim.yaml] [--input "..."]
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from _common import ROOT, options, report, run, traced
from agentmesh.graph import load_graph

PROBLEM = "A bakery sells muffins at $3 each or 4 for $10. What is the lowest price for 10 muffins?"


def main(argv: Sequence[str] | None = None) -> int:
    """Solve the problem three ways and vote; print the answer and the votes."""
    args = options(__doc__.splitlines()[0], PROBLEM, argv)
    spec = load_graph(ROOT / "graphs/math_consensus.yaml").spec
    with traced(args):
        result = asyncio.run(run(spec, args))
    print(f"answer: {result.output}")
    vote = next((s for s in result.steps if s["node"] == "vote"), None)
    if vote is not None and vote.get("synthesis"):
        synthesis = vote["synthesis"]
        print(f"voted: {synthesis.get('answer')}")
        print(f"votes: {synthesis.get('votes')}  agreement: {synthesis.get('agreement')}")
    print()
    report(result)
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
