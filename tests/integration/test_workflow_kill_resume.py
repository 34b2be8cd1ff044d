"""A workflow process killed with SIGKILL mid-run resumes in another process.

Real processes and a real SQLite checkpoint file: the first ``agentmesh run``
is killed as soon as it reports its second node finished; a second process
resumes the run by id and must not call the models of nodes that had
finished (checked on the second process's own trace: its ``chat`` spans).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentmesh.tracing import load_spans
from tests.integration.conftest import FOUR_STEPS, SLOW_CATALOG


def agentmesh(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentmesh", *args]


def test_a_sigkilled_run_resumes_in_another_process_without_repeating_calls(
    tmp_path: Path,
) -> None:
    catalog, graph = tmp_path / "models.yaml", tmp_path / "graph.yaml"
    catalog.write_text(SLOW_CATALOG)
    graph.write_text(FOUR_STEPS)
    checkpoint = f"sqlite:{tmp_path / 'runs.db'}"
    common = ["--models", str(catalog), "--checkpoint", checkpoint]
    first = subprocess.Popen(
        agentmesh("run", str(graph), *common, "--run-id", "r1", "--input", "q"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert first.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        for line in first.stderr:  # progress: one line per finished step
            seen.append(line)
            if line.startswith("✓ n2 "):
                first.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, f"no progress: {seen}"
    finally:
        first.kill()
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, seen

    trace = tmp_path / "resume.jsonl"
    second = subprocess.run(
        agentmesh("run", str(graph), *common, "--resume", "r1", "--json", "--trace", str(trace)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["status"] == "ok"
    assert result["resumed"] is True
    assert [s["node"] for s in result["steps"]] == ["n1", "n2", "n3", "n4"]
    called = [
        s.attributes.get("agentmesh.node.name")
        for s in load_spans(trace)
        if s.name.startswith("chat ")
    ]
    assert "n1" not in called, f"n1 finished before the kill and must not be called again: {called}"
    assert called[-2:] == ["n3", "n4"]
    assert len(called) <= 3, "at most the step running at the kill (n2's checkpoint) is redone"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # prompts/ is found from here
