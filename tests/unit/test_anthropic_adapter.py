from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage

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
    ToolCall,
    ToolSpec,
    Unavailable,
)
from agentmesh.models.anthropic import ANTHROPIC_VERSION, AnthropicClient
from agentmesh.models.client import ClientContext
from agentmesh.testing import RecordingTransport, anthropic_message, anthropic_stream, sse_body

TOO_LONG = "prompt is too long: 250000 tokens > 200000 maximum"
EXPECTED = {  # error class -> (kind, retryable, fallback)
    RateLimited: ("rate_limited", True, True),
    Unavailable: ("unavailable", True, True),
    Timeout: ("timeout", True, True),
    MalformedResponse: ("malformed_response", True, True),
    ContextOverflow: ("context_overflow", False, True),
    AuthError: ("auth_error", False, False),
    BadRequest: ("bad_request", False, False),
    ContentFiltered: ("content_filtered", False, False),
}

SECRET = "sk-ant-secret-123456"
ENV = {"ANTHROPIC_API_KEY": SECRET}
WEATHER = ToolSpec(
    "weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def spec(**overrides: object) -> ModelSpec:
    fields: dict[str, object] = {
        "id": "claude",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "base_url": "http://claude.test",
        "api_key_env": "ANTHROPIC_API_KEY",
        "pricing": {"input": 3.0, "output": 15.0},
        "context_window": 200_000,
        "max_output_tokens": 8192,
    }
    fields.update(overrides)
    return ModelSpec.model_validate(fields)


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


def api_error(status: int, kind: str, message: str, **headers: str) -> httpx.Response:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return httpx.Response(status, json=body, headers=headers)


def sse(*events: tuple[str, dict[str, Any]]) -> httpx.Response:
    body = sse_body(events)
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def tool_stream(name: str, *parts: str, usage: tuple[int, int] = (5, 5)) -> httpx.Response:
    """A streamed answer with one tool_use block whose input arrives in ``parts``."""
    block = {"type": "tool_use", "id": "toolu_9", "name": name}
    deltas = [
        {"index": 0, "delta": {"type": "input_json_delta", "partial_json": part}} for part in parts
    ]
    return sse(
        ("message_start", {"message": {"model": "claude-x", "usage": {"input_tokens": usage[0]}}}),
        ("content_block_start", {"index": 0, "content_block": block}),
        *(("content_block_delta", delta) for delta in deltas),
        (
            "message_delta",
            {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": usage[1]}},
        ),
        ("message_stop", {}),
    )


def stream_error(kind: str, message: str = "boom") -> httpx.Response:
    error = {"type": "error", "error": {"type": kind, "message": message}}
    return sse(("message_start", {"message": {"model": "claude-x"}}), ("error", error))


Build = Callable[..., tuple[AnthropicClient, RecordingTransport]]


@pytest.fixture
async def build() -> AsyncIterator[Build]:
    """Build a client answering with scripted responses; closes its httpx client afterwards."""
    opened: list[httpx.AsyncClient] = []

    def make(
        *responses: httpx.Response | Exception,
        model: ModelSpec | None = None,
        environ: dict[str, str] | None = None,
    ) -> tuple[AnthropicClient, RecordingTransport]:
        transport = RecordingTransport(responses or [anthropic_message()])
        http = httpx.AsyncClient(transport=transport)
        opened.append(http)
        ctx = ClientContext(http=http, environ=ENV if environ is None else environ)
        return AnthropicClient(model or spec(), ctx), transport

    yield make
    for http in opened:
        await http.aclose()


def hello(**kwargs: Any) -> ModelRequest:
    return ModelRequest.of("Hello?", system="Be brief.", **kwargs)


async def collect(client: AnthropicClient, request: ModelRequest | None = None) -> list[Any]:
    return [event async for event in client.stream(request or hello())]


async def sent_body(build: Build, request: ModelRequest) -> dict[str, Any]:
    client, transport = build(anthropic_message())
    await client.invoke(request)
    return transport.bodies()[0]


# --- success -----------------------------------------------------------------------------


async def test_success_carries_text_usage_cost_and_served_model(build: Build) -> None:
    client, transport = build(anthropic_message("Paris.", model="claude-x-1", usage=(1000, 200)))
    response = await client.invoke(hello())
    assert response.text == "Paris."
    assert response.model_id == "claude"
    assert response.provider == "anthropic"
    assert response.served_model == "claude-x-1"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1000, 200)
    assert response.usage.estimated is False
    assert response.cost_usd == pytest.approx(0.006)  # 1000 * 3.0 / 1e6 + 200 * 15.0 / 1e6
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    assert response.latency_ms > 0
    assert response.ttft_ms == response.latency_ms
    assert len(transport.requests) == 1


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "unknown"),
    ],
)
async def test_finish_reason_mapping(build: Build, stop_reason: str, finish: str) -> None:
    client, _ = build(anthropic_message("x", stop_reason=stop_reason))
    assert (await client.invoke(hello())).finish_reason == finish


