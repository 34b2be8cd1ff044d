"""The embeddings contract: ``kind: embeddings`` entries, ``Gateway.embed``, kept out of routing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.models import (
    BadRequest,
    Catalog,
    CatalogError,
    Gateway,
    MalformedResponse,
    ModelRequest,
    ModelSpec,
    load_catalog,
)
from agentmesh.models.scripted import SIMULATED_DIMENSIONS, bag_of_words
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing import scripted_model

from .test_tracing_support import span_fixture

EMBED = ModelSpec.model_validate(
    {"id": "sim-embed", "provider": "scripted", "model": "hash-bow", "kind": "embeddings"}
)
SERVER = ModelSpec.model_validate(
    {
        "id": "emb",
        "provider": "openai",
        "kind": "embeddings",
        "model": "gemma-embed",
        "base_url": "http://emb.test/v1",
        "pricing": {"input": 0.02, "output": 0},
    }
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def _cosine(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_scripted_embeddings_are_deterministic_simulated_and_traced(spans) -> None:
    async with Gateway(Catalog([EMBED, scripted_model("chat")])) as gateway:
        found = await gateway.embed("sim-embed", ["Refund order 12", "refund ORDER 12", "a whale"])
    assert found.simulated
    assert found.usage.estimated
    assert found.dimensions == SIMULATED_DIMENSIONS
    assert found.vectors[0] == found.vectors[1] == tuple(bag_of_words("refund order 12"))
    assert math.isclose(_cosine(found.vectors[0], found.vectors[0]), 1.0)
    assert _cosine(found.vectors[0], found.vectors[2]) == 0.0
    (span,) = [s for s in spans.get_finished_spans() if s.name.startswith("embeddings")]
    attrs = dict(span.attributes or {})
    assert span.name == "embeddings hash-bow"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.embeddings.dimension.count"] == SIMULATED_DIMENSIONS
    assert attrs["agentmesh.model_id"] == "sim-embed"
    assert attrs["agentmesh.simulated"] is True
    assert attrs["gen_ai.usage.input_tokens"] == found.usage.input_tokens > 0


async def test_a_chat_model_is_refused_for_embeddings(spans) -> None:
    async with Gateway(Catalog([EMBED, scripted_model("chat")])) as gateway:
        with pytest.raises(BadRequest, match=r"^chat: is a chat model \(kind: chat\)"):
            await gateway.embed("chat", ["x"])


async def test_openai_compatible_embeddings_are_sorted_by_index_and_costed(spans) -> None:
    bodies: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        assert request.url.path == "/v1/embeddings"
        data = [{"index": i, "embedding": [float(i), 1.0]} for i in range(len(body["input"]))]
        usage = {"prompt_tokens": 1000, "total_tokens": 1000}
        return httpx.Response(200, json={"data": data[::-1], "model": "served", "usage": usage})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    async with http, Gateway(Catalog([SERVER]), http=http) as gateway:
        found = await gateway.embed("emb", ["a", "b", "c"])
    wanted = {"model": "gemma-embed", "input": ["a", "b", "c"], "encoding_format": "float"}
    assert bodies == [wanted]
    assert found.vectors == ((0.0, 1.0), (1.0, 1.0), (2.0, 1.0))
    assert found.served_model == "served"
    assert (found.usage.input_tokens, found.usage.estimated) == (1000, False)
    assert math.isclose(found.cost_usd, 0.02 / 1000)
    (span,) = spans.get_finished_spans()
    assert dict(span.attributes or {})["agentmesh.cost_usd"] == found.cost_usd


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"data": [{"index": 0, "embedding": [1.0]}]}, "1 embeddings for 2 inputs"),
        ({"data": [{"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": []}]}, "sizes"),
        ({"data": [{"index": 0, "embedding": "x"}, {"index": 1}]}, "no embeddings"),
        ({"object": "list"}, "no embeddings in response"),
    ],
)
async def test_malformed_embeddings_answers_are_classified(
    answer: dict[str, object], problem: str
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    http = httpx.AsyncClient(transport=transport)
    async with http, Gateway(Catalog([SERVER]), http=http) as gateway:
        with pytest.raises(MalformedResponse, match=problem):
            await gateway.embed("emb", ["a", "b"])


async def test_the_router_never_picks_an_embeddings_model_for_chat() -> None:
    cheap_embedder = EMBED.model_copy(update={"tier": 1})
    chat = scripted_model("chat", tier=3, fields={"pricing": {"input": 5, "output": 9}})
    catalog = Catalog([cheap_embedder, chat])
    router = Router(catalog)
    decision = await router.route(RouteRequest(prompt="hello"), Policy(strategy="cheapest"))
    assert decision.chosen == "chat"
    assert "sim-embed" not in {e.model for e in decision.excluded}  # not even a candidate
    assert [c.model for c in decision.candidates] == ["chat"]
    assert catalog.by_tier() == (chat,)
    assert catalog.embedding_specs == (cheap_embedder,)
    with pytest.raises(ValueError, match="at least one model of kind chat"):
        Router(Catalog([EMBED]))


def test_the_kind_is_validated_in_catalog_files(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {id: e, provider: scripted, model: e, kind: vectors}\n")
    with pytest.raises(CatalogError, match=r"models.yaml:2: model 'e' \(entry 1\): kind"):
        load_catalog(path)


async def test_token_level_embeddings_of_a_server_without_pooling_are_mean_pooled() -> None:
    tokens = [[1.0, 4.0], [3.0, 0.0]]  # llama-cpp-python's server for a GGUF without pooling
    answer = {"data": [{"index": 0, "embedding": tokens}], "usage": {"prompt_tokens": 2}}
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=answer))
    )
    async with http, Gateway(Catalog([SERVER]), http=http) as gateway:
        found = await gateway.embed("emb", ["two tokens"])
    assert found.vectors == ((2.0, 2.0),)


async def test_embed_batch_splits_the_texts_into_requests_of_that_size() -> None:
    sizes: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        texts = json.loads(request.content)["input"]
        sizes.append(len(texts))
        data = [{"index": i, "embedding": [float(len(t))]} for i, t in enumerate(texts)]
        return httpx.Response(200, json={"data": data, "usage": {"prompt_tokens": len(texts)}})

    one_by_one = SERVER.model_copy(update={"params": {"embed_batch": 2}})
    http = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    async with http, Gateway(Catalog([one_by_one]), http=http) as gateway:
        found = await gateway.embed("emb", ["a", "bb", "ccc"])
    assert sizes == [2, 1]
    assert found.vectors == ((1.0,), (2.0,), (3.0,))
    assert found.usage.input_tokens == 3


async def test_an_embeddings_model_is_refused_for_chat() -> None:
    async with Gateway(Catalog([EMBED, scripted_model("chat")])) as gateway:
        with pytest.raises(BadRequest, match=r"^sim-embed: is an embeddings model"):
            await gateway.invoke("sim-embed", ModelRequest.of("hi"))
        with pytest.raises(BadRequest, match=r"^sim-embed: is an embeddings model"):
            async for _ in gateway.stream("sim-embed", ModelRequest.of("hi")):
                pass
