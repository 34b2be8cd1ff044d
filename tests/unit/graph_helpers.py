"""Helpers shared by the control-flow graph tests: shipped prompts, the simulated pool, files."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.models import Catalog, load_catalog
from agentmesh.prompts import PromptLibrary

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "models" / "sim.yaml"
GRAPHS = ROOT / "graphs"


@functools.cache
def shipped() -> PromptLibrary:
    """The shipped templates, loaded once (a library is an immutable snapshot)."""
    return PromptLibrary()


@functools.cache
def sim() -> Catalog:
    """The simulated pool, loaded once."""
    return load_catalog(SIM)


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path`` (a folder gets ``g.yaml``); the file's path."""
    if path.is_dir():
        path = path / "g.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, exact: str) -> int:
    """1-based number of the one line of ``path`` that is ``exact`` (trailing space ignored)."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line.rstrip() == exact]
    assert len(found) == 1, f"{exact!r} is on lines {found} of {path}"
    return found[0]


def the_problem(problems: list[str], fragment: str) -> str:
    """The one problem containing ``fragment``."""
    found = [p for p in problems if fragment in p]
    assert len(found) == 1, f"{fragment!r} in {problems}"
    return found[0]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
