"""The curated public surface: what each module exports exists and is documented."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

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
    "agentmesh.models.controls",
    "agentmesh.testing",
    "agentmesh.routing",
    "agentmesh.routing.types",
    "agentmesh.routing.state",
    "agentmesh.routing.matrix",
    "agentmesh.routing.policy",
    "agentmesh.routing.constraints",
    "agentmesh.routing.context",
    "agentmesh.routing.filters",
    "agentmesh.routing.classify",
    "agentmesh.routing.features",
    "agentmesh.routing.strategies",
    "agentmesh.routing.router",
    "agentmesh.routing.redis_state",
    "agentmesh.routing.stores",
    "agentmesh.routing.verdict_cache",
    "agentmesh.testing.conformance",
    "agentmesh.resilience",
    "agentmesh.resilience.policy",
    "agentmesh.resilience.retry",
    "agentmesh.resilience.breaker",
    "agentmesh.resilience.call",
    "agentmesh.resilience.caller",
    "agentmesh.resilience.run",
    "agentmesh.resilience.streaming",
    "agentmesh.resilience.consensus",
    "agentmesh.resilience.classifier",
    "agentmesh.resilience.escalation",
    "agentmesh.resilience.cache",
    "agentmesh.resilience.limiter",
    "agentmesh.resilience.hedge",
    "agentmesh.resilience.redaction",
    "agentmesh.resilience.health",
    "agentmesh.resilience.live",
    "agentmesh.resilience.background",
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
    "agentmesh.tracing.controls",
    "agentmesh.tracing._state",
    "agentmesh.cli.trace",
    "agentmesh.cli.run",
    "agentmesh.cli.resume",
    "agentmesh.cli",
    "agentmesh.graph",
    "agentmesh.graph.agent",
    "agentmesh.graph.branches",
    "agentmesh.graph.builder",
    "agentmesh.graph.checkpoints",
    "agentmesh.graph.function",
    "agentmesh.graph.human",
    "agentmesh.graph.loops",
    "agentmesh.graph.pause",
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
    "agentmesh.graph.streaming",
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


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_package_exports_the_names_users_need() -> None:
    import agentmesh

    assert sorted(agentmesh.__all__) == sorted({*agentmesh.EXPORTS, "EXPORTS", "__version__"})
    for name, target in agentmesh.EXPORTS.items():
        module, _, alias = target.partition(":")
        assert getattr(agentmesh, name) is getattr(importlib.import_module(module), alias or name)
        assert (alias or name) in importlib.import_module(module).__all__
    assert agentmesh.configure_tracing is importlib.import_module("agentmesh.tracing").configure
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = agentmesh.nope  # type: ignore[attr-defined]


def _readme_imports() -> list[tuple[str, list[str]]]:
    found = []
    for line in README.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*from (agentmesh[\w.]*) import ([\w, ]+)$", line)
        if match:
            found.append((match[1], [n.strip() for n in match[2].split(",") if n.strip()]))
    return found


def test_every_readme_import_works() -> None:
    imports = _readme_imports()
    assert any(module == "agentmesh" for module, _ in imports), "README shows the package imports"
    for module, names in imports:
        loaded = importlib.import_module(module)
        for name in names:
            assert hasattr(loaded, name), f"README: from {module} import {name}"
            subpackage = importlib.util.find_spec(f"agentmesh.{name}") is not None
            if module == "agentmesh" and not subpackage:
                assert name in loaded.__all__, f"{name} is not in agentmesh.__all__"


def test_importing_the_package_imports_no_framework() -> None:
    import subprocess
    import sys

    frameworks = "('langgraph', 'langchain_core', 'opentelemetry')"
    code = f"import agentmesh, sys; print(sorted(m for m in {frameworks} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", "names load on first use"


def test_the_package_version_is_the_installed_one() -> None:
    import importlib.metadata

    import agentmesh

    assert agentmesh.__version__ == importlib.metadata.version("agentmesh")
