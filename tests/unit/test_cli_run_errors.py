"""``agentmesh run``: failures stay visible and bad arguments are usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmesh.cli import main

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")
PROMPTS = str(ROOT / "prompts")
GRAPH = str(ROOT / "graphs" / "support_triage.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def down_catalog(tmp_path: Path) -> str:
    path = tmp_path / "down.yaml"
    path.write_text(
        "models:\n  - id: m\n    provider: scripted\n    model: m\n    capabilities: [json]\n"
        "    pricing: {input: 1, output: 2}\n    behavior: {down: true}\n"
    )
    return str(path)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_quiet_silences_progress_but_never_the_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, json_flag: list[str]
) -> None:
    argv = ["run", GRAPH, "--models", down_catalog(tmp_path), "--prompts", PROMPTS]
    code, _, err = run(capsys, *argv, "--input", "hi", "--quiet", *json_flag)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("agentmesh: run ")
    assert lines[0].endswith(": failed")
    assert lines[1].startswith("agentmesh: failed at node triage: unavailable: ")
    assert "✗" not in err, "no progress lines"


def test_quiet_success_prints_only_the_answer(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", GRAPH, "--models", SIM, "--prompts", PROMPTS, "--input", "Charged twice."]
    code, out, err = run(capsys, *argv, "--quiet")
    assert code == 0
    assert err == ""
    assert out.strip()


@pytest.mark.parametrize("option", ["--budget", "--global-budget"])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "lots"])
def test_a_budget_of_zero_or_less_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    argv = ["run", GRAPH, "--models", SIM, "--prompts", PROMPTS, "--input", "hi"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, f"{option}={value}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err
    assert "Traceback" not in err
    assert ("greater than 0" if value in ("-1", "0", "nan") else "not a number") in err
