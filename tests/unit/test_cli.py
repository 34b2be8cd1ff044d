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


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", [("models", "list"), ("run",), ("route",), ("ask",)])
def test_models_is_shown_optional_only_when_agentmesh_models_is_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.setenv("AGENTMESH_MODELS", SIM)
    usage = _help(capsys, *command)
    assert "[--models FILE]" in usage
    # argparse wraps long paths, at a hyphen too ("/work/wt-\n  merge/..."): compare unwrapped
    assert f"$AGENTMESH_MODELS={SIM}".replace(" ", "") in "".join(usage.split())
    for unset in ("", None):  # an empty variable is no catalog
        if unset is None:
            monkeypatch.delenv("AGENTMESH_MODELS")
        else:
            monkeypatch.setenv("AGENTMESH_MODELS", unset)
        usage = _help(capsys, *command)
        assert " --models FILE" in usage.split("\n\n")[0]
        assert "[--models FILE]" not in usage
        assert "required unless $AGENTMESH_MODELS is set" in " ".join(usage.split())


def test_an_empty_agentmesh_models_is_a_missing_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMESH_MODELS", "")
    with pytest.raises(SystemExit) as exited:
        main(["models", "list"])
    assert exited.value.code == 2
    assert "the following arguments are required: --models" in capsys.readouterr().err


GRAPH = str(ROOT / "graphs" / "code_review.yaml")


def test_validate_json_says_what_was_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTMESH_MODELS", raising=False)
    code, out, err = run(capsys, "validate", GRAPH, "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data == {
        "graph": GRAPH,
        "valid": True,
        "name": "code_review",
        "nodes": data["nodes"],
        "checked_against": None,
    }
    assert "review" in data["nodes"]
    # Like every command, validate takes its catalog from $AGENTMESH_MODELS.
    monkeypatch.setenv("AGENTMESH_MODELS", SIM)
    code, out, _ = run(capsys, "validate", GRAPH, "--json")
    assert (code, json.loads(out)["checked_against"]) == (0, SIM)
    code, out, _ = run(capsys, "validate", GRAPH)
    assert out.strip().endswith(f"checked against {SIM}")


def test_validate_json_lists_the_problems_of_an_invalid_graph(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "name: g\nnodes:\n  a: {kind: executor, prompt: nosuch}\n"
        "  b: {kind: executor, prompt: plan, inputs: {question: $input}}\nedges: [a -> c]\n"
    )
    code, out, err = run(capsys, "validate", str(path), "--models", SIM, "--json")
    assert code == 2
    data = json.loads(out)
    assert (data["graph"], data["valid"], data["error"]["type"]) == (
        str(path),
        False,
        "graph_error",
    )
    problems = data["error"]["problems"]
    assert any("'c'" in p for p in problems), problems
    assert len(problems) >= 2
    assert err.startswith(f"agentmesh: graph 'g' is invalid ({len(problems)} problems)")


def test_validate_json_reports_a_bad_catalog_or_prompts_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - id: x\n    provider: nope\n    model: y\n")
    code, out, err = run(capsys, "validate", GRAPH, "--models", str(bad), "--json")
    error = json.loads(out)["error"]
    assert (code, error["type"]) == (2, "catalog_error")
    assert error["message"].startswith(f"{bad}:2")
    assert f"agentmesh: {bad}:2" in err
    missing = str(tmp_path / "nowhere")
    argv = ["validate", GRAPH, "--models", SIM, "--prompts", missing, "--json"]
    code, out, _ = run(capsys, *argv)
    error = json.loads(out)["error"]
    assert (code, error["type"]) == (2, "prompt_error")
    assert "(set it with --prompts DIR)" in error["message"]