async def test_tool_calls_are_parsed(build: Build) -> None:
    uses = [
        {"id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
        {"id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
    ]
    client, _ = build(anthropic_message("Checking.", tool_uses=uses, stop_reason="tool_use"))
    response = await client.invoke(hello(tools=[WEATHER]))
    assert response.text == "Checking."
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (
        ToolCall("toolu_1", "weather", {"city": "Oslo"}),
        ToolCall("toolu_2", "weather", {"city": "Rome"}),
    )


async def test_works_through_the_gateway() -> None:
    transport = RecordingTransport([anthropic_message("via gateway")])
    async with httpx.AsyncClient(transport=transport) as http:
        gateway = Gateway(Catalog([spec()]), http=http, environ=ENV)
        assert isinstance(gateway.client("claude"), AnthropicClient)
        response = await gateway.invoke("claude", hello())
    assert response.text == "via gateway"
    assert response.to_message().response_metadata["agentmesh_model_id"] == "claude"


# --- request body ------------------------------------------------------------------------


async def test_request_url_headers_and_minimal_body(build: Build) -> None:
    headers = {"anthropic-beta": "tools-2024", "x-api-key": "not-the-key"}
    client, transport = build(model=spec(headers=headers))
    await client.invoke(hello())
    sent = transport.requests[0]
    assert (sent.method, str(sent.url)) == ("POST", "http://claude.test/v1/messages")
    assert sent.headers["x-api-key"] == SECRET  # spec headers cannot replace the key
    assert sent.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "tools-2024"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert json.loads(sent.content) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 8192,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [text("Hello?")]}],
    }


async def test_optional_fields_are_sent_only_when_given(build: Build) -> None:
    body = await sent_body(build, hello(max_tokens=64, temperature=0.2, stop=["END"]))
    assert [body[k] for k in ("max_tokens", "temperature", "stop_sequences")] == [64, 0.2, ["END"]]
    plain = await sent_body(build, ModelRequest.of("Hi"))
    assert set(plain) == {"model", "max_tokens", "messages"}


async def test_conversation_with_system_tool_calls_and_results(build: Build) -> None:
    messages = [
        SystemMessage("Rule one."),
        HumanMessage("Weather in Oslo and Rome?"),
        AIMessage(
            "Let me look.",
            tool_calls=[
                {"id": "toolu_1", "name": "weather", "args": {"city": "Oslo"}},
                {"id": "toolu_2", "name": "weather", "args": {"city": "Rome"}},
            ],
        ),
        ToolMessage("rain", tool_call_id="toolu_1"),
        ToolMessage("sun", tool_call_id="toolu_2"),
        SystemMessage("Rule two."),
        HumanMessage("Summarise."),
    ]
    body = await sent_body(build, ModelRequest(messages=messages))
    assert body["system"] == "Rule one.\n\nRule two."
    use = {"type": "tool_use", "name": "weather"}
    assert body["messages"] == [
        {"role": "user", "content": [text("Weather in Oslo and Rome?")]},
        {
            "role": "assistant",
            "content": [
                text("Let me look."),
                {**use, "id": "toolu_1", "input": {"city": "Oslo"}},
                {**use, "id": "toolu_2", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "sun"},
                text("Summarise."),
            ],
        },
    ]


