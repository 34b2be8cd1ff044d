"""The YAML graph format: loading, the JSON Schema, compile-time checks, validators, CLI."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agentmesh.cli import main
from agentmesh.graph import (
    VALIDATORS,
    GraphError,
    Runtime,
    Workflow,
    as_tool,
    build_validator,
    check_graph,
    load_graph,
)
from agentmesh.models import Catalog, load_catalog
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience import Verdict
from agentmesh.routing import Policy
from agentmesh.synthesis import SYNTHESIZERS
from agentmesh.testing import scripted_catalog, scripted_model

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = sorted((ROOT / "graphs").glob("*.yaml"))
SIM = ROOT / "models" / "sim.yaml"
PROMPTS = ROOT / "prompts"

SHOUT_PY = '''\
def shout(text: str) -> str:
    """Shout the text."""
    return text.upper() + "!"
'''


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Catalog:
    return load_catalog(SIM)


@pytest.fixture(scope="module")
def prompts() -> PromptLibrary:
    return PromptLibrary(PROMPTS)


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, so relative paths (graphs/, models/, prompts/) work."""
    monkeypatch.chdir(ROOT)
    return ROOT


def write(tmp_path: Path, text: str, name: str = "g.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, exact: str) -> int:
    """1-based number of the one line of ``path`` that is ``exact`` (trailing space ignored)."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.rstrip() == exact]
    assert len(found) == 1, f"{exact!r} is on lines {found} of {path}"
    return found[0]


def load_problems(path: Path) -> list[str]:
    with pytest.raises(GraphError) as caught:
        load_graph(path)
    return caught.value.problems


def check_problems(
    path: Path,
    catalog: Catalog,
    prompts: PromptLibrary,
    tools: dict[str, Any] | None = None,
    validators: dict[str, Any] | None = None,
) -> list[str]:
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        check_graph(loaded.spec, catalog, prompts, tools or {}, validators, locate=loaded.locate)
    return caught.value.problems


def the_problem(problems: list[str], fragment: str) -> str:
    found = [p for p in problems if fragment in p]
    assert len(found) == 1, f"{fragment!r} in {problems}"
    return found[0]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def shout_tool() -> Any:
    def shout(text: str) -> str:
        """Shout the text."""
        return text.upper()

    return as_tool(shout, "shout")


# -- 1. the example graphs -------------------------------------------------------------------


def test_there_are_example_graphs() -> None:
    assert len(GRAPHS) >= 4, f"graphs/*.yaml found: {GRAPHS}"


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
def test_example_graph_loads_and_passes_every_check(
    path: Path, sim: Catalog, prompts: PromptLibrary
) -> None:
    loaded = load_graph(path)
    assert loaded.path == path
    assert loaded.spec.name == path.stem
    assert loaded.spec.nodes
    for node in loaded.spec.nodes:
        assert loaded.locate(node) == f"{path}:{line_of(path, f'  {node}:')}: "
    check_graph(loaded.spec, sim, prompts, loaded.tools(), locate=loaded.locate)


# -- 2. the JSON Schema ----------------------------------------------------------------------


@pytest.fixture
def schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, _ = cli(capsys, "schema")
    assert code == 0
    printed: dict[str, Any] = json.loads(out)
    return printed


CANONICAL = {
    "name": "canonical",
    "policy": {"strategy": "cheapest"},
    "nodes": {
        "a": {
            "kind": "executor",
            "prompt": "execute_step",
            "inputs": {"question": "$input", "step": "look"},
        },
        "m": {"kind": "merge", "from": ["a"], "synthesis": {"strategy": "refine"}},
    },
    "edges": [["a", "m"]],
}


def test_schema_command_prints_a_draft_2020_12_json_schema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"name", "nodes", "edges", "tools", "policy"} <= set(schema["properties"])
    assert set(schema["required"]) >= {"nodes"}


def test_schema_accepts_a_graph_and_rejects_an_unknown_kind_or_field(
    schema: dict[str, Any],
) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(CANONICAL)) == []
    wizard = json.loads(json.dumps(CANONICAL))
    wizard["nodes"]["a"]["kind"] = "wizard"
    assert not validator.is_valid(wizard)
    extra = json.loads(json.dumps(CANONICAL))
    extra["nodes"]["a"]["colour"] = "blue"
    assert not validator.is_valid(extra)
    no_nodes = {"name": "g", "nodes": {}}
    assert not validator.is_valid(no_nodes)


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: p.stem)
def test_example_graph_validates_against_the_schema(path: Path, schema: dict[str, Any]) -> None:
    document = yaml.safe_load(path.read_text())
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft202012Validator(schema).iter_errors(document)
    ]
    assert errors == []


# -- 3. loader errors name file, line and field ----------------------------------------------

LOADER_CASES = [
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: wizard
            prompt: plan
        """,
        "  a:",
        ["nodes.a", "'wizard'", "planner", "executor", "tool", "judge", "merge"],
        id="unknown-kind",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            inputs: {question: $input}
        """,
        "  a:",
        ["nodes.a.", ".prompt: required field is missing"],
        id="executor-without-prompt",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            colour: blue
        """,
        "    colour: blue",
        ["nodes.a.", ".colour: unknown field", "'blue'"],
        id="unknown-field",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: $no such}
        """,
        "    inputs: {question: $input, step: $no such}",
        ["nodes.a.", ".inputs.step: ", "'$no such' is not a reference", "$input, $step"],
        id="bad-reference",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
        edges: [a -> a, a to b]
        """,
        "edges: [a -> a, a to b]",
        ["edges.1: ", "edge 'a to b'", "'source -> target'"],
        id="edge-without-arrow",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: plan: oops
        edges: []
        """,
        "    prompt: plan: oops",
        ["not valid YAML", "mapping values are not allowed"],
        id="invalid-yaml",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
          m:
            kind: merge
            from: [a]
            synthesis:
              strategy: telepathy
        edges: [a -> m]
        """,
        "      strategy: telepathy",
        [
            "nodes.m.",
            "synthesis.strategy: unknown synthesis strategy 'telepathy'; known: ",
            *SYNTHESIZERS,
        ],
        id="unknown-synthesis-strategy",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
          j:
            kind: judge
            target: a
            prompt: null
        edges: [a -> j]
        """,
        "  j:",
        ["nodes.j", "a judge needs a prompt, validators, or both"],
        id="judge-judging-nothing",
    ),
    # Known location bugs: see the reasons.
    pytest.param(
        """
        name: g
        nodes:
          t:
            kind: tool
            tool: shout
            colour: red
        """,
        "    colour: red",
        ["nodes.t", "colour: unknown field"],
        id="tool-node-unknown-field",
    ),
    pytest.param(
        """
        name: g
        nodes:
          t:
            kind: tool
            tool: shout
            arguments: {text: $no such}
        """,
        "    arguments: {text: $no such}",
        ["nodes.t", "arguments", "'$no such' is not a reference"],
        id="tool-node-bad-reference",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs:
              question: $input
              step: $no such
        """,
        "      step: $no such",
        ["inputs.step", "'$no such' is not a reference"],
        id="bad-reference-block-style",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
        edges:
          - a -> a
          - a to b
        """,
        "  - a to b",
        ["edges.1", "edge 'a to b'"],
        id="edge-without-arrow-block-style",
    ),
]


@pytest.mark.parametrize(("text", "line", "fragments"), LOADER_CASES)
def test_loader_error_names_file_line_and_field(
    tmp_path: Path, text: str, line: str, fragments: list[str]
) -> None:
    path = write(tmp_path, text)
    problems = load_problems(path)
    assert len(problems) == 1, problems
    [problem] = problems
    assert problem.startswith(f"{path}:{line_of(path, line)}: "), problem
    for fragment in fragments:
        assert fragment in problem


def test_loader_reports_every_field_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            colour: blue
          b:
            kind: wizard
        """,
    )
    problems = load_problems(path)
    assert any(
        p.startswith(f"{path}:3: ") and "prompt: required field is missing" in p for p in problems
    )
    assert any(p.startswith(f"{path}:5: ") and "colour" in p for p in problems)
    assert any(p.startswith(f"{path}:6: ") and "'wizard'" in p for p in problems)


