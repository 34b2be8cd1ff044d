"""The curated public surface: what each module exports exists and is documented."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "agentmesh.models",
    "agentmesh.models.errors",
    "agentmesh.models.spec",
    "agentmesh.models.types",
    "agentmesh.models.client",
    "agentmesh.models.catalog",
    "agentmesh.models.gateway",
    "agentmesh.models.openai",
    "agentmesh.models.anthropic",
    "agentmesh.models.langchain",
    "agentmesh.models.llamacpp",
    "agentmesh.models.scripted",
    "agentmesh.models.tokens",
    "agentmesh.testing",
    "agentmesh.routing",
    "agentmesh.routing.types",
    "agentmesh.routing.state",
    "agentmesh.routing.matrix",
    "agentmesh.routing.policy",
    "agentmesh.routing.context",
    "agentmesh.routing.filters",
    "agentmesh.routing.classify",
    "agentmesh.routing.features",
    "agentmesh.routing.strategies",
    "agentmesh.routing.router",
    "agentmesh.routing.redis_state",
    "agentmesh.routing.stores",
    "agentmesh.testing.conformance",
    "agentmesh.resilience",
    "agentmesh.resilience.policy",
    "agentmesh.resilience.retry",
    "agentmesh.resilience.breaker",
    "agentmesh.resilience.caller",
    "agentmesh.resilience.escalation",
    "agentmesh.testing.fault_server",
    "agentmesh.prompts",
    "agentmesh.synthesis",
    "agentmesh.synthesis.base",
    "agentmesh.synthesis.extract",
    "agentmesh.synthesis.judge",
    "agentmesh.synthesis.pack",
    "agentmesh.synthesis.prompts",
    "agentmesh.synthesis.registry",
    "agentmesh.synthesis.run",
    "agentmesh.synthesis.sequential",
    "agentmesh.synthesis.spec",
    "agentmesh.synthesis.tree",
    "agentmesh.synthesis.vote",
    "agentmesh.tracing",
    "agentmesh.tracing.attributes",
    "agentmesh.tracing.spans",
    "agentmesh.tracing.chat",
    "agentmesh.tracing.decision",
    "agentmesh.tracing.content",
    "agentmesh.tracing.metrics",
    "agentmesh.tracing.config",
    "agentmesh.tracing.jsonl",
    "agentmesh.tracing.reader",
    "agentmesh.tracing.tree",
    "agentmesh.tracing.view",
    "agentmesh.tracing.summary",
    "agentmesh.tracing._state",
    "agentmesh.cli.trace",
    "agentmesh.cli.run",
    "agentmesh.cli",
    "agentmesh.graph",
    "agentmesh.graph.builder",
    "agentmesh.graph.checkpoints",
    "agentmesh.graph.checks",
    "agentmesh.graph.compile",
    "agentmesh.graph.judge",
    "agentmesh.graph.kinds",
    "agentmesh.graph.loader",
    "agentmesh.graph.merge",
    "agentmesh.graph.nodes",
    "agentmesh.graph.run",
    "agentmesh.graph.runtime",
    "agentmesh.graph.spec",
    "agentmesh.graph.state",
    "agentmesh.graph.validators",
    "agentmesh.integrations",
    "agentmesh.integrations.langchain_chat",
    "agentmesh.integrations.sync_loop",
    "agentmesh.evaluation",
    "agentmesh.evaluation.metrics",
    "agentmesh.evaluation.routers",
    "agentmesh.evaluation.cascade",
    "agentmesh.cli.evaluate",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_defined_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} needs a module docstring"
    exported = module.__all__
    assert sorted(set(exported)) == sorted(exported), "no duplicates"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"


def test_models_package_reexports_every_public_name_of_its_core_modules() -> None:
    package = importlib.import_module("agentmesh.models")
    for name in ["agentmesh.models.errors", "agentmesh.models.catalog", "agentmesh.models.types"]:
        module = importlib.import_module(name)
        missing = [s for s in module.__all__ if s not in package.__all__ and not s.startswith("_")]
        assert missing in ([], ["redact"], ["last_user_text", "message_text"]), missing


def test_importing_agentmesh_does_not_import_llama_cpp() -> None:
    import subprocess
    import sys

    code = "import agentmesh.models, sys; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