async def test_consecutive_same_role_turns_are_merged(build: Build) -> None:
    messages = [HumanMessage("a"), HumanMessage("b"), AIMessage("c"), AIMessage("d")]
    body = await sent_body(build, ModelRequest(messages=messages))
    assert body["messages"] == [
        {"role": "user", "content": [text("a"), text("b")]},
        {"role": "assistant", "content": [text("c"), text("d")]},
    ]


async def test_message_without_anthropic_role_is_a_bad_request(build: Build) -> None:
    client, transport = build()
    request = ModelRequest(messages=[ChatMessage(content="hm", role="critic")])
    with pytest.raises(BadRequest, match="has no Anthropic role"):
        await client.invoke(request)
    assert transport.requests == []


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (None, None),
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ("weather", {"type": "tool", "name": "weather"}),
    ],
)
async def test_tools_and_tool_choice(build: Build, choice: str | None, wire: object) -> None:
    body = await sent_body(build, hello(tools=[WEATHER], tool_choice=choice))
    assert body["tools"] == [
        {"name": "weather", "description": WEATHER.description, "input_schema": WEATHER.parameters}
    ]
    assert body.get("tool_choice") == wire


async def test_request_timeout_is_applied_per_call(build: Build) -> None:
    client, transport = build(anthropic_message(), anthropic_message())
    await client.invoke(hello(timeout=30.0))
    await client.invoke(hello())
    first, second = (r.extensions["timeout"] for r in transport.requests)
    assert (first["read"], first["connect"]) == (30.0, 5.0)
    assert second["read"] == 120.0  # the spec's default timeout_s


@pytest.mark.parametrize(
    ("base_url", "environ", "url"),
    [
        (None, {}, "https://api.anthropic.com/v1/messages"),
        ("http://proxy.test/", {}, "http://proxy.test/v1/messages"),
        ("${CLAUDE_HOST:-http://default.test}", {}, "http://default.test/v1/messages"),
        ("${CLAUDE_HOST:-http://default.test}", {"CLAUDE_HOST": "http://env.test"}, None),
    ],
)
async def test_base_url_resolution(
    build: Build, base_url: str | None, environ: dict[str, str], url: str | None
) -> None:
    client, transport = build(model=spec(base_url=base_url), environ={**ENV, **environ})
    await client.invoke(hello())
    assert str(transport.requests[0].url) == (url or "http://env.test/v1/messages")


async def test_base_url_with_unset_variable_is_a_bad_request(build: Build) -> None:
    with pytest.raises(BadRequest, match="CLAUDE_HOST") as info:
        build(model=spec(base_url="${CLAUDE_HOST}"))
    assert info.value.model_id == "claude"


# --- JSON output ---------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def json_answer() -> httpx.Response:
    return anthropic_message(
        "",
        tool_uses=[{"id": "toolu_j", "name": "emit_json", "input": {"city": "Oslo"}}],
        stop_reason="tool_use",
    )


@pytest.mark.parametrize(
    ("fmt", "schema"),
    [(ResponseFormat(schema=SCHEMA), SCHEMA), (ResponseFormat(), {"type": "object"})],
)
async def test_json_output_uses_a_forced_tool(
    build: Build, fmt: ResponseFormat, schema: dict[str, Any]
) -> None:
    client, transport = build(json_answer())
    response = await client.invoke(hello(tools=[WEATHER], response_format=fmt))
    body = transport.bodies()[0]
    assert body["tool_choice"] == {"type": "tool", "name": "emit_json"}
    # The forced tool replaces the request's own tools.
    assert [(t["name"], t["input_schema"]) for t in body["tools"]] == [("emit_json", schema)]
    assert json.loads(response.text) == {"city": "Oslo"}
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"


async def test_json_output_missing_tool_use_is_malformed(build: Build) -> None:
    client, _ = build(anthropic_message("Sure, here is JSON: {}"))
    with pytest.raises(MalformedResponse, match="requested JSON") as info:
        await client.invoke(hello(response_format=ResponseFormat(schema=SCHEMA)))
    assert info.value.model_id == "claude"


# --- streaming -----------------------------------------------------------------------------


