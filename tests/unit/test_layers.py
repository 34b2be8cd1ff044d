"""The layer order of ARCHITECTURE.md, checked over the import graph of ``src/agentmesh``.

Every ``import`` counts, at module level or inside a function (a function-local
import does not hide a dependency), except those under ``if TYPE_CHECKING:``,
which count for the layer order but not as runtime cycles.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "agentmesh"

# Bottom to top: a layer imports only itself and the layers before it.
LAYERS = (
    "limits",
    "_lazy",
    "_validation",
    "_jsontext",
    "_redact",
    "_yamlfile",
    "_table",
    "_slots",
    "tracing",
    "models",
    "prompts",
    "routing",
    "resilience",
    "synthesis",
    "integrations",
    "evaluation",
    "graph",
    "server",
    "cli",
    "__main__",
)
# Siblings that must not know each other although the order would allow it.
INDEPENDENT = {("routing", "prompts"), ("prompts", "routing")}
# Test doubles ship with the library but nothing in it may depend on them.
SIDE = {"testing": "graph"}  # may import the layers below this one
FACADE = "agentmesh"  # the package __init__: re-exports, imports anything lazily


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def _resolve(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def edges() -> Iterator[Edge]:
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = _type_checking_lines(tree)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                # `from pkg import submodule` depends on the submodule, not the whole package.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                    for a in node.names
                ]
            for target in targets:
                if target.split(".")[0] == "agentmesh":
                    resolved = _resolve(target)
                    if resolved != module:
                        yield Edge(module, resolved, node.lineno, node.lineno in guarded)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else FACADE


EDGES = list(edges())


def test_the_layer_list_covers_every_top_level_module() -> None:
    found = {layer(m) for m in MODULES} - {FACADE}
    assert found == set(LAYERS) | set(SIDE), "add the new layer to LAYERS (and ARCHITECTURE.md)"


def test_imports_point_downward_only() -> None:
    rank = {name: i for i, name in enumerate(LAYERS)}
    wrong = []
    for edge in EDGES:
        source, target = layer(edge.source), layer(edge.target)
        if source in (FACADE, target):
            continue
        if target == FACADE:
            wrong.append(f"{edge}: import the defining module, not the facade")
        elif target in SIDE:
            wrong.append(f"{edge}: the library must not depend on {target}")
        elif source in SIDE:
            if rank[target] >= rank[SIDE[source]]:
                wrong.append(f"{edge}: {source} may import only layers below {SIDE[source]}")
        elif rank[target] > rank[source]:
            wrong.append(f"{edge}: {source} is below {target}")
        elif (source, target) in INDEPENDENT:
            wrong.append(f"{edge}: {source} and {target} are independent")
    assert not wrong, "\n".join(wrong)


def test_there_is_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for edge in EDGES:
        if not edge.type_only:
            graph[edge.source].add(edge.target)
    cycles = _cycles(graph)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (the graph checker's Tarjan)."""
    from agentmesh.graph.loops import strongly_connected

    found = strongly_connected(list(graph), {m: sorted(t) for m, t in graph.items()})
    return [sorted(c) for c in found if len(c) > 1]


def test_the_checker_sees_upward_and_function_local_imports(tmp_path: Path) -> None:
    """The check itself can fail: a cycle hidden in a function is still a cycle."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    local = [e for e in EDGES if e.source == "agentmesh.cli.evaluate"]
    assert any(e.target.startswith("agentmesh.evaluation.") for e in local), (
        "function-local imports are part of the graph"
    )


@pytest.mark.parametrize("layer_name", LAYERS)
def test_architecture_md_lists_the_layer(layer_name: str) -> None:
    text = (SRC.parent / "ARCHITECTURE.md").read_text(encoding="utf-8")
    if not layer_name.startswith("_") and layer_name != "limits":
        assert f"\n{layer_name}" in text.split("## Layers", 1)[1].split("\n## ", 1)[0]
