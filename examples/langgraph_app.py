"""The example graphs as compiled LangGraph graphs, for LangGraph's own server.

``langgraph.json`` (at the repository root) points ``langgraph dev`` at the
graphs below, so the agentmesh workflows run inside LangGraph's dev server
(and LangGraph Studio) like any other LangGraph graph: the server supplies the
checkpointer and the threads; agentmesh routes every model call. The catalog
is ``$AGENTMESH_MODELS`` (default: the simulated pool, ``models/sim.yaml``).
Input: ``{"input": "<text>"}``; answers are in ``results`` and each step's
model, route and cost in ``steps``. Each run on a thread starts afresh (its
own steps, cost and answers), and a failing node reaches the client as
``NodeFailed`` with its type and message.

    langgraph dev --config langgraph.json --no-browser
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from agentmesh.graph import Runtime, compile_graph, load_graph
from agentmesh.models import load_catalog

ROOT = Path(__file__).resolve().parent.parent

# One runtime for the server process: the graphs share its router (and so its
# breakers, statistics and budgets) and its gateway's connection pool.
RUNTIME = Runtime.build(
    load_catalog(os.environ.get("AGENTMESH_MODELS", str(ROOT / "models/sim.yaml"))),
    prompts=ROOT / "prompts",
)


def _compiled(name: str) -> CompiledStateGraph[Any, Any, Any, Any]:
    return compile_graph(load_graph(ROOT / "graphs" / f"{name}.yaml").spec, RUNTIME)


research_report = _compiled("research_report")
code_review = _compiled("code_review")
math_consensus = _compiled("math_consensus")
math_cascade = _compiled("math_cascade")
support_triage = _compiled("support_triage")
