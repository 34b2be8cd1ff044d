"""The ``cascade`` rule validator: a trained cascade judge escalates a workflow's weak answers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentmesh.cli import main
from agentmesh.evaluation.cascade import CascadeModel
from agentmesh.graph import Runtime, build_validator, load_graph, run_graph
from agentmesh.models import load_catalog
from agentmesh.routing import LearnedModel
from agentmesh.tracing import content_capture

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "She has 16 eggs and eats 3. She sells the rest at $2 each. How much does she make?"
RIGHT = "She keeps 16 - 3 = 13 eggs. She sells them for 13 * 2 = 26 dollars.\n#### 26"
# one slip of arithmetic (13 * 2 = 28): the hand-set judge's strongest signal
SLIP = "She keeps 16 - 3 = 13 eggs. She sells them for 13 * 2 = 28 dollars.\n#### 28"


@pytest.fixture
def judge_file(tmp_path: Path) -> Path:
    """The hand-set cascade judge (no training), as a file: known, stable weights."""
    path = tmp_path / "judge.json"
    CascadeModel.default().save(path)
    return path


def test_a_cascade_judge_fails_a_slip_naming_it_and_passes_clean_working(
    judge_file: Path,
) -> None:
    validator = build_validator({"cascade": str(judge_file)})
    assert validator.name == "cascade"
    model = CascadeModel.load(judge_file)
    good = validator.judge(RIGHT, QUESTION)
    assert good.passed
    assert good.score == pytest.approx(1 - model.escalate_score(RIGHT, QUESTION))
    bad = validator.judge(SLIP, QUESTION)
    assert not bad.passed
    assert bad.score == pytest.approx(1 - model.escalate_score(SLIP, QUESTION))
    assert bad.score < good.score
    assert "a calculation does not check out" in bad.feedback
    assert f"> {model.threshold:.2f}" in bad.feedback
    # without its question the judge still reads the working
    assert not validator(SLIP).passed


def test_the_threshold_can_be_set_per_graph(judge_file: Path) -> None:
    lenient = build_validator({"cascade": {"file": str(judge_file), "threshold": 0.999}})
    assert lenient.judge(SLIP, QUESTION).passed
    strict = build_validator({"cascade": {"file": str(judge_file), "threshold": 0.001}})
    assert not strict.judge(RIGHT, QUESTION).passed


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("/nonexistent/judge.json", "/nonexistent/judge.json: cannot read cascade router"),
        ({"file": "J", "threshold": 1.5}, "cascade: threshold must be a number in (0, 1), got 1.5"),
        ({"file": "J", "threshold": True}, "cascade: threshold must be a number in (0, 1)"),
        ({"path": "J"}, "cascade: a judge file or {file: FILE, threshold: T}"),
        (3, "cascade: a judge file or {file: FILE, threshold: T}, got 3"),
    ],
    ids=str,
)
def test_bad_cascade_parameters_name_the_problem(
    param: Any, message: str, judge_file: Path
) -> None:
    if isinstance(param, dict) and param.get("file") == "J":
        param = {**param, "file": str(judge_file)}
    with pytest.raises(ValueError, match=re.escape(message)):
        build_validator({"cascade": param})


def test_a_file_that_is_not_a_judge_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "router.json"
    other.write_text(json.dumps({"format": "agentmesh-learned-router"}))
    with pytest.raises(ValueError, match="not a cascade router"):
        build_validator({"cascade": str(other)})


GRAPH = """\
name: judged_math
nodes:
  solve:
    kind: executor
    prompt: solve_math
    inputs: {problem: $input}
    task: math
    policy: {strategy: cheapest}
  check:
    kind: judge
    target: solve
    prompt: null
    validators:
      - cascade: JUDGE
output: solve
edges:
  - solve -> check
