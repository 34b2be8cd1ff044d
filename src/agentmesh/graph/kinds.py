"""The one registry from node kind to its implementation."""

from __future__ import annotations

from collections.abc import Mapping

from agentmesh.graph.agent import ExecutorRunner
from agentmesh.graph.judge import JudgeRunner
from agentmesh.graph.merge import MergeRunner
from agentmesh.graph.nodes import NodeRunner, PlannerRunner, ToolRunner

__all__ = ["NODE_RUNNERS"]

NODE_RUNNERS: Mapping[str, type[NodeRunner]] = {
    r.kind: r for r in (PlannerRunner, ExecutorRunner, ToolRunner, JudgeRunner, MergeRunner)
}
"""The implementation of each node kind."""