async def test_stream_yields_deltas_then_full_response(build: Build) -> None:
    client, transport = build(anthropic_stream(["Hel", "lo", " there"], usage=(12, 3)))
    events = await collect(client)
    assert [e.delta for e in events[:-1]] == ["Hel", "lo", " there"]
    assert all(e.response is None for e in events[:-1])
    final = events[-1]
    assert final.delta == ""
    assert final.response is not None
    assert final.response.text == "Hello there"
    assert (final.response.usage.input_tokens, final.response.usage.output_tokens) == (12, 3)
    assert final.response.served_model == "claude-test"
    assert final.response.finish_reason == "stop"
    assert final.response.cost_usd == pytest.approx((12 * 3.0 + 3 * 15.0) / 1e6)
    assert 0 < final.response.ttft_ms <= final.response.latency_ms
    assert transport.bodies()[0]["stream"] is True


async def test_stream_collects_tool_calls(build: Build) -> None:
    client, _ = build(tool_stream("weather", '{"ci', 'ty": "Oslo"}', usage=(20, 8)))
    events = await collect(client, hello(tools=[WEATHER]))
    assert len(events) == 1  # no text, so no deltas
    response = events[0].response
    assert response.tool_calls == (ToolCall("toolu_9", "weather", {"city": "Oslo"}),)
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (20, 8)


async def test_stream_json_output(build: Build) -> None:
    client, _ = build(tool_stream("emit_json", '{"city": ', '"Rome"}'))
    events = await collect(client, hello(response_format=ResponseFormat(schema=SCHEMA)))
    assert [e.delta for e in events] == [""]
    assert json.loads(events[-1].response.text) == {"city": "Rome"}


async def test_truncated_stream_is_malformed(build: Build) -> None:
    client, _ = build(anthropic_stream(["Hel", "lo"], complete=False))
    deltas: list[str] = []

    async def consume() -> None:
        async for event in client.stream(hello()):
            deltas.append(event.delta)

    with pytest.raises(MalformedResponse, match="message_stop") as info:
        await consume()
    assert deltas == ["Hel", "lo"]
    assert info.value.retryable is True


@pytest.mark.parametrize(
    "answer",
    [
        tool_stream("weather", '{"city": '),
        httpx.Response(200, content=b"event: message_start\ndata: {not json\n\n"),
    ],
    ids=["tool-input", "event-data"],
)
async def test_stream_with_unparseable_json_is_malformed(
    build: Build, answer: httpx.Response
) -> None:
    client, _ = build(answer)
    with pytest.raises(MalformedResponse, match="not JSON"):
        await collect(client)


@pytest.mark.parametrize(
    ("kind", "error_type", "status"),
    [
        ("overloaded_error", Unavailable, 529),
        ("rate_limit_error", RateLimited, 429),
        ("api_error", Unavailable, 500),
        ("authentication_error", AuthError, 401),
        ("something_new", Unavailable, 500),
    ],
)
async def test_stream_error_event_is_classified(
    build: Build, kind: str, error_type: type[ModelError], status: int
) -> None:
    client, _ = build(stream_error(kind))
    with pytest.raises(error_type) as info:
        await collect(client)
    assert type(info.value) is error_type
    assert (info.value.kind, info.value.retryable, info.value.fallback) == EXPECTED[error_type]
    assert info.value.status_code == status
    assert info.value.model_id == "claude"


# --- errors --------------------------------------------------------------------------------

ERROR_CASES = [
    (api_error(429, "rate_limit_error", "slow", **{"retry-after": "7"}), RateLimited, 429),
    (api_error(529, "overloaded_error", "Overloaded"), Unavailable, 529),
    (api_error(500, "api_error", "Internal error"), Unavailable, 500),
    (api_error(401, "authentication_error", "invalid x-api-key"), AuthError, 401),
    (api_error(403, "permission_error", "not allowed"), AuthError, 403),
    (api_error(400, "invalid_request_error", TOO_LONG), ContextOverflow, 400),
    (api_error(400, "invalid_request_error", "max_tokens: must be positive"), BadRequest, 400),
    (api_error(413, "request_too_large", "Request too large"), ContextOverflow, 413),
    (anthropic_message("", stop_reason="refusal"), ContentFiltered, None),
    (httpx.Response(200, text="<html>gateway</html>"), MalformedResponse, None),
    (httpx.Response(200, json={"type": "message", "usage": {}}), MalformedResponse, None),
    (httpx.Response(200, json={"content": [{"type": "text"}]}), MalformedResponse, None),
    (httpx.ConnectError("connection refused"), Unavailable, None),
    (httpx.ReadTimeout("timed out"), Timeout, None),
]
ERROR_IDS = [
    "429", "529", "500", "401", "403", "400-too-long", "400", "413",
    "refusal", "not-json", "no-content", "no-usage", "connect-error", "read-timeout",
]  # fmt: skip