def test_loader_names_the_file_of_an_unreadable_or_non_mapping_graph(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    [problem] = load_problems(missing)
    assert problem.startswith(f"{missing}: cannot read graph")
    listed = write(tmp_path, "- a\n- b\n", "list.yaml")
    [problem] = load_problems(listed)
    assert problem == f"{listed}: a graph is a mapping (name:, nodes:, edges:)"


def test_graph_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        nodes:
          a: {kind: executor, prompt: solve_math, inputs: {problem: $input}}
        """,
        "my_flow.yaml",
    )
    assert load_graph(path).spec.name == "my_flow"


def test_duplicate_node_names_are_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: x}
          a:
            kind: executor
            prompt: solve_math
            inputs: {problem: $input}
        """,
    )
    [problem] = load_problems(path)
    assert problem.startswith(f"{path}:7: ")  # the second definition of 'a'
    assert "nodes.a: defined twice" in problem


# -- 4. compile-time checks ------------------------------------------------------------------

STEP = "    inputs: {question: $input, step: look}"

CHECK_CASES = [
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: nosuch
        """,
        "a",
        ["prompt: unknown template 'nosuch'", "execute_step"],
        id="unknown-template",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look, colour: red}
        """,
        "a",
        ["inputs.colour: template 'execute_step' has no such input"],
        id="undeclared-input",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input}
        """,
        "a",
        ["inputs: template 'execute_step' needs 'step'"],
        id="missing-required-input",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          b:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: $step}
        edges: [a -> b]
        """,
        "b",
        ["inputs.step: $step exists only in a planner's fan_out node"],
        id="step-outside-fan-out",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: $b}
          b:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
        edges: [a -> b]
        """,
        "a",
        ["inputs.step: $b has not run when 'a' runs"],
        id="reference-to-later-node",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: $ghost.field}
        """,
        "a",
        ["inputs.step: $ghost.field names no node"],
        id="reference-to-unknown-node",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          b:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
        """,
        "b",
        ["unreachable from the entry (a)"],
        id="unreachable",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          b:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
        edges: [a -> b, b -> a]
        """,
        "a",
        ["cycle a -> b -> a is unbounded", "max_visits", "max_steps"],
        id="cycle",
    ),
    pytest.param(
        """
        name: g
        nodes:
          p:
            kind: planner
            inputs: {question: $input}
            fan_out: q
          q:
            kind: planner
            inputs: {question: $input}
        """,
        "p",
        ["fan_out: 'q' must be an executor node"],
        id="fan-out-to-non-executor",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          j:
            kind: judge
            target: a
            prompt: null
            validators: [{min_words: 3}]
          b:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
        edges: [a -> j, a -> b]
        """,
        "j",
        ["the judged node 'a' must lead only to its judge", "a -> j, b"],
        id="judged-node-with-another-edge",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
            tools: [nosuch]
        """,
        "a",
        ["tools: no tool 'nosuch' (registered: none)"],
        id="executor-unknown-tool",
    ),
    pytest.param(
        """
        name: g
        nodes:
          t:
            kind: tool
            tool: nosuch
        """,
        "t",
        ["tool: no tool 'nosuch' (registered: none)"],
        id="tool-node-unknown-tool",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          j:
            kind: judge
            target: a
            prompt: null
            validators: [{nosuch: 1}]
        edges: [a -> j]
        """,
        "j",
        ["validators: unknown validator 'nosuch'; known: ", *VALIDATORS],
        id="unknown-validator",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          j:
            kind: judge
            target: a
            prompt: null
            validators: [{min_words: -1}]
        edges: [a -> j]
        """,
        "j",
        ["validators: min_words: a positive integer, got -1"],
        id="bad-validator-parameter",
    ),
    pytest.param(
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          j:
            kind: judge
            target: a
            prompt: nosuch_judge
            rubric: Be right.
        edges: [a -> j]
        """,
        "j",
        ["prompt: no template 'nosuch_judge'"],
        id="unknown-judge-template",
    ),
]


@pytest.mark.parametrize(("text", "node", "fragments"), CHECK_CASES)
def test_check_error_names_the_node_and_its_line(
    tmp_path: Path,
    sim: Catalog,
    prompts: PromptLibrary,
    text: str,
    node: str,
    fragments: list[str],
) -> None:
    path = write(tmp_path, text)
    problems = check_problems(path, sim, prompts)
    problem = the_problem(problems, fragments[0])
    assert problem.startswith(f"{path}:{line_of(path, f'  {node}:')}: node {node!r}: "), problem
    for fragment in fragments[1:]:
        assert fragment in problem


def test_no_model_can_serve_the_node_lists_every_model_and_why(
    tmp_path: Path, sim: Catalog, prompts: PromptLibrary
) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
            policy: {min_tier: 9}
        """,
    )
    [problem] = check_problems(path, sim, prompts)
    assert problem.startswith(f"{path}:3: node 'a': no model in {SIM} can serve it: ")
    assert len(sim.specs) >= 2
    for spec in sim.specs:
        assert f"{spec.id}: tier {spec.tier} < min_tier 9" in problem


