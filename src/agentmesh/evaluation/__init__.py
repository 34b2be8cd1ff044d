"""Router evaluation and training on per-query correctness data (RouteLLM's metrics).

- :mod:`~agentmesh.evaluation.metrics`: the routing curve, APGR, CPT, cost per point.
- :mod:`~agentmesh.evaluation.routers`: routers to evaluate by SPEC (``random``,
  ``oracle``, ``length``, ``subject-prior``, ``learned:FILE``, ``cascade:FILE``).
- :mod:`~agentmesh.evaluation.cascade`: validators that score a weak model's answer
  (parsing in :mod:`~agentmesh.evaluation.answers`) and the judge that combines them.
- ``trainer``, ``cascade_fit``, ``feedback``, ``plot``: training of the prompt router
  and of the cascade judge (extra ``eval``), rows from agentmesh traces, plots.
  ``agentmesh eval-router`` / ``train-router`` use them.
"""

from __future__ import annotations

from agentmesh.evaluation.metrics import CurvePoint, apgr, cpt, routing_curve
from agentmesh.evaluation.routers import ROUTERS, RouterSpecError, Scorer, build_router

__all__ = [
    "ROUTERS",
    "CurvePoint",
    "RouterSpecError",
    "Scorer",
    "apgr",
    "build_router",
    "cpt",
    "routing_curve",
]
