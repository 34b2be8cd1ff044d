"""``POST /v1/embeddings`` in ``agentmesh serve``, through the unmodified ``openai`` SDK."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from agentmesh.cli import main
from agentmesh.models.scripted import SIMULATED_DIMENSIONS, bag_of_words
from agentmesh.server import ServeConfig, create_app
from tests.unit.test_tracing_support import span_fixture

CHAT = {
    "id": "chat",
    "provider": "scripted",
    "model": "chat",
    "pricing": {"input": 1.0, "output": 2.0},
    "capabilities": ["json", "tools", "streaming"],
}
EMBED = {
    "id": "embed",
    "provider": "scripted",
    "kind": "embeddings",
    "model": "hash-bow",
    "tier": 1,
    "pricing": {"input": 100.0, "output": 0},
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def _models(tmp_path: Path, *entries: dict[str, Any]) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": list(entries or (CHAT, EMBED))}))
    return str(path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeConfig(models=_models(tmp_path)))) as client:
        yield client


def _sdk(client: TestClient, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key=key, http_client=client, max_retries=0
    )


def test_the_sdk_gets_vectors_usage_and_cost(served: TestClient, spans) -> None:
    raw = _sdk(served).embeddings.with_raw_response.create(
        model="embed", input=["Refund order 12", "a blue whale"]
    )  # the SDK asks for base64 and decodes it
    answer = raw.parse()
    assert [d.index for d in answer.data] == [0, 1]
    assert answer.data[0].embedding == pytest.approx(bag_of_words("Refund order 12"), abs=1e-6)
    assert len(answer.data[1].embedding) == SIMULATED_DIMENSIONS
    assert answer.model == "embed"
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0
    assert raw.headers["x-agentmesh-model"] == "embed"
    assert raw.headers["x-agentmesh-simulated"] == "true"
    assert float(raw.headers["x-agentmesh-cost-usd"]) == pytest.approx(
        answer.usage.prompt_tokens * 100.0 / 1e6
    )
    names = {s.name for s in spans.get_finished_spans()}
    assert {"POST /v1/embeddings", "embeddings hash-bow"} <= names


def test_float_and_base64_encodings_and_a_single_string(served: TestClient) -> None:
    floats = served.post("/v1/embeddings", json={"model": "embed", "input": "hello world"})
    encoded = served.post(
        "/v1/embeddings",
        json={"model": "embed", "input": "hello world", "encoding_format": "base64"},
    )
    vector = floats.json()["data"][0]["embedding"]
    packed = base64.b64decode(encoded.json()["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(vector)}f", packed)) == pytest.approx(vector, abs=1e-6)
    assert floats.json()["object"] == "list"
    assert floats.json()["data"][0]["object"] == "embedding"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "nope", "input": "x"}, 404, "model_not_found"),
        ({"model": "chat", "input": "x"}, 400, "model_not_embeddings"),
        ({"model": "auto", "input": "x"}, 400, "model_not_embeddings"),
        ({"model": "embed", "input": [1, 2, 3]}, 400, "invalid_value"),
        ({"model": "embed", "input": ""}, 400, None),
        ({"model": "embed", "input": "x", "encoding_format": "int8"}, 400, "invalid_value"),
        ({"model": "embed", "input": "x", "dimensions": 3}, 400, "invalid_value"),
    ],
)
def test_errors_are_openai_shaped(
    served: TestClient, body: dict[str, Any], status: int, code: str | None
) -> None:
    response = served.post("/v1/embeddings", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "x-request-id" in response.headers


def test_an_embeddings_model_is_listed_but_refuses_chat(served: TestClient) -> None:
    listed = {m.id: m.owned_by for m in _sdk(served).models.list()}
    assert listed["embed"] == "scripted"
    with pytest.raises(openai.BadRequestError) as refused:
        _sdk(served).chat.completions.create(
            model="embed", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "model_not_chat"
    auto = _sdk(served).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert auto.model == "chat"  # the router never picks the (cheaper) embeddings model


def test_a_failing_embeddings_model_answers_its_status(tmp_path: Path) -> None:
    down = {**EMBED, "behavior": {"down": True, "fail_with": "timeout"}}
    with TestClient(create_app(ServeConfig(models=_models(tmp_path, CHAT, down)))) as client:
        response = client.post("/v1/embeddings", json={"model": "embed", "input": "x"})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"


def test_keys_gate_embeddings_and_pay_for_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:{tmp_path / 'keys.db'}"
    config = ServeConfig(models=_models(tmp_path), keys=url)

    def create(*options: str) -> str:
        assert main(["keys", "create", "--keys", url, "--json", *options]) == 0
        return str(json.loads(capsys.readouterr().out)["key"])

    with TestClient(create_app(config)) as client:
        with pytest.raises(openai.AuthenticationError):
            _sdk(client, "am-nope.nope").embeddings.create(model="embed", input="x")
        chat_only = create("--models", "chat")
        with pytest.raises(openai.PermissionDeniedError):
            _sdk(client, chat_only).embeddings.create(model="embed", input="x")
        budgeted = _sdk(client, create("--budget", "0.001"))
        spent, refused = 0.0, None
        for _ in range(100):
            try:
                raw = budgeted.embeddings.with_raw_response.create(model="embed", input="a b c d")
            except openai.RateLimitError as exc:
                refused = exc
                break
            spent += float(raw.headers["x-agentmesh-cost-usd"])
    assert refused is not None
    assert refused.code == "budget_exceeded"
    assert 0 < spent <= 0.001
    assert main(["keys", "list", "--keys", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert max(k["spent_usd"] for k in listed) == pytest.approx(spent)
