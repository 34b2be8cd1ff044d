"""Examples on the real embedded model, and agentmesh graphs inside LangGraph's dev server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import free_port, require

ROOT = Path(__file__).resolve().parents[2]


def embedded(example: str) -> subprocess.CompletedProcess[str]:
    """``examples/<example>.py`` run on the embedded model; it must exit 0."""
    require(
        importlib.util.find_spec("llama_cpp") is not None,
        "the embedded model needs the 'local' extra (llama-cpp-python)",
    )
    out = subprocess.run(
        [sys.executable, f"examples/{example}.py", "--models", "models/local.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out


def test_support_triage_runs_end_to_end_on_the_embedded_model() -> None:
    out = embedded("support_triage")
    assert "category: " in out.stdout
    assert "SIMULATED" not in out.stdout, "a real model answered"
    assert "gemma" in out.stdout


def test_math_cascade_judges_the_embedded_model_s_answer() -> None:
    out = embedded("math_cascade")
    assert "SIMULATED" not in out.stdout, "a real model answered"
    rounds = [line for line in out.stdout.splitlines() if line.startswith("round ")]
    # the judge read gemma's real working; with one model there is no tier to climb
    assert rounds[0].startswith(("round 1: gemma: passed", "round 1: gemma: rejected")), rounds
    if "rejected" in rounds[0]:
        assert rounds[1:] == ["round 2: -: gave_up: no stronger model to escalate to after round 1"]
    else:
        assert len(rounds) == 1, rounds


@pytest.fixture(scope="module")
def langgraph_server() -> Iterator[str]:
    require(
        importlib.util.find_spec("langgraph_api") is not None,
        "LangGraph's dev server needs the 'ecosystem' extra (langgraph-cli[inmem])",
    )
    port = free_port()
    env = {
        **os.environ,
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "AGENTMESH_MODELS": str(ROOT / "models/sim.yaml"),
    }
    command = [
        str(Path(sys.executable).with_name("langgraph")),
        "dev",
        "--config",
        "langgraph.json",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            assert server.poll() is None, f"langgraph dev exited: {server.stderr.read()[-2000:]}"  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "langgraph dev did not start within 90 s"
            time.sleep(0.25)  # polling a starting server, not fixing a race
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_an_agentmesh_graph_runs_inside_langgraph_s_dev_server(langgraph_server: str) -> None:
    from langgraph_sdk import get_client

    diff = (ROOT / "prompts/review_code.j2").read_text().split("diff: |")[1]

    async def run() -> dict[str, object]:
        client = get_client(url=langgraph_server)
        graphs = {a["graph_id"] for a in await client.assistants.search(limit=20)}
        assert graphs >= set(json.loads((ROOT / "langgraph.json").read_text())["graphs"])
        thread = await client.threads.create()
        state = await client.runs.wait(thread["thread_id"], "code_review", input={"input": diff})
        assert isinstance(state, dict)
        return state

    state = asyncio.run(run())
    steps = state["steps"]
    assert isinstance(steps, list)
    reviews = [(s["model"], s["escalation_level"]) for s in steps if s["node"] == "review"]
    assert reviews == [("sim-nano", 0), ("sim-mini", 1), ("sim-4o", 2)]
    results = state["results"]
    assert isinstance(results, dict)
    assert "injection" in results["review"][""]["text"]


def test_a_second_run_on_a_thread_of_the_dev_server_starts_afresh(langgraph_server: str) -> None:
    from langgraph_sdk import get_client

    diff = (ROOT / "prompts/review_code.j2").read_text().split("diff: |")[1]

    async def twice() -> list[dict[str, object]]:
        client = get_client(url=langgraph_server)
        thread = await client.threads.create()
        states = []
        for _ in range(2):
            state = await client.runs.wait(
                thread["thread_id"], "code_review", input={"input": diff}
            )
            assert isinstance(state, dict)
            states.append(state)
        return states

    first, second = asyncio.run(twice())
    assert isinstance(first["steps"], list)
    assert isinstance(second["steps"], list)
    assert len(first["steps"]) == len(second["steps"]) == 6, "not 6 then 12"
    assert second["cost_usd"] == pytest.approx(first["cost_usd"]), "not doubled"
    assert first["run_id"] != second["run_id"]


def test_a_failing_node_reaches_the_dev_server_s_client_with_its_type_and_message(
    langgraph_server: str,
) -> None:
    from langgraph_sdk import get_client

    async def failing() -> object:
        client = get_client(url=langgraph_server)
        thread = await client.threads.create()
        return await client.runs.wait(
            thread["thread_id"],
            "support_triage",
            input={"input": "Charged twice for order A-1042.", "budget_usd": 1e-9},
            raise_error=False,
        )

    answer = asyncio.run(failing())
    assert isinstance(answer, dict)
    error = answer["__error__"]
    assert error["error"] == "NodeFailed"
    assert error["message"].startswith("node 'triage': budget_exceeded: budget run:")
    assert "An internal error occurred" not in error["message"]
