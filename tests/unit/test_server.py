"""``agentmesh serve`` in process: the unmodified ``openai`` SDK, LangChain and raw HTTP.

The app runs under Starlette's TestClient (sync; lifespan included) or httpx's
ASGI transport (async), so no socket is opened; the same clients against a
real uvicorn on loopback are in ``tests/integration/test_serve.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from langchain_openai import ChatOpenAI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from starlette.testclient import TestClient

from agentmesh.server import ServeConfig, build_app, create_app, open_service
from tests.unit.test_tracing_support import span_fixture

ROOT = Path(__file__).resolve().parents[2]
SIM = str(ROOT / "models" / "sim.yaml")
GRAPHS = str(ROOT / "graphs")


def _model(model_id: str, tier: int = 1, **behavior: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "provider": "scripted",
        "model": model_id,
        "tier": tier,
        "pricing": {"input": 1.0, "output": 2.0},
        "context_window": 4000,
        "max_output_tokens": 256,
        "capabilities": ["json", "tools", "streaming"],
        "behavior": {"reply": f"[simulated {model_id}] answer to: {{prompt}}", **behavior},
    }


def _catalog(tmp_path: Path, *models: dict[str, Any]) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": list(models)}))
    return str(path)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


@pytest.fixture
def sim() -> Iterator[TestClient]:
    with TestClient(create_app(ServeConfig(models=SIM, graphs=GRAPHS))) as client:
        yield client


def _sdk(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=client, max_retries=0
    )


def test_models_lists_catalog_ids_auto_routes_and_graphs(tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text("default: fast\npolicies:\n  fast: {strategy: least_latency}\n")
    config = ServeConfig(models=SIM, graphs=GRAPHS, policies=str(policies))
    with TestClient(create_app(config)) as client:
        ids = [m.id for m in _sdk(client).models.list()]
        one = _sdk(client).models.retrieve("route:fast")
    assert ids[:6] == ["sim-nano", "sim-mini", "sim-haiku", "sim-4o", "sim-sonnet", "sim-opus"]
    assert {"auto", "route:fast", "graph:support_triage", "graph:research_report"} <= set(ids)
    assert one.id == "route:fast"


def test_sdk_completion_says_which_model_served_and_why(sim: TestClient) -> None:
    raw = _sdk(sim).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Name a colour."}], user="u-1"
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == (
        "[simulated sim-nano] Short answer to: Name a colour."
    )
    assert completion.model == "sim-nano"
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    headers = raw.headers
    assert headers["x-agentmesh-model"] == "sim-nano"
    assert headers["x-agentmesh-route"].startswith("cheapest: cheapest capable: sim-nano")
    assert float(headers["x-agentmesh-cost-usd"]) > 0
    assert headers["x-agentmesh-attempts"] == "1"
    assert headers["x-agentmesh-simulated"] == "true"
    assert len(headers["x-request-id"]) == 32


def test_a_catalog_id_serves_that_model_and_falls_back_upwards_only(tmp_path: Path) -> None:
    models = _catalog(
        tmp_path,
        _model("weak", 1),
        _model("chosen", 2, down=True),
        _model("peer", 2),
        _model("strong", 3),
    )
    with TestClient(create_app(ServeConfig(models=models))) as client:
        raw = _sdk(client).chat.completions.with_raw_response.create(
            model="chosen", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-agentmesh-model"] == "peer"  # fallback of the same tier, not "weak"
    assert int(raw.headers["x-agentmesh-attempts"]) >= 2
    assert "peer" in (raw.parse().choices[0].message.content or "")


def test_sdk_stream_sends_the_text_as_it_comes_and_usage_last(sim: TestClient) -> None:
    stream = _sdk(sim).chat.completions.create(
        model="sim-mini",
        messages=[{"role": "user", "content": "Say something."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[simulated sim-mini] A concise answer to: Say something."
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 2
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert not chunks[-1].choices
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_sdk_tools_round_trip(tmp_path: Path) -> None:
    rules = [
        {
            "match": "weather",
            "tool": "get_weather",
            "arguments": {"city": "Oslo"},
            "reply": "it is {tool_result}",
        }
    ]
    models = _catalog(tmp_path, _model("toolish", 1, replies=rules))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    with TestClient(create_app(ServeConfig(models=models))) as client:
        sdk = _sdk(client)
        first = sdk.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "weather in Oslo?"}], tools=tools
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = (choice.message.tool_calls or [])[0]
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Oslo"}
        streamed = list(
            sdk.chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": "weather in Oslo?"}],
                tools=tools,
                stream=True,
            )
        )
        deltas = [d for c in streamed if c.choices for d in (c.choices[0].delta.tool_calls or [])]
        assert [d.function.name for d in deltas if d.function] == ["get_weather"]
        second = sdk.chat.completions.create(
            model="auto",
            messages=[
                {"role": "user", "content": "weather in Oslo?"},
                {"role": "assistant", "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            ],
            tools=tools,
        )
    assert second.choices[0].message.content == "it is sunny"  # answered from the tool result


class Ticket(BaseModel):
    category: str
    priority: int


def test_sdk_json_schema_and_json_object(sim: TestClient) -> None:
    sdk = _sdk(sim)
    parsed = sdk.chat.completions.parse(
        model="auto", messages=[{"role": "user", "content": "Classify it."}], response_format=Ticket
    )
    ticket = parsed.choices[0].message.parsed
    assert isinstance(ticket, Ticket)
    loose = sdk.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Reply in JSON."}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)


def test_langchain_chat_openai_against_the_server(sim: TestClient) -> None:
    chat = ChatOpenAI(
        model="sim-haiku",
        base_url="http://testserver/v1",
        api_key="unused",  # type: ignore[arg-type]
        http_client=sim,
        max_retries=0,
    )
    answer = chat.invoke("Hello there")
    assert answer.content == "[simulated sim-haiku] Here is a brief answer to: Hello there"
    pieces = [c.content for c in chat.stream("Hello there")]
    assert "".join(str(p) for p in pieces) == answer.content


def test_graph_model_runs_the_workflow_on_the_conversation(sim: TestClient) -> None:
    raw = _sdk(sim).chat.completions.with_raw_response.create(
        model="graph:support_triage",
        messages=[{"role": "user", "content": "I was charged twice for order A-1042."}],
    )
    answer = json.loads(raw.parse().choices[0].message.content or "")
    assert answer["fields"]["order_id"] == "A-1042"
    assert raw.headers["x-agentmesh-route"].startswith("graph support_triage")
    assert float(raw.headers["x-agentmesh-cost-usd"]) > 0


def _post(client: TestClient, body: Any, **kwargs: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return client.post("/v1/chat/completions", content=body, **kwargs)
    return client.post("/v1/chat/completions", json=body, **kwargs)


HELLO = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        (b"\xff\xfe", None),
        (b"[" * 100_000 + b"]" * 100_000, None),
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": "hi"}, "messages"),
        ({"model": "auto", "messages": []}, "messages"),
        ({"model": 7, "messages": HELLO}, "model"),
        ({"model": "auto", "messages": HELLO, "max_tokens": "10"}, "max_tokens"),
        ({"model": "auto", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "auto", "messages": HELLO, "temperature": 5}, "temperature"),
        ({"model": "auto", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "auto", "messages": HELLO, "n": 2}, "n"),
        ({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": "auto", "messages": [{"role": "tool", "content": "x"}]}, "messages"),
        ({"model": "auto", "messages": HELLO, "tools": [{"type": "function"}]}, "tools.0.function"),
    ],
)
def test_malformed_requests_are_400_in_openai_shape(
    sim: TestClient, body: Any, param: str | None
) -> None:
    response = _post(sim, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    assert "Traceback" not in error["message"]
    if param is not None:
        assert error["param"] == param
    assert response.headers["x-request-id"]


def test_unknown_fields_are_ignored_and_named(sim: TestClient) -> None:
    body = {"model": "auto", "messages": HELLO, "frobnicate": 1, "parallel_tool_calls": True}
    response = _post(sim, body)
    assert response.status_code == 200
    assert response.headers["x-agentmesh-ignored"] == "frobnicate,parallel_tool_calls"


def test_huge_bodies_are_413_before_they_are_read(tmp_path: Path) -> None:
    config = ServeConfig(models=SIM, max_body_bytes=1000)
    with TestClient(create_app(config)) as client:
        big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 5000}]}
        response = _post(client, big)
        chunked = client.post(
            "/v1/chat/completions", content=iter([b'{"model": "auto", ', b" " * 2000])
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert chunked.status_code == 413


def test_unknown_model_path_and_method_are_openai_shaped_404_405(sim: TestClient) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _sdk(sim).chat.completions.create(model="gpt-17", messages=HELLO)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"
    missing = sim.get("/v1/nothing")
    wrong = sim.get("/v1/chat/completions")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def _failing(tmp_path: Path, **behavior: Any) -> TestClient:
    models = _catalog(tmp_path, _model("only", 1, **behavior))
    return TestClient(create_app(ServeConfig(models=models)))


@pytest.mark.parametrize(
    ("behavior", "status", "code"),
    [
        ({"down": True}, 502, "unavailable"),
        ({"fail_rate": 1.0, "fail_with": "bad_request"}, 400, "bad_request"),
        ({"fail_rate": 1.0, "fail_with": "content_filter"}, 400, "content_filter"),
        ({"fail_rate": 1.0, "fail_with": "timeout"}, 504, "timeout"),
        ({"fail_rate": 1.0, "fail_with": "context_overflow"}, 413, "context_length_exceeded"),
        ({"fail_rate": 1.0, "fail_with": "rate_limit", "retry_after": 120}, 429, "rate_limited"),
    ],
)
def test_failed_calls_have_their_status_and_list_attempts(
    tmp_path: Path, behavior: dict[str, Any], status: int, code: str
) -> None:
    with _failing(tmp_path, **behavior) as client:
        response = _post(client, {"model": "auto", "messages": HELLO})
        streamed = _post(client, {"model": "auto", "messages": HELLO, "stream": True})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["attempts"]
    assert error["attempts"][0]["model"] == "only"
    assert streamed.status_code == status  # the stream had not started: a plain error
    if status == 429:
        assert response.headers["retry-after"] == "120"


def test_no_capable_model_is_503_and_budget_429(tmp_path: Path) -> None:
    models = _catalog(tmp_path, _model("only", 1))
    with TestClient(create_app(ServeConfig(models=models))) as client:
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        vision = _post(
            client, {"model": "auto", "messages": [{"role": "user", "content": [image]}]}
        )
    assert vision.status_code == 503
    assert vision.json()["error"]["code"] == "no_route"
    budget = ServeConfig(models=models, global_budget_usd=1e-9)
    with TestClient(create_app(budget)) as client:
        broke = _post(client, {"model": "auto", "messages": HELLO})
    assert broke.status_code == 429
    assert broke.json()["error"]["code"] == "budget_exceeded"


def test_health_ready_and_metrics(sim: TestClient) -> None:
    assert sim.get("/health").json() == {"status": "ok"}
    assert sim.get("/ready").json()["status"] == "ready"
    _post(sim, {"model": "sim-mini", "messages": HELLO})
    _post(sim, {"model": "nope", "messages": HELLO})
    scraped = sim.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert 'agentmesh_model_calls_total{model="sim-mini",node="serve",outcome="ok"' in text
    assert 'agentmesh_model_tokens_total{model="sim-mini",node="serve",type="output"}' in text
    assert 'agentmesh_server_requests_total{endpoint="/v1/chat/completions",key="",' in text
    assert 'model="unknown",status="404"} 1.0' in text
    assert 'agentmesh_breaker_state{model="sim-opus"} 0.0' in text
    assert "agentmesh_route_decisions_total" in text


def test_traceparent_is_the_parent_of_the_request_spans(
    sim: TestClient, spans: InMemorySpanExporter
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    response = _post(
        sim,
        {"model": "auto", "messages": HELLO},
        headers={"traceparent": parent, "x-request-id": "r-1"},
    )
    assert response.headers["x-agentmesh-trace-id"] == trace_id
    assert response.headers["x-request-id"] == "r-1"
    finished = {s.name: s for s in spans.get_finished_spans()}
    chat = finished["chat gpt-4.1-nano"]
    server = finished["POST /v1/chat/completions"]
    assert format(chat.context.trace_id, "032x") == trace_id
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    spans.clear()
    sim.get("/health")
    sim.get("/metrics")
    assert spans.get_finished_spans() == ()  # probes and scrapes make no traces
    assert (server.attributes or {})["http.response.status_code"] == 200


async def test_async_sdk_streams_through_the_asgi_app() -> None:
    async with open_service(ServeConfig(models=SIM)) as service:
        transport = httpx.ASGITransport(app=build_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            sdk = openai.AsyncOpenAI(
                base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0
            )
            done = await sdk.chat.completions.create(model="sim-4o", messages=HELLO)
            stream = await sdk.chat.completions.create(model="sim-4o", messages=HELLO, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert done.choices[0].message.content == text
    assert text.startswith("[simulated sim-4o]")


def test_a_bug_is_a_500_naming_the_request_without_a_traceback(
    sim: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentmesh.server.targets import RoutedTarget

    async def broken(self: RoutedTarget, asked: object) -> object:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(RoutedTarget, "complete", broken)
    with caplog.at_level("INFO", logger="agentmesh.server"):
        response = _post(sim, {"model": "auto", "messages": HELLO}, headers={"x-request-id": "r-9"})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "message": "internal error (request r-9)",
        "type": "server_error",
        "code": "internal_error",
        "param": None,
    }
    logged = [r for r in caplog.records if r.levelno >= 20]
    assert [r.getMessage() for r in logged] == [
        "request r-9 failed: RuntimeError (traceback at DEBUG)"
    ]
    assert all(r.exc_info is None for r in logged)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("fast: [cheapest]", "policies.fast: a policy is a mapping"),
        (
            "fast: {strategy: cheapest, resilience: 3}",
            "policies.fast: resilience: must be a mapping",
        ),
        ("fast: {strategy: cheapest, resilience: {retry: {tries: 2}}}", "policies.fast resilience"),
        ("fast: {strategy: no_such_strategy}", "policies.fast"),
    ],
)
def test_a_policies_file_s_bad_entry_is_named_with_its_file(
    tmp_path: Path, entry: str, says: str
) -> None:
    from agentmesh.routing import PolicyError
    from agentmesh.server.targets import load_policies

    path = tmp_path / "policies.yaml"
    path.write_text(f"policies:\n  {entry}\n")
    with pytest.raises(PolicyError, match=r"policies\.yaml") as info:
        load_policies(path)
    assert says in str(info.value)


def test_a_policies_file_s_entries_carry_their_resilience(tmp_path: Path) -> None:
    from agentmesh.server.targets import load_policies

    path = tmp_path / "policies.yaml"
    path.write_text(
        "default: safe\npolicies:\n"
        "  safe: {strategy: cheapest, resilience: {retry: {max_attempts: 5}}}\n"
    )
    default, named = load_policies(path)
    assert default == "safe"
    assert named["safe"].routing.strategy == "cheapest"
    assert named["safe"].resilience.retry.max_attempts == 5