"""


@pytest.mark.parametrize("form", ["plain", "mapping"])
def test_a_yaml_graph_reads_the_judge_file_beside_it(
    form: str, tmp_path: Path, judge_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "graphs"
    folder.mkdir()
    (tmp_path / "models").mkdir()
    judge_file.rename(tmp_path / "models" / "judge.json")
    entry = "../models/judge.json" if form == "plain" else "{file: ../models/judge.json}"
    (folder / "g.yaml").write_text(GRAPH.replace("JUDGE", entry))
    monkeypatch.chdir(ROOT)  # neither the graph's folder nor the judge's
    loaded = load_graph(folder / "g.yaml")
    (validators,) = [n.validators for n in loaded.spec.nodes.values() if n.kind == "judge"]
    param = validators[0]["cascade"]  # type: ignore[index]
    file = param if form == "plain" else param["file"]
    assert Path(file) == folder / "../models/judge.json"
    assert build_validator(validators[0]).name == "cascade"
    graph_file = str(folder / "g.yaml")
    assert main(["validate", graph_file, "--models", str(ROOT / "models" / "sim.yaml")]) == 0


def test_a_missing_judge_file_fails_validation_naming_node_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.replace("JUDGE", "missing.json"))
    monkeypatch.chdir(ROOT)
    assert main(["validate", str(graph), "--models", str(ROOT / "models" / "sim.yaml")]) != 0
    err = capsys.readouterr().err
    assert "check" in err
    assert str(tmp_path / "missing.json") in err
    assert "cannot read cascade router" in err


async def test_the_shipped_math_cascade_escalates_the_cheap_answer_with_the_judges_notes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the SIMULATED pool: sim-nano's hedged one-line working is rejected, sim-mini's kept."""
    monkeypatch.chdir(ROOT)
    loaded = load_graph(ROOT / "graphs" / "math_cascade.yaml")
    problem = (
        "A bakery sells muffins at $3 each or 4 for $10. What is the lowest price for 10 muffins?"
    )
    async with Runtime.open(load_catalog(ROOT / "models" / "sim.yaml")) as runtime:
        result = await run_graph(loaded.spec, runtime, problem, locate=loaded.locate)
    assert result.status == "ok", result.error
    assert result.simulated
    trail = [(s["node"], s["model"], s["status"], s["escalation_level"]) for s in result.steps]
    assert trail == [
        ("solve", "sim-nano", "ok", 0),
        ("check", None, "rejected", 0),
        ("solve", "sim-mini", "ok", 1),
        ("check", None, "passed", 1),
    ]
    rejected = result.steps[1]["verdict"]["feedback"]
    assert rejected.startswith("the answer looks wrong (cascade judge")
    assert "not every quantity the question gives is used" in rejected
    assert (result.output or "").rstrip().endswith("Final answer: 26")


PAIR = """\
description: two SIMULATED models for the feedback loop
models:
  - id: small
    provider: scripted
    model: small
    tier: 1
    pricing: {input: 0.1, output: 0.1}
    capabilities: [json]
    behavior:
      replies:
        - match: 'boxes'
          reply: "Maybe 3 * 4 = 13, roughly.\\nFinal answer: 13"
      reply: "She keeps 16 - 3 = 13 eggs and sells them for 13 * 2 = 26 dollars.\\nFinal answer: 26"
  - id: big
    provider: scripted
    model: big
    tier: 2
    pricing: {input: 5, output: 15}
    capabilities: [json]
    behavior:
      replies:
        - match: 'boxes'
          reply: "3 * 4 = 12 apples. 12 - 2 = 10 apples are left.\\nFinal answer: 10"
      reply: "She keeps 16 - 3 = 13 eggs and sells them for 13 * 2 = 26 dollars.\\nFinal answer: 26"
"""
EASY = "She has 16 eggs and eats 3. She sells the rest at $2 each. How much does she make?"
RUNS = 20  # the fewest rows train-router accepts
HARD = "Tom has 3 boxes with 4 apples each. He eats 2. How many apples are left?"


def test_runs_judged_by_a_cascade_judge_retrain_a_router_from_their_own_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The feedback loop on real `agentmesh run` output: trace (with content) + run records."""
    monkeypatch.chdir(ROOT)  # prompts/
    CascadeModel.default().save(tmp_path / "judge.json")
    graph = tmp_path / "g.yaml"
    graph.write_text(GRAPH.replace("JUDGE", "judge.json"))
    catalog = tmp_path / "pair.yaml"
    catalog.write_text(PAIR)
    trace = tmp_path / "trace.jsonl"
    records: list[str] = []
    for k in range(RUNS):
        question = f"{HARD if k % 2 else EASY} (ticket {k})"
        command = ["run", str(graph), "--models", str(catalog), "--input", question]
        # what OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true does for a new process
        with content_capture(True):
            assert main([*command, "--json", "--trace", str(trace), "--quiet"]) == 0
        record = tmp_path / f"run{k}.json"
        record.write_text(capsys.readouterr().out)
        records += ["--run", str(record)]
        steps = json.loads(record.read_text())["steps"]
        expected = ["small", "big"] if k % 2 else ["small"]
        assert [s["model"] for s in steps if s["node"] == "solve"] == expected
    out = tmp_path / "router.json"
    train = ["train-router", "--trace", str(trace), *records, "--strengths", "1e-2"]
    code = main([*train, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    router = LearnedModel.load(out)
    meta = dict(router.meta)
    assert meta["target"] == "weak_wrong"
    assert meta["feedback"]["rows"] == RUNS
    # every hard question's cheap answer was rejected, no easy one's: the router learned it
    assert router.logit(f"{HARD} (ticket 99)") > router.logit(f"{EASY} (ticket 98)")
