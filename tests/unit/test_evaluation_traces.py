"""train-router reads judge verdicts from trace files alone, as graded rows.

The traces come from `agentmesh run` of the shipped math cascade on the
simulated pool (models/sim.yaml: scripted models, no real model is called).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.evaluation.data import DataError
from agentmesh.evaluation.feedback import verdict_rows
from agentmesh.routing import LearnedModel
from agentmesh.tracing import content_capture
from agentmesh.tracing.attributes import EVENT_EVALUATION_RESULT, GEN_AI_EVALUATION_SCORE_VALUE

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT / "graphs" / "math_cascade.yaml"
SIM = ROOT / "models" / "sim.yaml"
# on sim.yaml, the cheapest model's worked answer to a word problem passes the
# cascade judge; its one-line "short answer" to anything else fails every round
WORD = "How many muffins can {n} buy with 30 dollars?"
OTHER = "Name a colour of cats for {n}"
NAMES = ("Ann", "Bob", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lou")
RUNS = 2 * len(NAMES)


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "runs.jsonl"
    for n in range(RUNS):
        question = (WORD if n % 2 else OTHER).format(n=NAMES[n // 2])
        command = ["run", str(GRAPH), "--models", str(SIM), "--input", question]
        # what OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true does for a new process
        with content_capture(True):
            assert main([*command, "--trace", str(path), "--quiet"]) == 0
    return path


def test_judge_spans_carry_one_verdict_event_per_verdict(trace: Path) -> None:
    spans = [json.loads(line) for line in trace.read_text().splitlines()]
    events = [
        e
        for s in spans
        if s["name"] == "invoke_agent check"
        for e in s["events"]
        if e["name"] == EVENT_EVALUATION_RESULT
    ]
    # a word problem is judged once; anything else three times (max_rounds), climbing tiers
    assert len(events) == RUNS // 2 * (1 + 3)
    assert all(0 <= e["attributes"][GEN_AI_EVALUATION_SCORE_VALUE] <= 1 for e in events)


def test_verdict_rows_are_graded_first_answer_and_escalated_answer(
    trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = verdict_rows([trace])
    assert len(rows) == RUNS
    word = [r for r in rows if "muffins" in r.prompt]
    other = [r for r in rows if "colour of cats" in r.prompt]
    assert len(word) == len(other) == RUNS // 2
    assert all(r.weak_ok and r.strong_value is None for r in word)  # no one asked a stronger one
    assert all(r.weak_quality == 1.0 for r in word)
    assert all(r.weak_ok is False and r.strong_ok is False for r in other)
    assert all(r.weak_quality is not None and 0 < r.weak_quality < 0.5 for r in other)
    assert all(r.strong_quality is not None for r in other)


def test_train_router_learns_from_the_trace_alone(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "router.json"
    code = main(["train-router", "--trace", str(trace), "--strengths", "1e-2", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    model = LearnedModel.load(out)
    meta = dict(model.meta)
    assert meta["feedback"]["rows"] == RUNS
    assert meta["feedback"]["verdicts_from"] == "trace verdict events (graded)"
    assert meta["target"] == "weak_wrong"
    # the rejected kind of question scores higher: it needs a stronger model
    assert model.logit(OTHER.format(n="Max")) > model.logit(WORD.format(n="Max"))
    assert model.domain is not None


def test_a_trace_without_content_or_verdicts_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match=r"0 verdict events.*CAPTURE_MESSAGE_CONTENT=true"):
        verdict_rows([empty])
    bare = tmp_path / "bare.jsonl"
    command = ["run", str(GRAPH), "--models", str(SIM), "--input", OTHER.format(n="Max")]
    with content_capture(False):
        assert main([*command, "--trace", str(bare), "--quiet"]) == 0
    with pytest.raises(DataError, match=r"3 verdict events, 0 prompts"):
        verdict_rows([bare])