def test_tools_need_a_model_with_the_tools_capability(
    tmp_path: Path, prompts: PromptLibrary
) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
            tools: [shout]
        """,
    )
    json_only = scripted_catalog(
        scripted_model("plain", fields={"capabilities": ["json"]}),
        scripted_model("other", tier=2, fields={"capabilities": ["json", "streaming"]}),
    )
    [problem] = check_problems(path, json_only, prompts, tools={"shout": shout_tool()})
    assert problem.startswith(f"{path}:3: node 'a': no model in <testing> can serve it: ")
    assert "plain: lacks tools" in problem
    assert "other: lacks tools" in problem
    # The same graph passes once a model can call tools.
    loaded = load_graph(path)
    check_graph(loaded.spec, scripted_catalog(), prompts, {"shout": shout_tool()})


def test_an_edge_to_or_from_a_missing_node_points_at_its_edges_line(
    tmp_path: Path, sim: Catalog, prompts: PromptLibrary
) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
        edges:
          - a -> END
          - a -> ghost
          - phantom -> a
        """,
    )
    problems = check_problems(path, sim, prompts)
    the_problem(problems, f"{path}:9: edge a -> ghost: unknown node 'ghost' (nodes: a, END)")
    the_problem(problems, f"{path}:10: edge phantom -> a: unknown node 'phantom' (nodes: a)")


