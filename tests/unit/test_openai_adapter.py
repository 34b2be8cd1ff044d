from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agentmesh.models import (
    AuthError,
    BadRequest,
    Catalog,
    ContentFiltered,
    ContextOverflow,
    Gateway,
    MalformedResponse,
    ModelError,
    ModelRequest,
    ModelSpec,
    RateLimited,
    ResponseFormat,
    Timeout,
    ToolSpec,
    Unavailable,
    estimate_tokens,
)
from agentmesh.testing import RecordingTransport, openai_completion, openai_stream, sse_body

SECRET = "sk-test-0123456789abcdef"


def spec(**overrides: object) -> ModelSpec:
    fields: dict[str, object] = {
        "id": "small",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": "http://llm.test/v1",
        "api_key_env": "OPENAI_API_KEY",
        "pricing": {"input": 0.15, "output": 0.60},
    }
    fields.update(overrides)
    return ModelSpec.model_validate(fields)


@pytest.fixture
async def call() -> AsyncIterator[object]:
    """Run one request against scripted responses; returns (result or error, transport)."""
    clients: list[httpx.AsyncClient] = []

    async def run(
        *responses: httpx.Response | Exception,
        request: ModelRequest | None = None,
        stream: bool = False,
        model: ModelSpec | None = None,
        environ: dict[str, str] | None = None,
    ) -> tuple[object, RecordingTransport]:
        transport = RecordingTransport(responses)
        http = httpx.AsyncClient(transport=transport)
        clients.append(http)
        gateway = Gateway(
            Catalog([model or spec()]),
            http=http,
            environ={"OPENAI_API_KEY": SECRET} if environ is None else environ,
        )
        request = request or ModelRequest.of("Hello?", system="Be brief.")
        try:
            if stream:
                events = [e async for e in gateway.stream("small", request)]
                return events, transport
            return await gateway.invoke("small", request), transport
        except ModelError as exc:
            return exc, transport

    yield run
    for http in clients:
        await http.aclose()


async def test_success_carries_text_usage_cost_and_served_model(call) -> None:
    response, transport = await call(
        openai_completion("Paris.", model="gpt-4o-mini-2024-07-18", usage=(1000, 500))
    )
    assert response.text == "Paris."
    assert response.served_model == "gpt-4o-mini-2024-07-18"
    assert response.model_id == "small"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 500)
    assert response.usage.estimated is False
    assert response.cost_usd == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert response.finish_reason == "stop"
    assert response.latency_ms > 0
    assert response.ttft_ms == response.latency_ms
    assert response.simulated is False
    sent = transport.requests[0]
    assert str(sent.url) == "http://llm.test/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    body = json.loads(sent.content)
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello?"},
    ]
    assert "stream" not in body


async def test_request_options_are_sent_in_wire_format(call) -> None:
    request = ModelRequest(
        messages=[
            HumanMessage("weather?"),
            AIMessage("", tool_calls=[{"id": "c1", "name": "weather", "args": {"city": "Oslo"}}]),
            ToolMessage("rainy", tool_call_id="c1"),
        ],
        max_tokens=64,
        temperature=0.2,
        stop=["END"],
        seed=7,
        tools=[
            ToolSpec(
                "weather",
                "get weather",
                {"type": "object", "properties": {"city": {"type": "string"}}},
            )
        ],
        tool_choice="weather",
    )
    _, transport = await call(openai_completion("ok"), request=request)
    body = transport.bodies()[0]
    assert body["max_tokens"] == 64
    assert body["temperature"] == 0.2
    assert body["stop"] == ["END"]
    assert body["seed"] == 7
    assert body["tools"][0]["function"]["name"] == "weather"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assistant, tool = body["messages"][1], body["messages"][2]
    assert assistant["content"] is None
    assert assistant["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": '{"city": "Oslo"}',
    }
    assert tool == {"role": "tool", "content": "rainy", "tool_call_id": "c1"}


@pytest.mark.parametrize(
    ("json_format", "expected"),
    [
        (
            "json_schema",
            {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}},
            },
        ),
        ("json_object+schema", {"type": "json_object", "schema": {"type": "object"}}),
        ("json_object", {"type": "json_object"}),
    ],
)
async def test_json_output_is_requested_per_server_dialect(call, json_format, expected) -> None:
    request = ModelRequest.of(
        "x", response_format=ResponseFormat({"type": "object"}, name="answer")
    )
    _, transport = await call(
        openai_completion('{"a": 1}'),
        request=request,
        model=spec(params={"json_format": json_format}),
    )
    assert transport.bodies()[0]["response_format"] == expected


