"""agentmesh: workflows whose every model call is routed, made resilient and traced.

The names most programs need are importable from here::

    from agentmesh import Runtime, Workflow, Policy, load_catalog

They are loaded on first use (PEP 562), so ``import agentmesh`` (and the
CLI's start-up) does not pay for LangGraph, LangChain or OpenTelemetry until
a name that needs them is touched. :data:`__all__` lists every public name;
``EXPORTS`` says which module defines each.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from agentmesh._lazy import lazy_exports

__version__ = "0.1.0"

EXPORTS = MappingProxyType(
    {
        # workflows
        "Workflow": "agentmesh.graph",
        "GraphSpec": "agentmesh.graph",
        "load_graph": "agentmesh.graph",
        "check_graph": "agentmesh.graph",
        "compile_graph": "agentmesh.graph",
        "Runtime": "agentmesh.graph",
        "GraphRunner": "agentmesh.graph",
        "run_graph": "agentmesh.graph",
        "RunResult": "agentmesh.graph",
        "as_tool": "agentmesh.graph",
        "GraphError": "agentmesh.graph",
        "NodeFailed": "agentmesh.graph",
        # models: the gateway
        "load_catalog": "agentmesh.models",
        "Catalog": "agentmesh.models",
        "ModelSpec": "agentmesh.models",
        "Gateway": "agentmesh.models",
        "ModelRequest": "agentmesh.models",
        "ModelResponse": "agentmesh.models",
        "CatalogError": "agentmesh.models",
        "ModelError": "agentmesh.models",
        # routing
        "Router": "agentmesh.routing",
        "Policy": "agentmesh.routing",
        "BudgetLimits": "agentmesh.routing",
        "RouteRequest": "agentmesh.routing",
        "RouteDecision": "agentmesh.routing",
        "open_state": "agentmesh.routing",
        "NoRoute": "agentmesh.routing",
        "BudgetExceeded": "agentmesh.routing",
        "PolicyError": "agentmesh.routing",
        # resilience: the one call path
        "ResilientCaller": "agentmesh.resilience",
        "Call": "agentmesh.resilience",
        "CallResult": "agentmesh.resilience",
        "CallFailed": "agentmesh.resilience",
        "ResiliencePolicy": "agentmesh.resilience",
        "Verdict": "agentmesh.resilience",
        "call_until": "agentmesh.resilience",
        "LLMClassifier": "agentmesh.resilience",
        # prompts, synthesis, integrations, tracing
        "PromptLibrary": "agentmesh.prompts",
        "PromptError": "agentmesh.prompts",
        "MergeSpec": "agentmesh.synthesis",
        "SynthesisError": "agentmesh.synthesis",
        "RoutedChatModel": "agentmesh.integrations",
        "NodeUsageHandler": "agentmesh.integrations",
        "configure_tracing": "agentmesh.tracing:configure",
    }
)
"""Public name -> the module that defines it (``module:attribute`` for an alias)."""

__all__ = [
    "BudgetExceeded",
    "BudgetLimits",
    "Call",
    "CallFailed",
    "CallResult",
    "Catalog",
    "CatalogError",
    "EXPORTS",
    "Gateway",
    "GraphError",
    "GraphRunner",
    "GraphSpec",
    "LLMClassifier",
    "MergeSpec",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelSpec",
    "NoRoute",
    "NodeFailed",
    "NodeUsageHandler",
    "Policy",
    "PolicyError",
    "PromptError",
    "PromptLibrary",
    "ResiliencePolicy",
    "ResilientCaller",
    "RouteDecision",
    "RouteRequest",
    "RoutedChatModel",
    "Router",
    "RunResult",
    "Runtime",
    "SynthesisError",
    "Verdict",
    "Workflow",
    "__version__",
    "as_tool",
    "call_until",
    "check_graph",
    "compile_graph",
    "configure_tracing",
    "load_catalog",
    "load_graph",
    "open_state",
    "run_graph",
]

if TYPE_CHECKING:
    from agentmesh.graph import (
        GraphError,
        GraphRunner,
        GraphSpec,
        NodeFailed,
        RunResult,
        Runtime,
        Workflow,
        as_tool,
        check_graph,
        compile_graph,
        load_graph,
        run_graph,
    )
    from agentmesh.integrations import NodeUsageHandler, RoutedChatModel
    from agentmesh.models import (
        Catalog,
        CatalogError,
        Gateway,
        ModelError,
        ModelRequest,
        ModelResponse,
        ModelSpec,
        load_catalog,
    )
    from agentmesh.prompts import PromptError, PromptLibrary
    from agentmesh.resilience import (
        Call,
        CallFailed,
        CallResult,
        LLMClassifier,
        ResiliencePolicy,
        ResilientCaller,
        Verdict,
        call_until,
    )
    from agentmesh.routing import (
        BudgetExceeded,
        BudgetLimits,
        NoRoute,
        Policy,
        PolicyError,
        RouteDecision,
        Router,
        RouteRequest,
        open_state,
    )
    from agentmesh.synthesis import MergeSpec, SynthesisError
    from agentmesh.tracing import configure as configure_tracing


if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
