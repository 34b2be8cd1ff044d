"""``Gateway.embed`` with the bundled Gemma 3 270M: in process and behind llama.cpp's server."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agentmesh.models import Catalog, Gateway, ModelSpec

pytestmark = pytest.mark.integration

PROMPTS = (
    "What is 12 times 7? Show your working.",
    "What is 15 times 9? Show your working.",
    "Write a poem about the autumn sea and its grey light.",
)


def _cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _check(vectors: tuple[tuple[float, ...], ...]) -> None:
    assert len(vectors) == 3
    assert len(vectors[0]) >= 256
    # the two arithmetic questions are nearer each other than either is to the poem
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[1], vectors[2])


async def test_in_process_gemma_embeds_through_the_gateway(gguf_path: Path) -> None:
    spec = ModelSpec.model_validate(
        {
            "id": "gemma-embed",
            "provider": "llamacpp",
            "kind": "embeddings",
            "model": "gemma-3-270m-q4_k_m",
            "model_path": str(gguf_path),
            "n_ctx": 512,
            "n_threads": 2,
        }
    )
    async with Gateway(Catalog([spec])) as gateway:
        found = await gateway.embed("gemma-embed", PROMPTS)
    _check(found.vectors)
    assert not found.simulated
    assert found.usage.input_tokens > 3 * 5  # counted by the GGUF's tokenizer


async def test_llama_cpp_server_embeddings_through_the_openai_adapter(
    llama_embedding_server: str,
) -> None:
    spec = ModelSpec.model_validate(
        {
            "id": "gemma-server-embed",
            "provider": "openai",
            "kind": "embeddings",
            "model": "gemma-3-270m",
            "base_url": llama_embedding_server,
            "params": {"embed_batch": 1},  # the server's batches are wrong past the first text
        }
    )
    async with Gateway(Catalog([spec])) as gateway:
        found = await gateway.embed("gemma-server-embed", PROMPTS)
    _check(found.vectors)
    assert found.usage.input_tokens > 3 * 5
    assert not found.usage.estimated  # the server reports usage.prompt_tokens
