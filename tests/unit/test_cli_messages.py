"""CLI messages: errors in the format asked for, and inputs that would mislead named."""

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


def test_models_call_json_with_an_unknown_model_prints_the_error_object(capsys) -> None:
    code, out, err = run(
        capsys, "models", "call", "--models", SIM, "--model", "gpt-9", "--prompt", "x", "--json"
    )
    assert code == 2
    assert err == ""
    data = json.loads(out)
    assert data["model"] == "gpt-9"
    assert data["error"]["type"] == "unknown_model"
    assert "unknown model 'gpt-9'" in data["error"]["message"]
    assert "sim-mini" in data["error"]["message"]


def test_route_warns_about_a_task_nothing_knows(capsys) -> None:
    argv = ["route", "--models", SIM, "--strategy", "task", "--prompt", "hi", "--json"]
    code, out, err = run(capsys, *argv, "--task", "nosuchtask")
    assert code == 0
    assert json.loads(out)["task"] == "nosuchtask"
    assert "warning: task 'nosuchtask' has no quality prior in" in err
    assert "math" in err
    assert "default quality" in err
    for known in ("math", "general", "code"):
        code, _, err = run(capsys, *argv, "--task", known)
        assert code == 0
        assert err == "", known