def test_every_problem_of_a_graph_is_reported(
    tmp_path: Path, sim: Catalog, prompts: PromptLibrary
) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: nosuch
          b:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: $step}
          c:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
            tools: [ghost]
        edges: [a -> c, a -> nowhere]
        """,
    )
    problems = check_problems(path, sim, prompts)
    assert len(problems) >= 4, problems
    the_problem(problems, f"{path}:3: node 'a': prompt: unknown template 'nosuch'")
    the_problem(problems, f"{path}:15: edge a -> nowhere: unknown node 'nowhere'")
    the_problem(problems, f"{path}:6: node 'b': unreachable")
    the_problem(problems, f"{path}:6: node 'b': inputs.step: $step exists only")
    the_problem(problems, f"{path}:10: node 'c': tools: no tool 'ghost'")


def test_python_workflow_gets_the_same_checks_without_location(
    sim: Catalog, prompts: PromptLibrary
) -> None:
    wf = Workflow("py", policy=Policy(strategy="cheapest"))
    wf.executor("a", prompt="execute_step", inputs={"question": "$input", "step": "$b.notes"})
    wf.executor("b", prompt="execute_step", inputs={"question": "$input", "step": "$step"})
    wf.edge("a", "b")
    with pytest.raises(GraphError) as caught:
        check_graph(wf.spec(), sim, prompts)
    assert caught.value.problems == [
        "node 'a': inputs.step: $b.notes has not run when 'a' runs",
        "node 'b': inputs.step: $step exists only in a planner's fan_out node",
    ]
    assert "graph 'py' is invalid (2 problems)" in str(caught.value)


def test_a_fan_out_target_may_use_step_and_its_ancestors(
    sim: Catalog, prompts: PromptLibrary
) -> None:
    wf = Workflow("fan")
    wf.planner("plan", inputs={"question": "$input"}, fan_out="work")
    wf.executor("work", prompt="execute_step", inputs={"question": "$plan", "step": "$step"})
    wf.merge("done", sources=["work"], synthesis="refine", question="$plan.steps")
    wf.edge("work", "done")
    check_graph(wf.spec(), sim, prompts)


# -- 5. rule validators ----------------------------------------------------------------------

JSON_SCHEMA = {
    "type": "object",
    "required": ["a"],
    "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}},
}


@pytest.mark.parametrize(
    ("entry", "good", "bad", "feedback"),
    [
        pytest.param({"min_words": 3}, "one two three", "one two", ["2 words", "at least 3"]),
        pytest.param({"max_words": 2}, "one two", "one two three", ["3 words", "at most 2"]),
        pytest.param({"regex": r"\d{3}"}, "code 404", "no digits", ["must match", r"\\d{3}"]),
        pytest.param({"not_regex": "(?i)lgtm"}, "A real review.", "Looks fine, LGTM!", ["'LGTM'"]),
        pytest.param(
            {"contains": ["SQL", "fix", "tests"]},
            "sql injection: fix it, add TESTS",
            "the SQL needs a fix",
            ["must mention: tests"],
        ),
        pytest.param(
            {"json_schema": JSON_SCHEMA}, '{"a": {"b": 1}}', '{"a": {"b": "x"}}', ["a/b", "'x'"]
        ),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_rule_validator_passes_and_fails_with_feedback(
    entry: dict[str, Any], good: str, bad: str, feedback: list[str]
) -> None:
    validator = build_validator(entry)
    assert validator.name == next(iter(entry))
    passed = validator(good)
    assert passed.passed
    assert passed.feedback == ""
    failed = validator(bad)
    assert not failed.passed
    assert failed.score is not None
    assert 0 <= failed.score < 1
    for fragment in feedback:
        assert fragment in failed.feedback, failed.feedback


def test_contains_lists_only_the_missing_phrases() -> None:
    verdict = build_validator({"contains": ["alpha", "Beta", "gamma"]})("ALPHA only")
    assert verdict.feedback == "must mention: Beta, gamma"
    assert verdict.score == pytest.approx(1 / 3)


def test_json_schema_feedback_for_non_json_and_top_level_errors() -> None:
    validator = build_validator({"json_schema": JSON_SCHEMA})
    assert validator("not json at all").feedback.startswith("not JSON")
    assert validator("{}").feedback == "JSON at the top level: 'a' is a required property"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"min_words": -1}, "min_words: a positive integer, got -1"),
        ({"min_words": "3"}, "min_words: a positive integer"),
        ({"max_words": 0}, "max_words: a positive integer, got 0"),
        ({"regex": "("}, "regex: invalid regex '('"),
        ({"not_regex": "[a"}, "not_regex: invalid regex"),
        ({"contains": []}, "contains: a phrase or a list of phrases"),
        ({"json_schema": {"type": "wizard"}}, "json_schema: invalid schema"),
        ({"json_schema": "object"}, "json_schema: a JSON Schema mapping"),
        ({"nosuch": 1}, "unknown validator 'nosuch'; known: min_words"),
        ("min_words", "min_words: needs a parameter"),
        ({"min_words": 1, "max_words": 2}, "a validator is {name: parameter}"),
    ],
    ids=str,
)
def test_bad_validator_is_a_value_error_naming_it(entry: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_validator(entry)


def test_min_words_rejects_a_boolean() -> None:
    with pytest.raises(ValueError, match="min_words"):
        build_validator({"min_words": True})


def test_custom_check_by_name_returning_bool_or_verdict() -> None:
    def cites(text: str) -> bool:
        return "[1]" in text

    def cites_verdict(text: str) -> Verdict:
        if "[1]" in text:
            return Verdict(True, 1.0)
        return Verdict(False, 0.2, "cite a source like [1]")

    by_bool = build_validator("cites", {"cites": cites})
    assert by_bool("see [1]").passed
    failed = by_bool("no source")
    assert (failed.passed, failed.score, failed.feedback) == (False, 0.0, "cites failed")
    by_verdict = build_validator({"cites": None}, {"cites": cites_verdict})
    assert by_verdict("see [1]").passed
    assert by_verdict("nope") == Verdict(False, 0.2, "cite a source like [1]")
    # Listed as known once registered.
    with pytest.raises(ValueError, match=r"known: .*cites"):
        build_validator({"nosuch": 1}, {"cites": cites})


@pytest.mark.parametrize("returns", ["bool", "verdict"])
async def test_custom_check_rejects_and_escalates_in_a_run(
    prompts: PromptLibrary, returns: str
) -> None:
    def check(text: str) -> Verdict | bool:
        ok = "[1]" in text
        return ok if returns == "bool" else Verdict(ok, None, "" if ok else "cite [1]")

    catalog = scripted_catalog(
        scripted_model("low", tier=1, reply="plain answer"),
        scripted_model("high", tier=2, reply="answer with a source [1]"),
    )
    wf = Workflow("cited", policy=Policy(strategy="cheapest"))
    wf.executor("a", prompt="execute_step", inputs={"question": "$input", "step": "look"})
    wf.judge("j", target="a", prompt=None, validators=[{"cites": None}], max_rounds=3)
    wf.edge("a", "j")
    async with Runtime.open(catalog, prompts=prompts, validators={"cites": check}) as runtime:
        result = await wf.run(runtime, "Where is it from?")
    assert result.status == "ok"
    assert result.output == "answer with a source [1]"
    judged = [(s["node"], s["model"], s["status"]) for s in result.steps]
    assert judged == [
        ("a", "low", "ok"),
        ("j", None, "rejected"),
        ("a", "high", "ok"),
        ("j", None, "passed"),
    ]
    feedback = result.steps[1]["verdict"]["feedback"]
    assert feedback == ("cites failed" if returns == "bool" else "cite [1]")


def test_unregistered_custom_check_fails_the_graph_check(
    sim: Catalog, prompts: PromptLibrary
) -> None:
    wf = Workflow("cited")
    wf.executor("a", prompt="execute_step", inputs={"question": "$input", "step": "look"})
    wf.judge("j", target="a", prompt=None, validators=[{"cites": None}])
    wf.edge("a", "j")
    with pytest.raises(GraphError) as caught:
        check_graph(wf.spec(), sim, prompts)
    assert caught.value.problems == [
        "node 'j': validators: unknown validator 'cites'; known: "
        "min_words, max_words, regex, not_regex, contains, json_schema, cascade"
    ]
    check_graph(wf.spec(), sim, prompts, validators={"cites": lambda text: True})


def test_custom_check_listed_by_bare_name(tmp_path: Path, prompts: PromptLibrary) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          j:
            kind: judge
            target: a
            prompt: null
            validators: [cites]
        edges: [a -> j]
        """,
    )
    loaded = load_graph(path)
    check_graph(loaded.spec, scripted_catalog(), prompts, validators={"cites": lambda t: True})


