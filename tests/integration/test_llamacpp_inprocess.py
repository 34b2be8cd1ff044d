"""The in-process `llamacpp` adapter with the real bundled Gemma 3 270M model."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from agentmesh.models import (
    ContextOverflow,
    Gateway,
    LlamaCppClient,
    ModelRequest,
    ResponseFormat,
    estimate_tokens,
    load_catalog,
)

from .conftest import ROOT

pytestmark = pytest.mark.integration

LOCAL = ROOT / "models" / "local.yaml"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(gguf_path: Path) -> AsyncIterator[Gateway]:
    async with Gateway(load_catalog(LOCAL)) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> LlamaCppClient:
    found = gateway.client("gemma")
    assert isinstance(found, LlamaCppClient)
    return found


@pytest.mark.asyncio(loop_scope="module")
async def test_completion_style_answer(gateway: Gateway) -> None:
    request = ModelRequest.of("What is the capital of France?", max_tokens=16)
    response = await gateway.invoke("gemma", request)
    assert "Paris" in response.text
    assert response.usage.estimated is False
    assert response.usage.output_tokens >= 1
    assert response.cost_usd == 0.0
    assert response.provider == "llamacpp"


@pytest.mark.asyncio(loop_scope="module")
async def test_stream_matches_its_final_text(gateway: Gateway) -> None:
    request = ModelRequest.of("What is the capital of France?", max_tokens=12)
    events = [e async for e in gateway.stream("gemma", request)]
    deltas = "".join(e.delta for e in events)
    final = events[-1].response
    assert final is not None
    assert final.text == deltas.strip()
    assert final.usage.output_tokens >= 1
    assert final.ttft_ms <= final.latency_ms


@pytest.mark.asyncio(loop_scope="module")
async def test_grammar_constrained_json_always_parses(gateway: Gateway) -> None:
    schema = {
        "type": "object",
        "properties": {"country": {"type": "string"}, "city": {"type": "string"}},
        "required": ["country", "city"],
    }
    request = ModelRequest.of(
        "Capital of France as JSON.", max_tokens=32, response_format=ResponseFormat(schema)
    )
    data = json.loads((await gateway.invoke("gemma", request)).text)
    assert list(data) == ["country", "city"], "keys in the schema's order, not sorted"
    any_json = await gateway.invoke(
        "gemma",
        ModelRequest.of(
            "A JSON object about Paris.", max_tokens=32, response_format=ResponseFormat()
        ),
    )
    assert isinstance(json.loads(any_json.text), dict)


@pytest.mark.asyncio(loop_scope="module")
async def test_prompt_over_n_ctx_is_context_overflow(gateway: Gateway) -> None:
    with pytest.raises(ContextOverflow):
        await gateway.invoke("gemma", ModelRequest.of("word " * 5000, max_tokens=8))


def test_token_estimate_is_close_to_the_real_tokenizer(client: LlamaCppClient) -> None:
    prose = (
        "Routing every step of a workflow to the cheapest model that can do it well "
        "saves money without losing quality. When a provider fails, the request moves "
        "to another model, and the trace records which model answered, what it cost, "
        "and why it was chosen. Budgets are enforced per run and globally."
    )
    real = len(client._llm().tokenize(prose.encode(), add_bos=False))
    estimate = estimate_tokens(prose)
    assert abs(estimate - real) / real < 0.2, (estimate, real)


def test_cli_on_the_local_catalog() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentmesh",
            "models",
            "call",
            "--models",
            str(LOCAL),
            "--model",
            "gemma",
            "--prompt",
            "What is the capital of France?",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "Paris" in data["text"]
    assert data["model"] == "gemma"
    assert data["simulated"] is False


@pytest.mark.asyncio(loop_scope="module")
async def test_a_call_cut_off_mid_generation_does_not_disturb_the_next(
    gateway: Gateway, client: LlamaCppClient
) -> None:
    """A deadline cancels the caller; the generation stops and the next call runs alone."""
    # ~11 s for its 400 tokens here: every cut below lands inside the generation
    long = ModelRequest.of("Count from 1 to 500, one number per line:\n1\n2\n3\n", max_tokens=400)
    for cut_after_s in (0.05, 0.5, 1.5):  # in the prompt, early and later in the generation
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(cut_after_s):
                await gateway.invoke("gemma", long)
        answer = await gateway.invoke(
            "gemma", ModelRequest.of("What is the capital of France?", max_tokens=16)
        )
        assert "Paris" in answer.text
    assert not client._run_lock.locked()
