"""``agentmesh prompts list`` and ``agentmesh prompts render``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.prompts import shipped_prompts

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = str(ROOT / "prompts")
LOCAL = str(ROOT / "models" / "local.yaml")
SIM = str(ROOT / "models" / "sim.yaml")

BROKEN = """---
description: broken on purpose
inputs:
  goal: {type: str}
  n: {type: int, required: false, default: 1}
---
Goal: {{ goal }} x{{ n }}
{{ nope }}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def broken(tmp_path: Path) -> str:
    (tmp_path / "t.j2").write_text(BROKEN)
    return str(tmp_path)


def test_list_shows_templates_variants_and_inputs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prompts", "list", "--dir", PROMPTS)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "FORMAT", "VARIANTS", "INPUTS", "DESCRIPTION"]
    plan = next(line for line in lines if line.startswith("plan "))
    assert "gemma (completion)" in plan
    assert "question:str, max_steps:int?" in plan
    assert not any(line.startswith("_") for line in lines)


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prompts", "list", "--dir", PROMPTS, "--json")
    data = json.loads(out)
    assert code == 0
    plan = next(t for t in data["templates"] if t["name"] == "plan")
    assert plan["inputs"]["max_steps"] == {
        "type": "int",
        "required": False,
        "default": 5,
        "description": "Most steps to plan",
    }
    assert plan["output_schema"] == "schemas/plan.json"
    files = {v["file"]: v for v in plan["variants"]}
    assert files["plan.j2"]["key"] is None
    assert files["plan.gemma.j2"]["format"] == "completion"
    assert all(len(v["hash"]) == 16 for v in plan["variants"])


def test_list_uses_the_shipped_prompts_unless_told_otherwise(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    broken: str,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)  # no prompts/ here
    monkeypatch.delenv("AGENTMESH_PROMPTS", raising=False)
    code, out, _ = run(capsys, "prompts", "list", "--json")
    listed = json.loads(out)
    assert (code, listed["dir"]) == (0, str(shipped_prompts()))
    assert {"plan", "judge", "solve_math"} <= {t["name"] for t in listed["templates"]}
    # $AGENTMESH_PROMPTS names a folder; --prompts (or its old name --dir) wins over it.
    monkeypatch.setenv("AGENTMESH_PROMPTS", broken)
    code, out, _ = run(capsys, "prompts", "list", "--json")
    assert (code, [t["name"] for t in json.loads(out)["templates"]]) == (0, ["t"])
    for option in ("--prompts", "--dir"):
        code, out, _ = run(capsys, "prompts", "list", option, PROMPTS, "--json")
        assert (code, json.loads(out)["dir"]) == (0, PROMPTS)


@pytest.mark.parametrize(
    ("how", "named"),
    [("--prompts", "--prompts DIR"), ("--dir", "--prompts DIR"), ("env", "$AGENTMESH_PROMPTS")],
)
def test_a_missing_prompts_folder_names_what_set_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    how: str,
    named: str,
) -> None:
    missing = str(tmp_path / "nowhere")
    argv = ["prompts", "list"]
    if how == "env":
        monkeypatch.setenv("AGENTMESH_PROMPTS", missing)
    else:
        argv += [how, missing]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert f"prompts folder {missing!r} does not exist" in err
    assert err.rstrip().endswith(f"(set it with {named})")


def test_render_shows_the_variant_why_and_the_completion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["prompts", "render", "plan", "--dir", PROMPTS, "--models", LOCAL, "--model", "gemma"]
    code, out, _ = run(capsys, *argv, "--var", "question=Why is the sea salty?")
    assert code == 0
    assert "variant   plan.gemma.j2 (matched model-id 'gemma')" in out
    assert "format    completion" in out
    assert out.rstrip().endswith("Question: Why is the sea salty?\nPlan:")