# -- 6. the command line ---------------------------------------------------------------------


def test_validate_ok(capsys: pytest.CaptureFixture[str], in_root: Path) -> None:
    code, out, err = cli(
        capsys, "validate", "graphs/code_review.yaml", "--models", "models/sim.yaml"
    )
    assert code == 0, err
    assert out.startswith("graphs/code_review.yaml: ok")
    assert "checked against models/sim.yaml" in out


def test_validate_broken_graph_exits_2_naming_node_and_line(
    capsys: pytest.CaptureFixture[str], in_root: Path, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        name: broken
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: look}
          b:
            kind: executor
            prompt: nosuch
        edges: [a -> b]
        """,
    )
    code, out, err = cli(capsys, "validate", str(path), "--models", "models/sim.yaml")
    assert code == 2
    assert out == ""
    assert f"{path}:7: node 'b': prompt: unknown template 'nosuch'" in err


def test_validate_load_error_exits_2_without_models(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "name: g\nnodes:\n  a:\n    kind: wizard\n")
    code, out, err = cli(capsys, "validate", str(path))
    assert code == 2
    assert out == ""
    assert f"{path}:3: nodes.a" in err


def test_validate_outside_the_project_uses_the_shipped_prompts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no prompts/ here
    monkeypatch.delenv("AGENTMESH_PROMPTS", raising=False)
    graph = str(ROOT / "graphs" / "support_triage.yaml")
    code, out, err = cli(capsys, "validate", graph, "--models", str(SIM))
    assert code == 0, err
    assert out.startswith(f"{graph}: ok")
    code, _, err = cli(capsys, "validate", graph, "--models", str(SIM), "--prompts", "prompts")
    assert code == 2
    assert "prompts folder 'prompts' does not exist or is not a folder" in err
    assert "(set it with --prompts DIR)" in err


def test_graph_prints_mermaid_with_every_node(
    capsys: pytest.CaptureFixture[str], in_root: Path
) -> None:
    code, out, _ = cli(capsys, "graph", "graphs/research_report.yaml")
    assert code == 0
    assert "graph TD;" in out
    for node in ("plan", "research", "check", "report"):
        assert re.search(rf"^\s*{node}\({node}\)", out, re.MULTILINE), node
    assert "research --> check" in out


def test_run_json_prints_the_whole_result(
    capsys: pytest.CaptureFixture[str], in_root: Path
) -> None:
    code, out, err = cli(
        capsys,
        "run",
        "graphs/support_triage.yaml",
        "--models",
        "models/sim.yaml",
        "--input",
        "I was charged twice for order A-1042 (Pro plan).",
        "--json",
        "--quiet",
    )
    assert code == 0, err
    assert err == ""
    result = json.loads(out)
    assert {"run_id", "status", "output", "error", "cost_usd", "tokens", "steps"} <= set(result)
    assert isinstance(result["run_id"], str)
    assert result["run_id"]
    assert result["status"] == "ok"
    assert result["error"] is None
    assert json.loads(result["output"])["fields"]["order_id"] == "A-1042"
    assert set(result["tokens"]) == {"input", "output"}
    steps = result["steps"]
    assert [(s["node"], s["kind"]) for s in steps] == [
        ("triage", "executor"),
        ("validate", "judge"),
    ]
    for step in steps:
        assert {
            "node",
            "kind",
            "model",
            "status",
            "escalation_level",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "route",
            "attempts",
        } <= set(step)
    triage = steps[0]
    assert triage["model"] == "sim-nano"
    assert triage["status"] == "ok"
    assert triage["escalation_level"] == 0
    assert triage["route"]["strategy"] == "cheapest"
    assert triage["route"]["reason"]
    [attempt] = triage["attempts"]
    assert {"model", "outcome", "error_type", "latency_ms"} <= set(attempt)
    assert (attempt["model"], attempt["outcome"], attempt["error_type"]) == ("sim-nano", "ok", None)
    assert attempt["latency_ms"] >= 0
    assert result["tokens"] == {
        "input": sum(s["input_tokens"] for s in steps),
        "output": sum(s["output_tokens"] for s in steps),
    }
    assert result["tokens"]["input"] > 0
    assert result["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in steps))
    assert result["cost_usd"] > 0
    # The rules-only judge calls no model.
    gate = steps[1]
    assert (gate["model"], gate["status"], gate["route"], gate["attempts"]) == (
        None,
        "passed",
        None,
        [],
    )


def test_run_with_an_unknown_catalog_exits_2(
    capsys: pytest.CaptureFixture[str], in_root: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-catalog.yaml"
    code, out, err = cli(
        capsys,
        "run",
        "graphs/support_triage.yaml",
        "--models",
        str(missing),
        "--input",
        "hi",
        "--json",
    )
    assert code == 2
    assert out == ""
    assert str(missing) in err


def test_run_of_an_invalid_graph_exits_2_before_any_call(
    capsys: pytest.CaptureFixture[str], in_root: Path, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input}
        """,
    )
    code, out, err = cli(
        capsys, "run", str(path), "--models", "models/sim.yaml", "--input", "x", "--json"
    )
    assert code == 2
    assert out == ""
    assert f"{path}:3: node 'a': inputs: template 'execute_step' needs 'step'" in err


