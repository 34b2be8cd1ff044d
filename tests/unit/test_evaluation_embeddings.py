"""Embeddings features: the server embedder (mocked HTTP), the disk cache, the ridge router."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from agentmesh.evaluation.data import Row
from agentmesh.evaluation.embedding_router import fit_embedding_router
from agentmesh.evaluation.embeddings import (
    EmbeddingCache,
    GatewayEmbedder,
    embed_prompts,
    embedder_for,
)
from agentmesh.evaluation.metrics import apgr
from agentmesh.models import ModelError, ModelSpec

SERVER = ModelSpec.model_validate(
    {"id": "emb", "provider": "openai", "model": "gemma-embed", "base_url": "http://emb.test/v1"}
)


def _vector(text: str) -> list[float]:
    return [float(len(text)), float(text.count("a")), 1.0]


def _transport(calls: list[dict[str, object]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        assert request.url.path == "/v1/embeddings"
        data = [{"index": i, "embedding": _vector(t)} for i, t in enumerate(body["input"])]
        return httpx.Response(200, json={"data": list(reversed(data))})  # any order: by index

    return httpx.MockTransport(handle)


async def test_server_embeddings_are_cached_per_dataset(tmp_path: Path) -> None:
    calls: list[dict[str, object]] = []
    async with httpx.AsyncClient(transport=_transport(calls)) as client:
        embedder = embedder_for(SERVER, client)
        assert embedder.name == "server:gemma-embed"
        prompts = [f"prompt {'a' * i}" for i in range(5)] + ["prompt "]  # one repeated
        cache = EmbeddingCache(tmp_path, "mmlu", embedder.name)
        vectors = await embed_prompts(prompts, embedder, cache, batch=2)
        assert vectors.shape == (6, 3)
        assert vectors[3].tolist() == _vector(prompts[3])
        assert vectors[5].tolist() == vectors[0].tolist()
        assert [len(c["input"]) for c in calls] == [2, 2, 1]  # type: ignore[arg-type]
        assert cache.path.name == "mmlu.server_gemma-embed.npz"
        again = await embed_prompts(
            prompts, embedder, EmbeddingCache(tmp_path, "mmlu", embedder.name)
        )
        assert len(calls) == 3  # everything came from the file
        assert again.tolist() == vectors.tolist()
        await embed_prompts(["prompt "], embedder, EmbeddingCache(tmp_path, "gsm8k", embedder.name))
        assert len(calls) == 4  # another dataset, another file


async def test_a_failing_server_and_unknown_providers_are_named() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(501, text="no embeddings"))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(ModelError, match=r"^emb: .*HTTP 501"):
            await GatewayEmbedder(SERVER, client).embed(["x"])
    claude = ModelSpec.model_validate({"id": "c", "provider": "anthropic", "model": "claude"})
    with pytest.raises(ValueError, match=r"model 'c': provider 'anthropic' serves no embeddings"):
        embedder_for(claude)
    local = ModelSpec.model_validate({"id": "g", "provider": "llamacpp", "model": "gemma"})
    assert isinstance(embedder_for(local), GatewayEmbedder)  # loads nothing until used


async def test_scripted_embeddings_are_simulated_bags_of_words() -> None:
    scripted = ModelSpec.model_validate({"id": "sim", "provider": "scripted", "model": "sim"})
    embedder = embedder_for(scripted)
    assert embedder.name == "scripted:sim"
    a, b, c = await embedder.embed(["the red fox", "The red fox!", "a blue whale"])
    assert a == b  # same words, same vector
    assert abs(sum(x * y for x, y in zip(a, c, strict=True))) < 1e-9  # no shared word
    await embedder.aclose()


def _rows(n: int, seed: int) -> tuple[np.ndarray, list[Row]]:
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.4
    # like a language model's embeddings: a shared component plus variation
    vectors = 5.0 + rng.normal(size=(n, 8))
    vectors[:, 0] += hard * 2.0  # one direction tells hard prompts apart
    rows = [
        Row(f"p{i}", bool(not h) if rng.random() < 0.9 else bool(h), rng.random() < 0.9)
        for i, h in enumerate(hard)
    ]
    return vectors, rows


def test_the_ridge_router_learns_the_direction_and_knows_its_domain() -> None:
    vectors, rows = _rows(300, 1)
    router = fit_embedding_router(vectors, rows)
    assert set(router.cv) == {0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0}
    test_vectors, test_rows = _rows(200, 2)
    scores = router.score(test_vectors).tolist()
    weak = [float(bool(r.weak_ok)) for r in test_rows]
    strong = [float(bool(r.strong_ok)) for r in test_rows]
    assert apgr(scores, weak, strong) > 0.7
    inside = router.distance(test_vectors)
    assert float(np.mean(inside > 1)) < 0.1
    far = test_vectors.copy()
    far[:, 1:4] = -far[:, 1:4]  # another region of the space
    assert bool((router.distance(far) > 1).all())
    with pytest.raises(ValueError, match="3 vectors for 2 rows"):
        fit_embedding_router(vectors[:3], rows[:2])
