"""The shipped prompts outside a checkout: package data, used when no folder is given.

The repository's ``prompts/`` is the one copy in git; a wheel carries it at
``agentmesh/prompts/_shipped`` (``force-include`` in ``pyproject.toml``). The
installed layout is reproduced here by copying the package and the folder where
the wheel puts them, then running the CLI from a directory that is not a checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.graph import Runtime
from agentmesh.prompts import PromptLibrary, shipped_prompts
from agentmesh.prompts import shipped as shipped_module
from agentmesh.testing import scripted_catalog

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")
TRIAGE = str(ROOT / "graphs" / "support_triage.yaml")

# Several commands in one fresh interpreter: [[code, stdout, stderr], ...] on stdout.
_PROBE = """
import contextlib, io, json, sys
from agentmesh.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def _commands(site: Path, cwd: Path, *argvs: list[str]) -> list[tuple[int, str, str]]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    for name in ("AGENTMESH_PROMPTS", "AGENTMESH_MODELS"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argvs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    )
    return [tuple(r) for r in json.loads(done.stdout.splitlines()[-1])]


def _installed(tmp_path: Path) -> Path:
    """``site-packages`` as the wheel lays it out: the package and its prompts."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "src" / "agentmesh", site / "agentmesh")  # byte-code too: still valid
    shutil.copytree(ROOT / "prompts", site / shipped_module.PACKAGED_FOLDER)
    return site


def test_the_wheel_carries_the_checkout_prompts_folder_where_the_code_looks() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"] == {"prompts": shipped_module.PACKAGED_FOLDER}
    package_root = Path(shipped_module.__file__).resolve().parents[2]
    assert (package_root / shipped_module.PACKAGED_FOLDER) == Path(
        shipped_module.__file__
    ).resolve().parent / "_shipped"
    # One source in git: a checkout has no packaged copy and uses its own folder.
    assert not (package_root / shipped_module.PACKAGED_FOLDER).exists()
    assert shipped_prompts() == ROOT / "prompts"


def test_an_installed_copy_uses_its_packaged_prompts(tmp_path: Path) -> None:
    site = _installed(tmp_path)
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()  # no prompts/, no checkout
    ((code, out, err),) = _commands(site, elsewhere, ["prompts", "list", "--json"])
    assert code == 0, err
    listed = json.loads(out)
    assert listed["dir"] == str(site / shipped_module.PACKAGED_FOLDER)
    assert {"plan", "judge", "triage"} <= {t["name"] for t in listed["templates"]}


def test_run_from_another_directory_renders_the_shipped_prompts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENTMESH_PROMPTS", raising=False)
    argv = ["run", TRIAGE, "--models", SIM, "--input", "Charged twice for A-1042.", "--json"]
    assert main([*argv, "--quiet"]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert steps[0]["node"] == "triage"
    assert steps[0]["status"] == "ok"


def test_an_install_without_its_prompts_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "site" / "agentmesh" / "prompts"  # neither _shipped/ nor under src/
    installed.mkdir(parents=True)
    monkeypatch.setattr(shipped_module, "_HERE", installed)
    monkeypatch.delenv("AGENTMESH_PROMPTS", raising=False)
    assert main(["prompts", "list"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"the shipped prompts are missing (looked in {installed / '_shipped'})" in err
    assert "reinstall agentmesh" in err


def test_graph_draws_without_any_prompts_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTMESH_PROMPTS", str(tmp_path / "nowhere"))  # not even read
    for extra in ([], ["--prompts", str(tmp_path / "nowhere")]):
        assert main(["graph", str(ROOT / "graphs" / "research_report.yaml"), *extra]) == 0
        out = capsys.readouterr().out
        assert "graph TD;" in out
        assert "research --> check" in out


async def test_library_defaults_are_the_shipped_prompts() -> None:
    assert PromptLibrary().folder == shipped_prompts()
    async with Runtime.open(scripted_catalog()) as runtime:
        assert runtime.prompts.folder == shipped_prompts()
        assert "plan" in {t.name for t in runtime.prompts.templates}
