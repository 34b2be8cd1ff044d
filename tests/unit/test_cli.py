from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.cli import main

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def catalog(tmp_path: Path, behavior: str) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(
        "models:\n  - id: m\n    provider: scripted\n    model: m\n"
        f"    pricing: {{input: 1, output: 2}}\n    behavior: {behavior}\n"
    )
    return str(path)


def test_models_list_table_marks_simulated_models(capsys) -> None:
    code, out, _ = run(capsys, "models", "list", "--models", SIM)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "PROVIDER", "MODEL"]
    assert any(
        line.startswith("sim-opus") and "SIMULATED (imitates anthropic/claude-opus-4)" in line
        for line in lines
    )


def test_models_list_json(capsys) -> None:
    code, out, _ = run(capsys, "models", "list", "--models", SIM, "--json")
    data = json.loads(out)
    assert code == 0
    ids = [m["id"] for m in data["models"]]
    assert ids[0] == "sim-nano"
    assert "sim-opus" in ids
    first = data["models"][0]
    assert first["pricing"] == {"input": 0.1, "output": 0.4}
    assert first["simulated"] is True


def test_models_list_shows_missing_keys(capsys, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    _, out, _ = run(capsys, "models", "list", "--models", str(ROOT / "models" / "cloud.yaml"))
    assert any(
        "claude-haiku" in line and "needs $ANTHROPIC_API_KEY" in line for line in out.splitlines()
    )


def test_models_call_prints_the_reply_and_labels_simulation(capsys) -> None:
    code, out, err = run(
        capsys, "models", "call", "--models", SIM, "--model", "sim-mini", "--prompt", "2+2?"
    )
    assert code == 0
    assert out.strip() == "[simulated sim-mini] A concise answer to: 2+2?"
    assert "simulated answer" in err
    assert "openai/gpt-4o-mini" in err


def test_models_call_json_has_usage_cost_and_latency(capsys, tmp_path) -> None:
    path = catalog(tmp_path, '{reply: "one two three"}')
    code, out, _ = run(
        capsys, "models", "call", "--models", path, "--model", "m", "--prompt", "hi", "--json"
    )
    data = json.loads(out)
    assert code == 0
    assert data["model"] == "m"
    assert data["text"] == "one two three"
    assert data["output_tokens"] == 3
    assert data["input_tokens"] > 0
    expected = (data["input_tokens"] * 1 + data["output_tokens"] * 2) / 1e6
    assert data["cost_usd"] == pytest.approx(expected)
    assert data["latency_ms"] >= 0
    assert data["simulated"] is True


def test_models_call_stream(capsys, tmp_path) -> None:
    path = catalog(tmp_path, '{reply: "streamed words here"}')
    code, out, _ = run(
        capsys, "models", "call", "--models", path, "--model", "m", "--prompt", "x", "--stream"
    )
    assert code == 0
    assert out == "streamed words here\n"


def test_models_call_failure_exits_nonzero_with_error_object(capsys, tmp_path) -> None:
    path = catalog(tmp_path, "{down: true, fail_with: rate_limit}")
    code, out, _ = run(
        capsys, "models", "call", "--models", path, "--model", "m", "--prompt", "x", "--json"
    )
    assert code == 1
    data = json.loads(out)
    assert data["error"]["type"] == "rate_limited"
    assert "simulated" in data["error"]["message"]


def test_models_call_failure_without_json_goes_to_stderr(capsys, tmp_path) -> None:
    path = catalog(tmp_path, "{down: true, fail_with: timeout}")
    code, out, err = run(
        capsys, "models", "call", "--models", path, "--model", "m", "--prompt", "x"
    )
    assert code == 1
    assert out == ""
    assert "timeout" in err


def test_unknown_model_is_a_usage_error(capsys) -> None:
    code, _, err = run(
        capsys, "models", "call", "--models", SIM, "--model", "gpt-9", "--prompt", "x"
    )
    assert code == 2
    assert "unknown model 'gpt-9'" in err
    assert "sim-mini" in err


def test_bad_catalog_is_a_usage_error_naming_the_file(capsys, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - id: x\n    provider: nope\n    model: y\n")
    code, _, err = run(capsys, "models", "list", "--models", str(path))
    assert code == 2
    assert "bad.yaml:2" in err
    assert "provider" in err


def test_models_option_defaults_to_the_environment(capsys, monkeypatch) -> None:
    monkeypatch.setenv("AGENTMESH_MODELS", SIM)
    from agentmesh.cli import build_parser

    args = build_parser().parse_args(["models", "list"])
    assert args.models == SIM
