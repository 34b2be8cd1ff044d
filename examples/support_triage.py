"""Support triage: classify a ticket and extract its fields as validated JSON.

One executor answers with structured output (the ``triage`` template's JSON
Schema; grammar-constrained on the embedded model), a rules-only judge checks
the JSON against a schema (no model, no cost) and escalates if it does not hold.
Runs well on the tiny embedded model: ``--models models/local.yaml``.

    python examples/support_triage.py [--models models/local.yaml] [--input "..."]
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from _common import ROOT, options, report, run, traced
from agentmesh.graph import load_graph

TICKET = (
    "Hi, I was charged twice for order A-1042 (Pro plan, annual). "
    "Please refund the duplicate charge."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Triage the ticket; print the fields."""
    args = options(__doc__.splitlines()[0], TICKET, argv)
    spec = load_graph(ROOT / "graphs/support_triage.yaml").spec
    with traced(args):
        result = asyncio.run(run(spec, args))
    if result.output:
        triage = json.loads(result.output)
        fields = triage.get("fields") or {}
        print(f"category: {triage.get('category')}  priority: {triage.get('priority')}")
        print(f"order:    {fields.get('order_id')}  product: {fields.get('product')}")
    print()
    report(result)
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
