"""Prompt embeddings from the bundled Gemma 3 270M, in process (the `local` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentmesh.evaluation.embeddings import EmbeddingCache, embed_prompts, embedder_for
from agentmesh.models import ModelSpec

pytestmark = pytest.mark.integration


async def test_gemma_embeds_prompts_and_the_cache_serves_them_again(
    gguf_path: Path, tmp_path: Path
) -> None:
    spec = ModelSpec.model_validate(
        {
            "id": "gemma",
            "provider": "llamacpp",
            "model": "gemma-3-270m-q4_k_m",
            "model_path": str(gguf_path),
            "n_ctx": 512,
            "n_threads": 2,
        }
    )
    embedder = embedder_for(spec)
    prompts = [
        "What is 12 times 7? Show your working.",
        "What is 15 times 9? Show your working.",
        "Write a poem about the autumn sea and its grey light.",
    ]
    cache = EmbeddingCache(tmp_path, "probe", embedder.name)
    vectors = await embed_prompts(prompts, embedder, cache)
    await embedder.aclose()
    assert vectors.shape[0] == 3
    assert vectors.shape[1] >= 256
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    # the two arithmetic questions are nearer each other than either is to the poem
    assert unit[0] @ unit[1] > unit[0] @ unit[2]
    assert unit[0] @ unit[1] > unit[1] @ unit[2]
    again = await embed_prompts(prompts, embedder_for(spec), cache)  # no model loaded: cached
    assert np.array_equal(again, vectors)
