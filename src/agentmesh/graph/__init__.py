"""Workflows: planner, executor, tool, judge, merge, human and function nodes compiled to LangGraph.

Write a graph in YAML (:func:`load_graph`) or Python (:class:`Workflow`); both
give a :class:`GraphSpec`, checked before anything runs (:func:`check_graph`)
and compiled to a real LangGraph graph (:func:`compile_graph`) whose nodes
route every model call through the shared :class:`Runtime`. :func:`run_graph`
runs one, traced and checkpointed, and returns a :class:`RunResult`.
"""

from agentmesh.graph.branches import BranchSpec
from agentmesh.graph.builder import Workflow
from agentmesh.graph.checkpoints import CHECKPOINTERS, CheckpointError, open_checkpointer
from agentmesh.graph.checks import GraphError, check_graph
from agentmesh.graph.compile import compile_graph
from agentmesh.graph.kinds import NODE_RUNNERS
from agentmesh.graph.loader import LoadedGraph, graph_schema, load_graph
from agentmesh.graph.nodes import NodeFailed
from agentmesh.graph.pause import Answer, approve, reject, value
from agentmesh.graph.run import GraphRunner, RunError, RunResult, run_graph
from agentmesh.graph.runtime import Runtime, Tool, ToolArgumentsError, as_tool
from agentmesh.graph.spec import (
    END_NODE,
    ExecutorNode,
    FunctionNode,
    GraphSpec,
    HumanNode,
    JudgeNode,
    MergeNode,
    PlannerNode,
    ToolNode,
)
from agentmesh.graph.validators import VALIDATORS, RuleValidator, build_validator

__all__ = [
    "CHECKPOINTERS",
    "END_NODE",
    "NODE_RUNNERS",
    "VALIDATORS",
    "Answer",
    "BranchSpec",
    "CheckpointError",
    "ExecutorNode",
    "FunctionNode",
    "GraphError",
    "GraphRunner",
    "GraphSpec",
    "HumanNode",
    "JudgeNode",
    "LoadedGraph",
    "MergeNode",
    "NodeFailed",
    "PlannerNode",
    "RuleValidator",
    "RunError",
    "RunResult",
    "Runtime",
    "Tool",
    "ToolArgumentsError",
    "ToolNode",
    "Workflow",
    "as_tool",
    "build_validator",
    "check_graph",
    "compile_graph",
    "graph_schema",
    "load_graph",
    "approve",
    "open_checkpointer",
    "reject",
    "run_graph",
    "value",
]
