"""The semantic cache with the real bundled Gemma 3 270M embeddings (in process and served).

Measured here (mean-pooled Gemma 3 270M, see ``benchmarks/semantic_cache.py``):
paraphrases score 0.87-0.99 and near-misses (another number, a negation)
0.94-0.9996, so no threshold alone separates them; the guard (equal numbers and
negations) is what keeps near-misses out, and a threshold of 0.85 lets these
paraphrases hit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from agentmesh.models import Catalog, Gateway, ModelRequest, ModelSpec
from agentmesh.resilience import Call, ResilientCaller
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing import scripted_model

pytestmark = pytest.mark.integration

PARAPHRASES = (
    ("How do I reset my password?", "How can I reset my password?"),
    ("How long does shipping to Canada take?", "How many days does delivery to Canada take?"),
    ("What are the opening hours of the store?", "When is the store open?"),
)
NEAR_MISSES = (
    ("Refund 12 euros to my card.", "Refund 120 euros to my card."),
    ("Book a table for 2 people at 7 pm.", "Book a table for 4 people at 7 pm."),
    ("Is the store open on Sunday?", "Is the store not open on Sunday?"),
)
THRESHOLD = 0.85


def _cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _embedder(which: str, gguf_path: Path, request: pytest.FixtureRequest) -> ModelSpec:
    fields: dict[str, Any] = {"id": "gemma-embed", "kind": "embeddings", "model": "gemma"}
    if which == "server":
        base_url = request.getfixturevalue("llama_embedding_server")
        server = {"provider": "openai", "base_url": base_url, "params": {"embed_batch": 1}}
        return ModelSpec.model_validate({**fields, **server})
    local = {"model_path": str(gguf_path), "n_ctx": 512, "n_threads": 2}
    return ModelSpec.model_validate({**fields, "provider": "llamacpp", **local})


async def _served(caller: ResilientCaller, prompt: str, guard: bool) -> bool:
    setting = {"model": "gemma-embed", "threshold": THRESHOLD, "guard": guard}
    call = Call(
        RouteRequest(prompt=prompt, node="support"),
        ModelRequest.of(prompt),
        routing=Policy(semantic_cache=setting),
    )
    return (await caller.call(call)).cached


@pytest.mark.parametrize("which", ["in_process", "server"])
async def test_paraphrases_hit_and_near_misses_do_not_with_gemma_embeddings(
    which: str, gguf_path: Path, request: pytest.FixtureRequest
) -> None:
    embedder = _embedder(which, gguf_path, request)
    chat = scripted_model("desk", reply="answer to: {prompt}")
    catalog = Catalog([chat, embedder])
    async with Gateway(catalog) as gateway:
        pairs = [*PARAPHRASES, *NEAR_MISSES]
        found = await gateway.embed("gemma-embed", [t for pair in pairs for t in pair])
        vectors = found.vectors
        similarity = [_cosine(vectors[2 * i], vectors[2 * i + 1]) for i in range(len(pairs))]
        paraphrase, near = similarity[: len(PARAPHRASES)], similarity[len(PARAPHRASES) :]
        assert min(paraphrase) >= THRESHOLD
        # what makes the guard necessary: Gemma 270M rates near-misses as close as paraphrases
        assert max(near) > min(paraphrase)
        for guard in (True, False):
            caller = ResilientCaller(Router(catalog), gateway)
            hits = []
            for stored, asked in pairs:
                await _served(caller, stored, guard)
                hits.append(await _served(caller, asked, guard))
            if guard:
                assert hits == [True] * len(PARAPHRASES) + [False] * len(NEAR_MISSES)
            else:  # without the guard some near-miss would get another prompt's answer
                assert any(hits[len(PARAPHRASES) :])
