"""Every example runs on the simulated pool and prints what its docstring promises."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from langgraph.graph.state import CompiledStateGraph

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))  # examples import their _common helper


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_five_pipelines_and_the_langgraph_app_are_there() -> None:
    assert set(NAMES) >= {
        "research_report",
        "code_review",
        "math_consensus",
        "math_cascade",
        "support_triage",
        "langgraph_app",
    }
    for name in NAMES:
        assert load(name).__doc__, f"{name} says what it shows"


def run(name: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = load(name).main(list(args))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SIMULATED" in out, "simulated answers are labelled"
    return out


def test_research_report_escalates_judged_steps(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("research_report", capsys)
    assert "research[01]" in out
    assert "sim-4o" in out
    assert "redone by a stronger tier" in out


def test_code_review_climbs_to_the_tier_that_finds_the_injection(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run("code_review", capsys)
    assert "SQL injection" in out
    assert "review attempts by tier: sim-nano -> sim-mini -> sim-4o" in out


def test_code_review_s_python_graph_matches_its_yaml_twin() -> None:
    from agentmesh.graph import load_graph

    python = load("code_review").workflow().spec()
    yaml = load_graph(EXAMPLES.parent / "graphs/code_review.yaml").spec
    assert python.nodes["review"] == yaml.nodes["review"]
    assert python.edges == yaml.edges
    assert python.output_node == yaml.output_node == "review"


def test_math_consensus_votes(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("math_consensus", capsys)
    assert "answer: [simulated sim-" in out, "the winning reply, its leading '[' kept"
    assert "voted: 26" in out
    assert "'30': ['solve_fast']" in out


def test_math_cascade_escalates_the_answer_its_judge_doubts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run("math_cascade", capsys)
    assert "answer: ['Final answer: 26']" in out
    assert "round 1: sim-nano: rejected: the answer looks wrong (cascade judge" in out
    assert "round 2: sim-mini: passed: looks right" in out


def test_support_triage_extracts_fields(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("support_triage", capsys, "--input", "Charged twice for order A-1042.")
    assert "category: billing" in out
    assert "order:    A-1042" in out


def test_examples_write_a_trace_when_asked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from agentmesh.tracing import load_spans

    trace = tmp_path / "t.jsonl"
    run("support_triage", capsys, "--trace", str(trace))
    names = {s.name for s in load_spans(trace)}
    assert "invoke_workflow support_triage" in names
    assert "invoke_agent triage" in names


def test_the_langgraph_app_exposes_every_graph_of_langgraph_json() -> None:
    import json

    config = json.loads((EXAMPLES.parent / "langgraph.json").read_text())
    app = load("langgraph_app")
    for graph_id, target in config["graphs"].items():
        assert target == f"./examples/langgraph_app.py:{graph_id}"
        assert isinstance(getattr(app, graph_id), CompiledStateGraph)


async def test_a_langgraph_app_graph_runs_like_any_langgraph_graph() -> None:
    app = load("langgraph_app")
    state = await app.support_triage.ainvoke({"input": "Charged twice for order A-1042."})
    assert '"category": "billing"' in state["results"]["triage"][""]["text"]
    assert [s["node"] for s in state["steps"]] == ["triage", "validate"]


@pytest.mark.parametrize("catalog", ["sim", "local", "cloud", "llamacpp-server"])
def test_every_graph_can_be_served_by_every_shipped_catalog(catalog: str) -> None:
    from agentmesh.graph import check_graph, load_graph
    from agentmesh.models import load_catalog
    from agentmesh.prompts import PromptLibrary

    models = load_catalog(EXAMPLES.parent / "models" / f"{catalog}.yaml")
    prompts = PromptLibrary(EXAMPLES.parent / "prompts")
    from agentmesh.graph import ExecutorNode, GraphError
    from agentmesh.models import Capability

    calls_tools = any(Capability.TOOLS in s.capabilities for s in models.specs)
    for path in sorted((EXAMPLES.parent / "graphs").glob("*.yaml")):
        loaded = load_graph(path)
        agents = [n for n in loaded.spec.nodes.values() if isinstance(n, ExecutorNode) and n.tools]
        if agents and not calls_tools:  # the embedded base model calls no tools: refused up front
            with pytest.raises(GraphError, match="lacks tools"):
                check_graph(loaded.spec, models, prompts, loaded.tools(), locate=loaded.locate)
            continue
        check_graph(loaded.spec, models, prompts, loaded.tools(), locate=loaded.locate)