@pytest.mark.parametrize(("answer", "error_type", "status"), ERROR_CASES, ids=ERROR_IDS)
async def test_errors_are_classified(
    build: Build,
    answer: httpx.Response | Exception,
    error_type: type[ModelError],
    status: int | None,
) -> None:
    client, _ = build(answer)
    with pytest.raises(ModelError) as info:
        await client.invoke(hello())
    error = info.value
    assert type(error) is error_type
    assert (error.kind, error.retryable, error.fallback) == EXPECTED[error_type]
    assert error.model_id == "claude"
    assert error.provider == "anthropic"
    assert error.status_code == status


@pytest.mark.parametrize("streamed", [False, True])
async def test_rate_limit_carries_retry_after(build: Build, streamed: bool) -> None:
    client, _ = build(api_error(429, "rate_limit_error", "slow", **{"retry-after": "7"}))
    with pytest.raises(RateLimited) as info:
        await (collect(client) if streamed else client.invoke(hello()))
    assert info.value.retry_after == 7.0
    assert str(info.value) == "claude: rate_limit_error: slow (HTTP 429)"


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "environ", "named"),
    [
        ({}, {}, "ANTHROPIC_API_KEY"),
        ({}, {"ANTHROPIC_API_KEY": ""}, "ANTHROPIC_API_KEY"),
        ({"api_key_env": None}, ENV, "api_key_env"),
    ],
)
async def test_missing_key_is_an_auth_error_naming_the_variable(
    build: Build, overrides: dict[str, Any], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(AuthError, match=named) as info:
        build(model=spec(**overrides), environ=environ)
    assert info.value.model_id == "claude"
    assert (info.value.retryable, info.value.fallback) == (False, False)


async def test_missing_key_through_gateway_sends_nothing() -> None:
    transport = RecordingTransport([anthropic_message()])
    async with httpx.AsyncClient(transport=transport) as http:
        gateway = Gateway(Catalog([spec()]), http=http, environ={})
        with pytest.raises(AuthError, match="ANTHROPIC_API_KEY"):
            await gateway.invoke("claude", hello())
    assert transport.requests == []


@pytest.mark.parametrize(
    ("answer", "streamed"),
    [
        (api_error(401, "authentication_error", f"invalid x-api-key: {SECRET}"), False),
        (httpx.Response(200, text=f"proxy error for key {SECRET}"), False),
        (httpx.ConnectError(f"refused while sending {SECRET}"), False),
        (stream_error("authentication_error", f"bad key {SECRET}"), True),
    ],
    ids=["401-body", "non-json-body", "transport", "stream-error-event"],
)
async def test_errors_never_show_the_key(
    build: Build, answer: httpx.Response | Exception, streamed: bool
) -> None:
    client, _ = build(answer)
    with pytest.raises(ModelError) as info:
        await (collect(client) if streamed else client.invoke(hello()))
    shown = str(info.value) + repr(info.value) + info.value.message
    assert SECRET not in shown
    assert "***" in shown


async def test_long_key_at_truncation_boundary_is_not_partly_shown(build: Build) -> None:
    key = "sk-ant-api03-" + "Q" * 95
    body = api_error(401, "authentication_error", "x" * 250 + " invalid key " + key)
    client, _ = build(body, environ={"ANTHROPIC_API_KEY": key})
    with pytest.raises(AuthError) as info:
        await client.invoke(hello())
    shown = str(info.value)
    assert not any(key[:n] in shown for n in range(8, len(key) + 1))


async def test_client_repr_hides_the_key(build: Build) -> None:
    client, _ = build()
    assert SECRET not in repr(client)
    assert "claude" in repr(client)
    assert "http://claude.test/v1/messages" in repr(client)
