"""Token streaming out of a graph with the real Gemma 3 270M: llama.cpp's server and in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage

from agentmesh.graph import Runtime, Workflow, compile_graph, run_graph
from agentmesh.graph.streaming import Token
from agentmesh.models import load_catalog

from .conftest import ROOT

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"


def one_node() -> Workflow:
    wf = Workflow("one")
    wf.executor(
        "answer",
        prompt="execute_step",
        inputs={"question": "$input", "step": "Name the city."},
        max_output_tokens=24,
    )
    return wf


async def streamed(runtime: Runtime) -> tuple[list[tuple[BaseMessage, dict[str, Any]]], str]:
    graph = compile_graph(one_node().spec(), runtime)
    chunks = [c async for c in graph.astream({"input": QUESTION}, stream_mode="messages")]
    tokens: list[Token] = []
    result = await run_graph(one_node().spec(), runtime, QUESTION, on_token=tokens.append)
    assert result.status == "ok", result.error
    assert "".join(t.text for t in tokens) == result.output
    assert result.steps[0]["ttft_ms"] > 0
    return chunks, result.output or ""


async def test_the_llama_cpp_server_streams_a_graph_node(
    llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLAMACPP_BASE_URL", llama_server)
    catalog = load_catalog(ROOT / "models" / "llamacpp-server.yaml")
    async with Runtime.open(catalog) as runtime:
        chunks, _ = await streamed(runtime)
    assert len(chunks) >= 2, "tokens arrive one by one"
    assert "".join(str(m.content) for m, _ in chunks).strip()
    assert {(meta["agentmesh_model"], meta["langgraph_node"]) for _, meta in chunks} == {
        ("gemma-server", "answer")
    }


def test_run_stream_on_the_llama_cpp_server(llama_server: str, tmp_path: Path) -> None:
    graph = tmp_path / "one.yaml"
    graph.write_text(
        "name: one\nnodes:\n  answer:\n    kind: executor\n    prompt: execute_step\n"
        "    inputs: {question: $input, step: Name the city.}\n    max_output_tokens: 24\n"
    )
    env = {**os.environ, "LLAMACPP_BASE_URL": llama_server}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentmesh",
            "run",
            str(graph),
            "--models",
            str(ROOT / "models" / "llamacpp-server.yaml"),
            "--input",
            QUESTION,
            "--stream",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the answer was streamed to stdout"
    assert done.stdout.endswith("\n")
    assert "answer executor ok: gemma-server" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_in_process_model_streams_a_graph_node(gguf_path: Path) -> None:
    async with Runtime.open(load_catalog(ROOT / "models" / "local.yaml")) as runtime:
        chunks, output = await streamed(runtime)
    assert len(chunks) >= 2, "tokens arrive one by one"
    assert {meta["agentmesh_model"] for _, meta in chunks} == {"gemma"}
    assert output.strip()