# -- 7. the tools: section -------------------------------------------------------------------

TOOL_GRAPH = """
name: shouting
tools:
  shout: {target}
nodes:
  s:
    kind: tool
    tool: shout
    arguments: {{text: $input}}
"""


def tool_graph(tmp_path: Path, target: str) -> Path:
    return write(tmp_path, TOOL_GRAPH.format(target=target))


def test_tools_section_loads_a_function_from_a_file_next_to_the_graph(tmp_path: Path) -> None:
    (tmp_path / "tools_file.py").write_text(SHOUT_PY)
    loaded = load_graph(tool_graph(tmp_path, "tools_file.py:shout"))
    assert loaded.spec.tools == {"shout": "tools_file.py:shout"}
    tools = loaded.tools()
    assert set(tools) == {"shout"}
    assert tools["shout"].name == "shout"
    assert tools["shout"].spec().parameters["required"] == ["text"]
    assert tools["shout"].tool.invoke({"text": "hey"}) == "HEY!"


def test_run_a_graph_with_a_file_tool(
    capsys: pytest.CaptureFixture[str], in_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "tools_file.py").write_text(SHOUT_PY)
    path = tool_graph(tmp_path, "tools_file.py:shout")
    code, out, err = cli(
        capsys,
        "run",
        str(path),
        "--models",
        "models/sim.yaml",
        "--input",
        "hello",
        "--json",
        "--quiet",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "ok"
    assert result["output"] == "HELLO!"
    assert result["cost_usd"] == 0
    [step] = result["steps"]
    assert (step["node"], step["kind"], step["model"]) == ("s", "tool", None)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("missing.py:shout", "No such file"),
        ("tools_file.py:whisper", "has no attribute 'whisper'"),
        ("agentmesh_no_such_module:shout", "No module named"),
    ],
)
def test_a_tool_that_cannot_be_loaded_names_the_tool_and_line(
    tmp_path: Path, target: str, reason: str
) -> None:
    (tmp_path / "tools_file.py").write_text(SHOUT_PY)
    path = tool_graph(tmp_path, target)
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        loaded.tools()
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:3: tools.shout: cannot load {target!r}: ")
    assert reason in problem