async def test_tool_calls_are_parsed(call) -> None:
    response, _ = await call(
        openai_completion(
            None,
            tool_calls=[{"id": "c1", "name": "add", "arguments": '{"a": 1, "b": 2}'}],
            finish_reason="tool_calls",
        )
    )
    assert response.text == ""
    assert response.finish_reason == "tool_calls"
    assert [(c.id, c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("c1", "add", {"a": 1, "b": 2})
    ]
    message = response.to_message()
    assert message.tool_calls[0]["args"] == {"a": 1, "b": 2}


async def test_tool_call_with_broken_arguments_is_malformed(call) -> None:
    error, _ = await call(
        openai_completion(None, tool_calls=[{"id": "c1", "name": "add", "arguments": '{"a": 1'}])
    )
    assert isinstance(error, MalformedResponse)
    assert "add" in str(error)


async def test_missing_usage_is_estimated_and_flagged(call) -> None:
    response, _ = await call(openai_completion("four words right here", usage=None))
    assert response.usage.estimated is True
    assert response.usage.output_tokens == estimate_tokens("four words right here")
    assert response.usage.input_tokens > 0
    assert response.cost_usd > 0


async def test_stream_yields_deltas_then_the_complete_response(call) -> None:
    events, transport = await call(openai_stream(["Hel", "lo", "!"], usage=(7, 3)), stream=True)
    assert [e.delta for e in events[:-1]] == ["Hel", "lo", "!"]
    final = events[-1].response
    assert final is not None
    assert final.text == "Hello!"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.estimated) == (
        7,
        3,
        False,
    )
    assert 0 < final.ttft_ms <= final.latency_ms
    body = transport.bodies()[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_estimates_it(call) -> None:
    events, _ = await call(openai_stream(["one two"], usage=None), stream=True)
    assert events[-1].response.usage.estimated is True
    assert events[-1].response.usage.output_tokens == estimate_tokens("one two")


async def test_stream_assembles_tool_call_fragments(call) -> None:
    chunks = [
        (
            None,
            {
                "choices": [
                    {
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "c9",
                                    "function": {"name": "add", "arguments": '{"a"'},
                                }
                            ]
                        }
                    }
                ]
            },
        ),
        (
            None,
            {
                "choices": [
                    {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 2}"}}]}}
                ]
            },
        ),
        (None, {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        (None, "[DONE]"),
    ]
    response = httpx.Response(
        200, content=sse_body(chunks), headers={"content-type": "text/event-stream"}
    )
    events, _ = await call(response, stream=True)
    final = events[-1].response
    assert [(c.id, c.name, dict(c.arguments)) for c in final.tool_calls] == [
        ("c9", "add", {"a": 2})
    ]
    assert final.finish_reason == "tool_calls"


async def test_truncated_stream_is_malformed(call) -> None:
    error, _ = await call(
        openai_stream(["Hel"], finish_reason=None, usage=None, done=False), stream=True
    )
    assert isinstance(error, MalformedResponse)
    assert error.retryable
    assert error.fallback
    assert "[DONE]" in str(error)


async def test_stream_cut_mid_body_is_unavailable(call) -> None:
    class Cut(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            )

    error, _ = await call(httpx.Response(200, stream=Cut()), stream=True)
    assert isinstance(error, Unavailable)
    assert "peer closed" in str(error)


async def test_error_event_inside_a_stream_is_classified(call) -> None:
    body = sse_body([(None, {"error": {"code": 429, "message": "Rate limit reached"}})])
    error, _ = await call(httpx.Response(200, content=body), stream=True)
    assert isinstance(error, RateLimited)


async def test_stream_http_error_is_classified_before_any_delta(call) -> None:
    error, _ = await call(
        httpx.Response(503, json={"error": {"message": "overloaded"}}), stream=True
    )
    assert isinstance(error, Unavailable)
    assert error.status_code == 503


def error_response(status: int, message: str, **extra: object) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, **extra}})


