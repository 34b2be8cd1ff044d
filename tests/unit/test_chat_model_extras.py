"""RoutedChatModel as other LangChain chat models behave (issue 24 items 14 and 15).

One parent span per call outside a graph, ``OTEL_METRICS_EXPORTER=none``
honoured, ``api_key``/``max_retries`` accepted and ignored, reasoning kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.integrations import RoutedChatModel
from agentmesh.models import Catalog, Gateway, ModelSpec
from agentmesh.resilience import ResilientCaller
from agentmesh.routing import Router
from agentmesh.testing import RecordingTransport, scripted_model

from .test_tracing_support import span_fixture


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def _model() -> RoutedChatModel:
    catalog = Catalog([scripted_model("m", reply="one two")])
    return RoutedChatModel(caller=ResilientCaller(Router(catalog), Gateway(catalog)), node="bot")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_outside_a_graph_has_one_parent_span(spans, streamed: bool) -> None:
    model = _model()
    if streamed:
        chunks = [c async for c in model.astream("hi")]
        assert "".join(str(c.content) for c in chunks) == "one two"
    else:
        assert (await model.ainvoke("hi")).content == "one two"
    finished = {s.name: s for s in spans.get_finished_spans()}
    parent = finished["chat_model bot"]
    for name in ("route bot", "chat m"):
        child = finished[name]
        assert child.context.trace_id == parent.context.trace_id, name
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id, name
    assert parent.attributes is not None
    assert parent.attributes["agentmesh.node.name"] == "bot"


def test_metrics_stay_home_when_otel_metrics_exporter_is_none(monkeypatch) -> None:
    from agentmesh.tracing import config

    installed: list[object] = []  # instead of the process-global meter provider
    monkeypatch.setattr(config.metrics, "get_meter_provider", object)
    monkeypatch.setattr(config.metrics, "set_meter_provider", installed.append)
    endpoint = "http://127.0.0.1:4318"
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert config._meter_provider((), endpoint, None, "agentmesh") is None
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    made = config._meter_provider((), endpoint, None, "agentmesh")
    assert made is not None
    assert installed == [made]
    made.shutdown(timeout_millis=100)


def test_api_key_and_max_retries_are_accepted_and_never_shown() -> None:
    model = RoutedChatModel(
        caller=_model().caller,
        api_key="sk-planted-secret",  # type: ignore[arg-type]
        max_retries=3,
    )
    assert model.invoke("hi").content == "one two"
    assert "sk-planted-secret" not in repr(model)
    assert "sk-planted-secret" not in json.dumps(model.model_dump(mode="json"))
    assert "sk-planted-secret" not in json.dumps(model._identifying_params)
    model.close()


def _reasoning_catalog(transport: RecordingTransport) -> tuple[Catalog, Gateway]:
    spec = ModelSpec.model_validate(
        {
            "id": "thinker",
            "provider": "openai",
            "model": "thinker",
            "base_url": "http://llm.test/v1",
            "api_key_env": None,
            "capabilities": ["streaming"],
        }
    )
    catalog = Catalog([spec])
    return catalog, Gateway(catalog, http=httpx.AsyncClient(transport=transport), environ={})


def _completion(message: dict[str, object]) -> httpx.Response:
    body = {
        "model": "thinker",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
    }
    return httpx.Response(200, json=body)


def _stream(deltas: list[dict[str, object]]) -> httpx.Response:
    lines = [
        "data: " + json.dumps({"model": "thinker", "choices": [{"index": 0, "delta": d}]})
        for d in deltas
    ]
    end = {"model": "thinker", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    lines += ["data: " + json.dumps(end), "data: [DONE]"]
    return httpx.Response(
        200, text="\n\n".join(lines) + "\n\n", headers={"content-type": "text/event-stream"}
    )


async def test_reasoning_fields_are_kept_as_reasoning_content() -> None:
    transport = RecordingTransport(
        [
            _completion({"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4"}),
            _completion({"role": "assistant", "content": "4", "reasoning": "add them"}),
            _stream(
                [{"reasoning_content": "think "}, {"reasoning_content": "more"}, {"content": "4"}]
            ),
        ]
    )
    catalog, gateway = _reasoning_catalog(transport)
    model = RoutedChatModel(caller=ResilientCaller(Router(catalog), gateway))
    first = await model.ainvoke("2+2?")
    second = await model.ainvoke("2+2?")
    chunks = [c async for c in model.astream("2+2?")]
    assert first.additional_kwargs["reasoning_content"] == "2+2 is 4"
    assert second.additional_kwargs["reasoning_content"] == "add them"
    assert "".join(str(c.content) for c in chunks) == "4"
    assert chunks[-1].additional_kwargs["reasoning_content"] == "think more"
    await gateway.aclose()


async def test_a_stream_the_consumer_stops_ends_its_span_without_an_error(spans) -> None:
    from opentelemetry.trace import StatusCode

    stream = _model().astream("hi")
    first = await anext(stream)
    assert first.content == "one "
    await stream.aclose()
    parent = next(s for s in spans.get_finished_spans() if s.name == "chat_model bot")
    assert parent.status.status_code is not StatusCode.ERROR
