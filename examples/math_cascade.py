"""Math cascade: the cheapest model first; a trained cascade judge escalates doubtful answers.

The cheapest model solves the word problem. A judge node with no model runs the
cascade judge trained on RouteLLM's GSM8K answers (``models/routers/gsm8k-cascade.json``):
it re-computes every calculation of the working, checks that the final answer
is what the working computed and that every quantity of the question is used,
and counts hedging against it. An answer it finds likely wrong is asked again
one tier up, with the judge's notes as feedback; a stronger model is paid for
only then. The output shows each round's verdict.

    python examples/math_cascade.py [--models models/sim.yaml] [--input "..."]
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from _common import ROOT, options, report, run, traced
from agentmesh.graph import load_graph

PROBLEM = "A bakery sells muffins at $3 each or 4 for $10. What is the lowest price for 10 muffins?"


def main(argv: Sequence[str] | None = None) -> int:
    """Solve, judge, escalate if needed; print the answer and every verdict."""
    args = options(__doc__.splitlines()[0], PROBLEM, argv)
    spec = load_graph(ROOT / "graphs/math_cascade.yaml").spec
    with traced(args):
        result = asyncio.run(run(spec, args))
    print(f"answer: {(result.output or '').strip().splitlines()[-1:]}")
    for step in result.steps:
        verdict = step.get("verdict")
        if step["node"] == "check" and verdict:
            said = verdict["feedback"] or "looks right"
            model = verdict["judged_model"] or "-"
            print(f"round {verdict['round']}: {model}: {step['status']}: {said}")
    print()
    report(result)
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
