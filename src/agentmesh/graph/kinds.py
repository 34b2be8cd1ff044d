"""The one registry from node kind to its implementation."""

from __future__ import annotations

from collections.abc import Mapping

from agentmesh.graph.agent import ExecutorRunner
from agentmesh.graph.function import FunctionRunner
from agentmesh.graph.human import HumanRunner
from agentmesh.graph.judge import JudgeRunner
from agentmesh.graph.merge import MergeRunner
from agentmesh.graph.nodes import NodeRunner, PlannerRunner, ToolRunner
from agentmesh.graph.subgraph import SubgraphRunner

__all__ = ["NODE_RUNNERS"]

NODE_RUNNERS: Mapping[str, type[NodeRunner]] = {
    r.kind: r
    for r in (
        PlannerRunner,
        ExecutorRunner,
        ToolRunner,
        JudgeRunner,
        MergeRunner,
        HumanRunner,
        FunctionRunner,
        SubgraphRunner,
    )
}
"""The implementation of each node kind."""
