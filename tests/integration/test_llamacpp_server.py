"""The `openai` adapter against a real llama.cpp OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentmesh.models import (
    Catalog,
    ContextOverflow,
    Gateway,
    ModelRequest,
    ModelSpec,
    ResponseFormat,
    Unavailable,
)

from .conftest import ROOT, free_port

pytestmark = pytest.mark.integration


def server_spec(base_url: str, **overrides: object) -> ModelSpec:
    fields: dict[str, object] = {
        "id": "gemma-server",
        "provider": "openai",
        "model": "gemma-3-270m",
        "base_url": base_url,
        "family": "gemma",
        "pricing": {"input": 0.1, "output": 0.2},
        "context_window": 1024,
        "max_output_tokens": 256,
        "params": {"json_format": "json_object+schema"},
    }
    fields.update(overrides)
    return ModelSpec.model_validate(fields)


@pytest.fixture
async def gateway(llama_server: str) -> AsyncIterator[Gateway]:
    async with Gateway(Catalog([server_spec(llama_server)]), environ={}) as gw:
        yield gw


async def test_chat_completion_returns_text_usage_and_cost(gateway: Gateway) -> None:
    request = ModelRequest.of("What is the capital of France?", max_tokens=16, temperature=0)
    response = await gateway.invoke("gemma-server", request)
    assert "Paris" in response.text
    assert response.usage.estimated is False
    assert response.usage.input_tokens > 5
    assert 1 <= response.usage.output_tokens <= 16
    assert response.finish_reason in ("stop", "length")
    assert response.cost_usd == pytest.approx(
        (response.usage.input_tokens * 0.1 + response.usage.output_tokens * 0.2) / 1e6
    )
    assert response.latency_ms > 0


async def test_streaming_delivers_deltas_then_the_whole_answer(gateway: Gateway) -> None:
    request = ModelRequest.of("What is the capital of France?", max_tokens=12, temperature=0)
    events = [e async for e in gateway.stream("gemma-server", request)]
    deltas = [e.delta for e in events if e.delta]
    final = events[-1].response
    assert len(deltas) >= 2, "tokens arrive one by one"
    assert final is not None
    assert final.text == "".join(deltas)
    # llama.cpp's server sends no usage in streams (measured, see LOCAL-MODEL.md): estimated.
    assert final.usage.estimated is True
    assert final.usage.output_tokens >= 1
    assert 0 < final.ttft_ms < final.latency_ms


async def test_schema_constrained_json(gateway: Gateway) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    request = ModelRequest.of(
        "Give the capital of France as JSON.",
        max_tokens=24,
        temperature=0,
        response_format=ResponseFormat(schema),
    )
    response = await gateway.invoke("gemma-server", request)
    assert isinstance(json.loads(response.text)["city"], str)


async def test_prompt_over_the_window_is_context_overflow(gateway: Gateway) -> None:
    with pytest.raises(ContextOverflow) as info:
        await gateway.invoke("gemma-server", ModelRequest.of("word " * 1500, max_tokens=8))
    assert info.value.status_code == 400
    assert not info.value.retryable
    assert info.value.fallback


async def test_refused_connection_is_unavailable() -> None:
    spec = server_spec(f"http://127.0.0.1:{free_port()}/v1")
    async with Gateway(Catalog([spec]), environ={}) as gateway:
        with pytest.raises(Unavailable) as info:
            await gateway.invoke("gemma-server", ModelRequest.of("hi", max_tokens=4))
    assert info.value.retryable


def test_cli_calls_the_server_through_the_shipped_catalog(llama_server: str) -> None:
    env = {**os.environ, "LLAMACPP_BASE_URL": llama_server}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentmesh",
            "models",
            "call",
            "--models",
            str(ROOT / "models" / "llamacpp-server.yaml"),
            "--model",
            "gemma-server",
            "--prompt",
            "What is the capital of France?",
            "--max-tokens",
            "16",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "gemma-server"
    assert data["text"]
    assert data["input_tokens"] > 0
    assert data["output_tokens"] > 0
    assert data["simulated"] is False


def test_bundled_model_file_is_reused(gguf_path: Path) -> None:
    from agentmesh.models.llamacpp import bundled_model_path

    before = gguf_path.stat().st_mtime_ns
    assert bundled_model_path() == gguf_path
    assert gguf_path.stat().st_mtime_ns == before
    assert gguf_path.stat().st_size > 200 * 1024 * 1024
