"""Load ``graphs/*.yaml`` into :class:`GraphSpec`, with errors naming file, line and field."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentmesh._validation import describe_error
from agentmesh._yamlfile import YamlFileError, describe_yaml_error, parse_yaml, read_text
from agentmesh.graph.checks import GraphError, Place
from agentmesh.graph.function import import_object
from agentmesh.graph.runtime import Tool, as_tool
from agentmesh.graph.spec import NODE_KINDS, FunctionNode, GraphNode, GraphSpec, JudgeNode
from agentmesh.graph.validators import VALIDATORS

__all__ = ["LoadedGraph", "graph_schema", "load_graph"]


class LoadedGraph:
    """A graph read from a file, with the line of every field (for later checks' errors).

    Attributes:
        spec: The validated graph.
        path: The file it came from.
        subgraphs: The files its ``kind: graph`` nodes load, by node.
    """

    def __init__(
        self,
        spec: GraphSpec,
        path: Path,
        root: yaml.Node | None,
        subgraphs: dict[str, LoadedGraph] | None = None,
    ) -> None:
        self.spec = spec
        self.path = path
        self._root = root
        self.subgraphs = subgraphs or {}

    def line(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of the YAML value at ``loc`` (the deepest part that exists)."""
        return _line(self._root, loc)

    def tools(self) -> dict[str, Tool]:
        """Import the graph's ``tools:`` (``file.py:attr`` relative to the graph file).

        Its subgraphs' tools are imported too (a name both define is this graph's).

        Raises:
            GraphError: A module, file or attribute cannot be loaded; names the tool.
        """
        problems: list[str] = []
        tools: dict[str, Tool] = {}
        for inner in self.subgraphs.values():
            tools.update(inner.tools())
        for name, target in self.spec.tools.items():
            try:
                tools[name] = as_tool(import_object(target, self.path.parent), name)
            except Exception as exc:  # a user's module: any failure to load is reported
                line = self.line(("tools", name))
                problems.append(
                    f"{self.path}:{line}: tools.{name}: cannot load {target!r}: "
                    f"{type(exc).__name__}: {exc}"
                )
        if problems:
            raise GraphError(self.spec.name, problems)
        return tools

    def locate(self, place: Place) -> str:
        """``path:line: `` of a node's definition, or of a path such as ``("edges", 2)``.

        The file alone for graph-level problems (``""``).
        """
        if isinstance(place, tuple):
            line = self.line(place)
        else:
            line = self.line(("nodes", place)) if place else None
        return f"{self.path}:{line}: " if line else f"{self.path}: "


def _line(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    current = root
    line = current.start_mark.line + 1 if current is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(current, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(current.value)
        ):
            child = current.value[part]
            line = child.start_mark.line + 1
        if child is None:
            continue  # a discriminator or model name in pydantic's loc: skip it
        current = child
    return line


def _without_tag(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop the union tag pydantic adds after a node name (``nodes.t.tool.x`` -> ``nodes.t.x``)."""
    if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in NODE_KINDS:
        return (*loc[:2], *loc[3:])
    return loc


def _duplicates(root: yaml.Node | None, path: Path) -> list[str]:
    """Keys given twice at the top level or under ``nodes`` (YAML keeps the last silently)."""
    problems: list[str] = []

    def scan(mapping: yaml.Node, where: str) -> None:
        if not isinstance(mapping, yaml.MappingNode):
            return
        seen: dict[str, int] = {}
        for key, value in mapping.value:
            line = key.start_mark.line + 1
            if key.value in seen:
                problems.append(
                    f"{path}:{line}: {where}{key.value}: defined twice (first at line "
                    f"{seen[key.value]})"
                )
            seen.setdefault(key.value, line)
            if where == "" and key.value == "nodes":
                scan(value, "nodes.")

    if root is not None:
        scan(root, "")
    return problems


def _describe(error: Any, where: Callable[[Sequence[str | int]], str]) -> str:
    loc = _without_tag(tuple(error["loc"]))
    return where(loc) + describe_error(error, loc)


def _name(data: dict[str, Any], path: Path) -> str:
    """The graph's name for an error: its ``name:`` if that is a short string, else the file's."""
    name = data.get("name")
    return name if isinstance(name, str) and 0 < len(name) <= 200 else path.stem


def load_graph(path: str | Path, *, _within: tuple[Path, ...] = ()) -> LoadedGraph:
    """Read and validate a YAML graph file (and the files its ``kind: graph`` nodes name).

    Raises:
        GraphError: Unreadable file, invalid YAML, a file past the
            :class:`~agentmesh.limits.FileLimits`, or fields that do not
            validate; each problem names ``file:line`` and the field. A
            subgraph file's problems name that file; one that includes
            itself (directly or not) is an error at the node naming it.
    """
    path = Path(path)
    try:
        data, root = parse_yaml(read_text(path, "graph"))
    except YamlFileError as exc:
        raise GraphError(str(path), [str(exc)]) from None
    except yaml.YAMLError as exc:
        raise GraphError(str(path), [describe_yaml_error(exc, path)]) from None
    if not isinstance(data, dict):
        raise GraphError(str(path), [f"{path}: a graph is a mapping (name:, nodes:, edges:)"])
    twice = _duplicates(root, path)
    if twice:
        raise GraphError(_name(data, path), twice)
    data.setdefault("name", path.stem)
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as exc:

        def at(loc: Sequence[str | int]) -> str:
            line = _line(root, loc)
            return f"{path}:{line}: " if line else f"{path}: "

        raise GraphError(_name(data, path), [_describe(e, at) for e in exc.errors()]) from None
    spec = _files_beside(spec, path.parent)
    inner: dict[str, LoadedGraph] = {}
    spec = _subgraphs(spec, path, root, (*_within, path.resolve()), inner)
    return LoadedGraph(spec, path, root, inner)


def _subgraphs(
    spec: GraphSpec,
    path: Path,
    root: yaml.Node | None,
    within: tuple[Path, ...],
    loaded: dict[str, LoadedGraph],
) -> GraphSpec:
    """``spec`` with each ``kind: graph`` node's file loaded (relative to ``path``).

    The loaded files are kept in ``loaded``, by node.
    """
    nodes = dict(spec.nodes)
    for name, node in spec.nodes.items():
        if not isinstance(node, GraphNode) or not isinstance(node.graph, str):
            continue
        file = (path.parent / node.graph).resolve()
        if file in within:
            chain = " -> ".join(p.name for p in (*within, file))
            line = _line(root, ("nodes", name, "graph"))
            raise GraphError(
                spec.name, [f"{path}:{line}: node {name!r}: graph: includes itself ({chain})"]
            )
        child = loaded[name] = load_graph(file, _within=within)
        nodes[name] = node.model_copy(update={"graph": child.spec})
    return spec.model_copy(update={"nodes": nodes}) if nodes != spec.nodes else spec


def _files_beside(spec: GraphSpec, base: Path) -> GraphSpec:
    """The graph with the relative files its validators read made relative to ``base``."""
    nodes = dict(spec.nodes)
    for name, node in spec.nodes.items():
        if isinstance(node, FunctionNode) and isinstance(node.function, str):
            where, colon, attribute = node.function.rpartition(":")
            if colon and where.endswith(".py"):
                target = f"{_beside(where, base)}:{attribute}"
                nodes[name] = node.model_copy(update={"function": target})
        if isinstance(node, JudgeNode):
            entries = tuple(_file_beside(entry, base) for entry in node.validators)
            if entries != node.validators:
                nodes[name] = node.model_copy(update={"validators": entries})
    return spec.model_copy(update={"nodes": nodes}) if nodes != spec.nodes else spec


def _file_beside(entry: dict[str, Any] | str, base: Path) -> dict[str, Any] | str:
    if not isinstance(entry, dict) or len(entry) != 1:
        return entry
    ((name, param),) = entry.items()
    if not getattr(VALIDATORS.get(name), "reads_file", False):
        return entry
    if isinstance(param, str):
        return {name: _beside(param, base)}
    if isinstance(param, dict) and isinstance(param.get("file"), str):
        return {name: {**param, "file": _beside(param["file"], base)}}
    return entry


def _beside(file: str, base: Path) -> str:
    """``file`` relative to ``base`` (an absolute or empty one as it is)."""
    return file if not file or Path(file).is_absolute() else str(base / file)


def _or_string(prop: dict[str, Any], string: dict[str, Any]) -> dict[str, Any]:
    """``prop`` or its YAML shorthand, a string."""
    extra: dict[str, Any] = {
        k: prop.pop(k) for k in ("default", "description", "title") if k in prop
    }
    return {"anyOf": [string, prop], **extra}


def graph_schema() -> dict[str, Any]:
    """The JSON Schema of the graph format (``agentmesh schema``), for editors.

    It is the spec's own schema, plus the shorthands YAML accepts: an edge as
    ``"a -> b"``, ``entry: a``, a merge's ``from: a`` and ``synthesis: refine``;
    ``name`` may be left out (the file name is used). A graph inside a
    ``kind: graph`` node refers back to the same definition.
    """
    schema: dict[str, Any] = json.loads(json.dumps(GraphSpec.model_json_schema(by_alias=True)))
    if "$ref" in schema:  # recursive (graph nodes hold graphs): the top is a reference
        defs = schema["$defs"]
        graph = defs[schema["$ref"].rsplit("/", 1)[-1]]
        _shorthands(graph, defs)
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            **graph,
            "title": "agentmesh graph",
            "$defs": defs,
        }
    _shorthands(schema, schema["$defs"])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentmesh graph"
    return schema


def _shorthands(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """Add YAML's shorthands to the graph's schema (in place)."""
    props = schema["properties"]
    props["edges"]["items"] = {
        "anyOf": [
            {"type": "string", "pattern": r"^\s*\S+\s*->\s*\S+\s*$"},
            {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        ]
    }
    props["entry"] = _or_string(props["entry"], {"type": "string"})
    schema["required"] = [r for r in schema.get("required", []) if r != "name"]
    merge = defs["MergeNode"]["properties"]
    merge["from"] = _or_string(merge["from"], {"type": "string"})
    merge["synthesis"] = _or_string(merge["synthesis"], {"type": "string"})
