"""Hostile files: bad bytes, deep nesting, alias bombs, huge files -> located errors, exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.graph import GraphError, load_graph
from agentmesh.limits import FileLimits, LimitError, RenderLimits
from agentmesh.models import CatalogError, load_catalog
from agentmesh.prompts import PromptError, PromptLibrary
from agentmesh.routing import PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[2]


def bomb(levels: int = 9) -> str:
    """The "billion laughs" of YAML: 9 levels of 9 aliases each (~4e8 strings)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        before, this = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{this}: &{this} [" + ",".join([f"*{before}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# (what the file holds, bytes, the line the error names, words of the error)
HOSTILE: list[tuple[str, bytes, int | None, str]] = [
    ("invalid UTF-8", b"name: x\n# \xff\n", 2, "not UTF-8 text: byte 0xff at column 3"),
    ("deep nesting", b"name: x\nnodes: " + b"[" * 1000 + b"\n", 2, "nested deeper than 64"),
    ("alias bomb", (bomb() + "name: *j\n").encode(), 6, "aliases expand to more than 100000"),
    ("recursive alias", b"name: &a [*a]\n", 1, "an alias refers to a value that contains it"),
    ("too large", b"# " + b"x" * 1_048_576 + b"\n", None, "larger than 1048576 bytes"),
]
IDS = [case[0] for case in HOSTILE]


def located(message: str, path: Path, line: int | None, words: str) -> None:
    assert (f"{path}:{line}:" if line else f"{path}:") in message
    assert words in message


LOADERS: dict[str, tuple[Callable[[Path], object], type[Exception]]] = {
    "graph": (load_graph, GraphError),
    "catalog": (load_catalog, CatalogError),
    "policy": (load_policy, PolicyError),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize(("case", "content", "line", "words"), HOSTILE, ids=IDS)
def test_every_yaml_loader_refuses_hostile_files_naming_file_and_line(
    tmp_path: Path, loader: str, case: str, content: bytes, line: int | None, words: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    load, error = LOADERS[loader]
    with pytest.raises(error) as caught:
        load(path)
    located(str(caught.value), path, line, words)


@pytest.mark.parametrize(("case", "content", "line", "words"), HOSTILE, ids=IDS)
def test_validate_exits_2_on_hostile_graphs_and_catalogs(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    content: bytes,
    line: int | None,
    words: str,
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    sim = str(ROOT / "models" / "sim.yaml")
    assert main(["validate", str(path), "--models", sim]) == 2
    located(capsys.readouterr().err, path, line, words)
    graph = str(ROOT / "graphs" / "research_report.yaml")
    assert main(["validate", graph, "--models", str(path)]) == 2
    located(capsys.readouterr().err, path, line, words)


@pytest.mark.parametrize(("case", "content", "line", "words"), HOSTILE[:4], ids=IDS[:4])
def test_front_matter_and_template_files_refuse_hostile_yaml(
    tmp_path: Path, case: str, content: bytes, line: int | None, words: str
) -> None:
    (tmp_path / "t.j2").write_bytes(b"---\ndescription: d\n" + content + b"---\nhello\n")
    with pytest.raises(PromptError) as caught:
        PromptLibrary(tmp_path)
    assert str(tmp_path / "t.j2") in str(caught.value)
    assert words in str(caught.value)


def test_limits_are_raised_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "g.yaml"
    nested = "[" * 70 + "]" * 70
    path.write_text(f"name: g\nnodes:\n  a: {{kind: tool, tool: t, input: {nested}}}\n")
    with pytest.raises(GraphError, match="nested deeper than 64"):
        load_graph(path)
    monkeypatch.setenv("AGENTMESH_MAX_YAML_DEPTH", "100")
    with pytest.raises(GraphError) as caught:
        load_graph(path)
    assert "nested deeper" not in str(caught.value)  # now read; the fields are what is wrong
    assert FileLimits.from_env().max_depth == 100


@pytest.mark.parametrize("value", ["x", "0", "-3", "1.5"])
def test_a_bad_limit_variable_is_a_clear_error(value: str) -> None:
    with pytest.raises(LimitError, match="AGENTMESH_MAX_FILE_BYTES"):
        FileLimits.from_env({"AGENTMESH_MAX_FILE_BYTES": value})
    assert RenderLimits.from_env({"AGENTMESH_MAX_RENDER_SECONDS": "0.5"}).max_seconds == 0.5


# Found by the fuzz test (tests/unit/test_fuzz_inputs.py): each was a message naming no
# file, or a RecursionError traceback.
TEMPLATE_BODIES = [
    ("hello {# never closed\n", 4, "syntax error: Missing end of comment tag"),
    ("x\n{{ " + "[" * 400 + "1" + "]" * 400 + " }}\n", 5, "nested too deeply"),
]


@pytest.mark.parametrize(("body", "line", "words"), TEMPLATE_BODIES)
def test_template_syntax_errors_name_file_and_line(
    tmp_path: Path, body: str, line: int, words: str
) -> None:
    (tmp_path / "t.j2").write_text("---\ndescription: d\n---\n" + body)
    with pytest.raises(PromptError) as caught:
        PromptLibrary(tmp_path)
    assert (caught.value.file, caught.value.line) == (str(tmp_path / "t.j2"), line)
    assert words in str(caught.value)


def test_a_render_with_no_message_names_the_file(tmp_path: Path) -> None:
    from agentmesh.models import ModelSpec

    (tmp_path / "t.j2").write_text("---\ndescription: d\n---\n{% user %} {% enduser %}\n")
    model = ModelSpec.model_validate({"id": "m", "provider": "scripted", "model": "m"})
    with pytest.raises(PromptError, match="rendered no messages") as caught:
        PromptLibrary(tmp_path).render("t", model, {})
    assert caught.value.file == str(tmp_path / "t.j2")


def test_json_files_nested_too_deeply_are_located_errors(tmp_path: Path) -> None:
    import asyncio

    from agentmesh.routing import InMemoryRoutingState
    from agentmesh.routing.matrix import MatrixError, RoutingMatrix

    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "schema.json").write_text(deep)
    (tmp_path / "t.j2").write_text("---\ndescription: d\noutput_schema: schema.json\n---\nhi\n")
    with pytest.raises(PromptError, match="not valid JSON") as caught:
        PromptLibrary(tmp_path)
    assert caught.value.file == str(tmp_path / "t.j2")
    matrix = tmp_path / "matrix.json"
    matrix.write_text(deep)
    with pytest.raises(MatrixError, match=f"{matrix}: cannot read routing matrix"):
        asyncio.run(RoutingMatrix.load(matrix, InMemoryRoutingState()))


def test_libyaml_and_the_bounded_pure_python_loader_agree() -> None:
    """The fast path (libyaml) gives the same data and nodes as the bounded loader."""
    import yaml

    from agentmesh import _yamlfile
    from agentmesh.limits import FileLimits

    limits = FileLimits()
    root_dir = Path(__file__).resolve().parents[2]
    files = [*root_dir.glob("graphs/*.yaml"), *root_dir.glob("models/*.yaml")]
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        fast = _yamlfile._fast_parse(text, limits)
        if yaml.__with_libyaml__:
            assert fast is not None, path
        pure = _yamlfile._BoundedLoader(text, limits.max_depth)
        try:
            node = pure.get_single_node()
            data = pure.construct_document(node)
        finally:
            pure.dispose()
        if fast is not None:
            assert fast[0] == data, path
            assert fast[1] is not None
            assert node is not None
            assert fast[1].start_mark.line == node.start_mark.line
    deep = "[" * 200 + "]" * 200
    assert _yamlfile._fast_parse(deep, limits) is None, "deep flow nesting never reaches libyaml"
    with pytest.raises(yaml.YAMLError, match="nested deeper than 64"):
        _yamlfile.parse_yaml(deep, limits)
    block = "".join(f"{'  ' * i}k:\n" for i in range(100)) + "  " * 100 + "v\n"
    with pytest.raises(yaml.YAMLError, match="nested deeper than 64"):  # libyaml's tree, too
        _yamlfile.parse_yaml(block, limits)
