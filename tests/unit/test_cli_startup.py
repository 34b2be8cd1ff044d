"""Start-up of the ``agentmesh`` command: what each command imports (not how fast it is).

``benchmarks/startup.py`` measures the time; these tests guard its cause: the
parser is built from modules that import only the standard library, and each
handler imports what its command needs. Each case runs in a fresh interpreter
so modules other tests imported do not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh.cli import _names, version

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")

# What no command may import just to parse its arguments (or print help or the version).
NOT_FOR_PARSING = (
    "langgraph",
    "langchain_core",
    "langsmith",
    "opentelemetry",
    "pydantic",
    "yaml",
    "httpx",
    "jinja2",
    "rich",
    "numpy",
    "asyncio",
)
# What listing a catalog does not need (it reads YAML into pydantic models, nothing more).
NOT_FOR_LISTING = ("langgraph", "langchain_core", "langsmith", "opentelemetry", "httpx", "jinja2")

_PROBE = """
import contextlib, io, json, sys
from agentmesh.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _imported(*argv: str) -> tuple[int, str, set[str]]:
    """Run ``agentmesh ARGV`` in a fresh interpreter: exit code, output, top-level modules."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("AGENTMESH_MODELS", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return result["code"], result["out"], {m.partition(".")[0] for m in result["modules"]}


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("--version",),
        ("run", "--help"),
        ("models", "call", "--help"),
        ("route", "--help"),
        ("eval-router", "--help"),
    ],
)
def test_parsing_imports_no_heavy_dependency(argv: tuple[str, ...]) -> None:
    code, out, modules = _imported(*argv)
    assert code == 0
    assert out.startswith(("usage: agentmesh", "agentmesh "))
    assert sorted(modules.intersection(NOT_FOR_PARSING)) == []


def test_models_list_imports_neither_langchain_nor_langgraph_nor_opentelemetry() -> None:
    code, out, modules = _imported("models", "list", "--models", SIM)
    assert code == 0
    assert "sim-nano" in out
    assert sorted(modules.intersection(NOT_FOR_LISTING)) == []


def test_version_is_the_installed_distribution() -> None:
    from importlib.metadata import version as installed

    code, out, _ = _imported("--version")
    assert code == 0
    assert out == f"agentmesh {installed('agentmesh')}\n"
    assert version() == installed("agentmesh")


def test_parser_choices_match_their_registries() -> None:
    from agentmesh.evaluation import ROUTERS
    from agentmesh.models import Capability
    from agentmesh.routing import STRATEGIES

    assert tuple(sorted(STRATEGIES)) == _names.STRATEGIES
    assert tuple(c.value for c in Capability) == _names.CAPABILITIES
    assert tuple(ROUTERS) == _names.ROUTERS


def test_a_light_module_of_the_models_package_loads_without_the_adapters() -> None:
    probe = (
        "import sys; import agentmesh.models.catalog; import agentmesh.models as m; "
        "before = 'agentmesh.models.langchain' in sys.modules; m.Gateway; "
        "print(before, 'agentmesh.models.langchain' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == ["False", "True"]


def test_every_lazy_export_of_the_models_package_is_its_module_s_object() -> None:
    import importlib

    import agentmesh.models as models

    assert sorted(models.EXPORTS) == sorted(models.__all__) == dir(models)
    for name, module in models.EXPORTS.items():
        assert getattr(models, name) is getattr(importlib.import_module(module), name)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = models.Nope