def test_render_json_for_a_chat_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *("prompts", "render", "solve_math", "--dir", PROMPTS, "--models", SIM),
        *("--model", "sim-sonnet", "--var", "problem=What is 6 x 7?", "--json"),
    )
    data = json.loads(out)
    assert code == 0
    assert (data["template"], data["variant"], data["matched"]) == (
        "solve_math",
        "solve_math.claude.j2",
        "family",
    )
    assert data["format"] == "chat"
    assert data["completion"] is None
    assert [m["role"] for m in data["messages"]] == ["system", "user"]
    assert "<problem>\nWhat is 6 x 7?\n</problem>" in data["messages"][1]["content"]
    assert len(data["hash"]) == 16


def test_render_json_for_a_completion_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        *("prompts", "render", "triage", "--dir", PROMPTS, "--models", LOCAL, "--model", "gemma"),
        *("--example", "--json"),
    )
    data = json.loads(out)
    assert code == 0
    assert (data["variant"], data["format"]) == ("triage.gemma.j2", "completion")
    assert data["messages"] == [{"role": "user", "content": data["completion"]}]
    assert "charged twice for order A-1042" in data["completion"]
    assert data["stop"] == ["\nTicket:"]


def test_render_coerces_vars_and_example_values_can_be_overridden(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys,
        *("prompts", "render", "plan", "--dir", PROMPTS, "--models", SIM, "--model", "sim-nano"),
        *("--example", "--var", "max_steps=2", "--json"),
    )
    data = json.loads(out)
    assert code == 0
    assert data["variant"] == "plan.gpt.j2"
    assert "at most 2 concrete research steps" in data["messages"][0]["content"]
    assert "12-person company" in data["messages"][1]["content"]


def test_render_error_exits_2_naming_template_variable_and_line(
    capsys: pytest.CaptureFixture[str], broken: str
) -> None:
    argv = ["prompts", "render", "t", "--dir", broken, "--models", SIM, "--model", "sim-4o"]
    code, out, err = run(capsys, *argv, "--var", "goal=g")
    assert (code, out) == (2, "")
    assert err.strip() == f"agentmesh: {broken}/t.j2:8: template 't': undefined variable 'nope'"


def test_render_error_as_json(capsys: pytest.CaptureFixture[str], broken: str) -> None:
    argv = ["prompts", "render", "t", "--dir", broken, "--models", SIM, "--model", "sim-4o"]
    code, out, err = run(capsys, *argv, "--var", "goal=g", "--json")
    assert code == 2
    assert json.loads(out)["error"] == {
        "type": "prompt_error",
        "message": f"{broken}/t.j2:8: template 't': undefined variable 'nope'",
        "template": "t",
        "variable": "nope",
        "line": 8,
        "file": f"{broken}/t.j2",
        "limit": None,
    }
    assert "undefined variable 'nope'" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "t.j2:4: template 't': missing required input 'goal' (str)"),
        (("--var", "goal=g", "--var", "n=many"), "t.j2:5: template 't': input 'n' (int)"),
        (("--var", "goal=g", "--var", "other=1"), "template 't': unknown input(s) 'other'"),
        (("--var", "goal"), "--var expects KEY=VALUE (got 'goal')"),
        (("--var", "goal=a", "--var", "goal=b"), "--var goal is given twice"),
    ],
)
def test_bad_vars_exit_2(
    capsys: pytest.CaptureFixture[str], broken: str, extra: tuple[str, ...], message: str
) -> None:
    argv = ["prompts", "render", "t", "--dir", broken, "--models", SIM, "--model", "sim-4o"]
    code, _, err = run(capsys, *argv, *extra)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    ("name", "model", "message"),
    [
        ("nope", "sim-4o", "unknown template 'nope'"),
        ("plan", "nope", "unknown model 'nope'; the catalog lists: sim-4o"),
    ],
)
def test_unknown_template_or_model_exits_2(
    capsys: pytest.CaptureFixture[str], name: str, model: str, message: str
) -> None:
    argv = ["prompts", "render", name, "--dir", PROMPTS, "--models", SIM, "--model", model]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 2
    assert message in err
    assert message in json.loads(out)["error"]["message"]