@pytest.mark.parametrize(
    ("response", "kind", "retryable", "fallback"),
    [
        (error_response(429, "Rate limit reached", type="requests"), RateLimited, True, True),
        (error_response(500, "internal error"), Unavailable, True, True),
        (error_response(502, "bad gateway"), Unavailable, True, True),
        (error_response(503, "overloaded"), Unavailable, True, True),
        (error_response(504, "gateway timeout"), Timeout, True, True),
        (error_response(401, "Incorrect API key provided"), AuthError, False, False),
        (error_response(403, "not allowed"), AuthError, False, False),
        (error_response(404, "The model `nope` does not exist"), BadRequest, False, False),
        (error_response(400, "Invalid value for 'temperature'"), BadRequest, False, False),
        (
            error_response(
                400,
                "This model's maximum context length is 128000 tokens. "
                "However, you requested 130000 tokens.",
                code="context_length_exceeded",
            ),
            ContextOverflow,
            False,
            True,
        ),
        (
            error_response(
                400,
                "The response was filtered due to the prompt triggering content management policy.",
                code="content_filter",
            ),
            ContentFiltered,
            False,
            False,
        ),
        (error_response(413, "request too large"), ContextOverflow, False, True),
        (error_response(408, "request timeout"), Timeout, True, True),
        (httpx.Response(200, text="<html>proxy error</html>"), MalformedResponse, True, True),
        (httpx.Response(200, json={"object": "chat.completion"}), MalformedResponse, True, True),
        (httpx.ConnectError("Connection refused"), Unavailable, True, True),
        (httpx.ReadTimeout("timed out"), Timeout, True, True),
        (httpx.ConnectTimeout("connect timed out"), Timeout, True, True),
    ],
)
async def test_failures_map_into_the_taxonomy(call, response, kind, retryable, fallback) -> None:
    error, _ = await call(response)
    assert type(error) is kind
    assert (error.retryable, error.fallback) == (retryable, fallback)
    assert error.model_id == "small"
    assert error.provider == "openai"


async def test_rate_limit_carries_retry_after_seconds(call) -> None:
    error, _ = await call(
        httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "7"})
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0
    assert error.status_code == 429


async def test_rate_limit_prefers_retry_after_ms(call) -> None:
    error, _ = await call(
        httpx.Response(429, json={}, headers={"retry-after-ms": "250", "retry-after": "9"})
    )
    assert error.retry_after == pytest.approx(0.25)


async def test_content_filter_finish_reason_is_content_filtered(call) -> None:
    error, _ = await call(openai_completion("partial", finish_reason="content_filter"))
    assert isinstance(error, ContentFiltered)
    assert not error.retryable
    assert not error.fallback


async def test_refusal_is_content_filtered(call) -> None:
    body = {
        "model": "m",
        "choices": [
            {
                "message": {"role": "assistant", "content": None, "refusal": "I can't help"},
                "finish_reason": "stop",
            }
        ],
    }
    error, _ = await call(httpx.Response(200, json=body))
    assert isinstance(error, ContentFiltered)
    assert "can't help" in str(error)


async def test_api_key_never_appears_in_errors_or_reprs(call) -> None:
    echo = httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {SECRET}"}})
    error, transport = await call(echo)
    assert isinstance(error, AuthError)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert "***" in str(error)
    gateway = Gateway(
        Catalog([spec()]),
        http=httpx.AsyncClient(transport=transport),
        environ={"OPENAI_API_KEY": SECRET},
    )
    client = gateway.client("small")
    assert SECRET not in repr(client)
    assert SECRET not in repr(client.spec)
    await gateway.aclose()


async def test_missing_key_fails_fast_naming_the_variable(call) -> None:
    error, transport = await call(openai_completion("never sent"), environ={})
    assert isinstance(error, AuthError)
    assert "OPENAI_API_KEY" in str(error)
    assert transport.requests == []


async def test_servers_without_keys_need_no_api_key_env(call) -> None:
    response, transport = await call(
        openai_completion("hi"), model=spec(api_key_env=None), environ={}
    )
    assert response.text == "hi"
    assert "authorization" not in transport.requests[0].headers


async def test_base_url_reads_the_environment(call) -> None:
    model = spec(base_url="${LLM_HOST:-http://fallback.test/v1}", api_key_env=None)
    _, transport = await call(
        openai_completion("hi"), model=model, environ={"LLM_HOST": "http://env.test/v1/"}
    )
    assert str(transport.requests[0].url) == "http://env.test/v1/chat/completions"
    _, transport = await call(openai_completion("hi"), model=model, environ={})
    assert str(transport.requests[0].url) == "http://fallback.test/v1/chat/completions"


async def test_one_pooled_client_serves_every_model() -> None:
    transport = RecordingTransport([openai_completion("a")])
    http = httpx.AsyncClient(transport=transport)
    catalog = Catalog([spec(), spec(id="big", model="gpt-4o")])
    async with Gateway(catalog, http=http, environ={"OPENAI_API_KEY": SECRET}) as gateway:
        await gateway.invoke("small", ModelRequest.of("x"))
        await gateway.invoke("big", ModelRequest.of("x"))
        assert gateway.client("small")._http is gateway.client("big")._http is http
    assert [b["model"] for b in transport.bodies()] == ["gpt-4o-mini", "gpt-4o"]
    assert not http.is_closed, "an injected client belongs to the caller"
    await http.aclose()