def test_validate_reports_an_unloadable_tool(
    capsys: pytest.CaptureFixture[str], in_root: Path, tmp_path: Path
) -> None:
    path = tool_graph(tmp_path, "missing.py:shout")
    code, _, err = cli(capsys, "validate", str(path), "--models", "models/sim.yaml")
    assert code == 2
    assert f"{path}:3: tools.shout: cannot load 'missing.py:shout'" in err


def test_a_tool_path_without_attribute_is_a_load_error(tmp_path: Path) -> None:
    path = tool_graph(tmp_path, "tools_file.py")
    [problem] = load_problems(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: tools: ", problem), problem
    assert "shout: write 'module:function' or 'file.py:function'" in problem


@pytest.mark.parametrize(
    "source",
    [
        "def shout(text: str) -> str:\n    return text.upper()\n",
        "def shout(text: str) -> str\n    return text.upper()\n",
    ],
    ids=["no-docstring", "syntax-error"],
)
def test_a_tool_file_that_does_not_load_is_a_graph_error(tmp_path: Path, source: str) -> None:
    (tmp_path / "tools_file.py").write_text(source)
    loaded = load_graph(tool_graph(tmp_path, "tools_file.py:shout"))
    with pytest.raises(GraphError) as caught:
        loaded.tools()
    [problem] = caught.value.problems
    assert problem.startswith(f"{loaded.path}:3: tools.shout: cannot load ")
