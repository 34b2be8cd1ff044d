from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.cli import main

CATALOG = """\
models:
  - {id: flaky, provider: scripted, model: flaky, tier: 1, pricing: {input: 1, output: 1},
     behavior: {reply: "from flaky", down: true, fail_with: server_error}}
  - {id: solid, provider: scripted, model: solid, tier: 2, pricing: {input: 2, output: 2},
     behavior: {reply: "from solid"}}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def models(tmp_path: Path) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(CATALOG)
    return str(path)


def policy_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


def test_ask_json_reports_the_serving_model_and_every_attempt(capsys, models, tmp_path) -> None:
    policy = policy_file(
        tmp_path,
        "strategy: cheapest\nresilience: {retry: {max_attempts: 2, base_s: 0, cap_s: 0}}\n",
    )
    code, out, _ = run(
        capsys, "ask", "--models", models, "--policy", policy, "--prompt", "hi", "--json"
    )
    data = json.loads(out)
    assert code == 0
    assert data["model"] == "solid"
    assert data["text"] == "from solid"
    assert data["escalation_level"] == 0
    assert data["degraded"] is False
    assert data["cost_usd"] > 0
    assert [(a["model"], a["outcome"], a["error_type"]) for a in data["attempts"]] == [
        ("flaky", "error", "unavailable"),
        ("flaky", "error", "unavailable"),
        ("solid", "ok", None),
    ]
    assert data["attempts"][2]["reason"] == "fallback after unavailable on flaky"
    assert all("latency_ms" in a for a in data["attempts"])


def test_ask_failure_exits_nonzero_and_lists_attempts(capsys, models, tmp_path) -> None:
    policy = policy_file(
        tmp_path,
        "strategy: cheapest\nmax_tier: 1\nresilience: {retry: {max_attempts: 1}}\n",
    )
    code, out, _ = run(
        capsys, "ask", "--models", models, "--policy", policy, "--prompt", "hi", "--json"
    )
    data = json.loads(out)
    assert code == 1
    assert data["error"]["type"] == "unavailable"
    assert [a["model"] for a in data["attempts"]] == ["flaky"]


def test_ask_plain_output_goes_to_stdout_with_notes_on_stderr(capsys, models) -> None:
    code, out, err = run(
        capsys, "ask", "--models", models, "--strategy", "cheapest", "--prompt", "x"
    )
    assert code == 0
    assert out == "from solid\n"
    assert "# served by solid" in err
    assert "flaky:unavailable" in err
    assert "simulated answer" in err


def test_ask_bad_resilience_block_is_a_usage_error(capsys, models, tmp_path) -> None:
    policy = policy_file(tmp_path, "strategy: cheapest\nresilience: {retry: {max_attempts: 0}}\n")
    code, _, err = run(capsys, "ask", "--models", models, "--policy", policy, "--prompt", "x")
    assert code == 2
    assert "policy.yaml resilience: retry.max_attempts" in err


def test_ask_trace_records_every_attempt_and_the_fallback(capsys, models, tmp_path) -> None:
    from agentmesh.tracing.reader import load_spans

    policy = policy_file(tmp_path, "strategy: cheapest\nresilience: {retry: {max_attempts: 1}}\n")
    trace = tmp_path / "run" / "trace.jsonl"
    code, _, err = run(
        capsys,
        "ask",
        "--models",
        models,
        "--policy",
        policy,
        "--prompt",
        "x",
        "--trace",
        str(trace),
    )
    assert code == 0
    assert f"trace appended to {trace}" in err
    spans = load_spans(trace)
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert [s.attributes["agentmesh.model_id"] for s in chats] == ["flaky", "solid"]
    assert chats[0].attributes["error.type"] == "unavailable"
    assert chats[1].attributes["agentmesh.fallback"] is True
    assert chats[1].attributes["agentmesh.attempt"] == 2
    routes = [s for s in spans if s.name.startswith("route ")]
    assert routes[0].attributes["agentmesh.route.chosen"] == "flaky"
    root = next(s for s in spans if s.parent_id is None)
    assert root.name == "agentmesh ask"
    assert all(s.trace_id == root.trace_id for s in spans)
