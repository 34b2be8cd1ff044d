"""A run's output: the answer of its output node (or of the ending a branch took)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentmesh.graph.spec import GraphSpec

__all__ = ["output_result"]


def output_result(graph: GraphSpec, values: Mapping[str, Any]) -> tuple[str, Any] | None:
    """``(text, data)`` of the run's answer in state ``values`` (``None``: there is none).

    Several branches of the output node are joined (their data is the first's);
    without a declared ``output``, a graph whose branches end at different
    nodes answers with the last ending that ran.
    """
    results = values.get("results", {})
    found = results.get(graph.output_node)
    if not found and graph.output is None:
        endings = set(graph.output_nodes)
        ran = [s["node"] for s in values.get("steps", ()) if s["node"] in endings]
        found = results.get(ran[-1]) if ran else None
    if not found:
        return None
    ordered = [found[k] for k in sorted(found)]
    return "\n\n".join(r["text"] for r in ordered), ordered[0].get("data")
