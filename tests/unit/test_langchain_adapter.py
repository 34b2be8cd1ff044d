from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

from agentmesh.models import (
    AuthError,
    BadRequest,
    Catalog,
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
from agentmesh.models.catalog import load_catalog
from agentmesh.models.client import ClientContext
from agentmesh.models.langchain import LangChainClient, classify_exception

FAKE_LIST = "langchain_core.language_models.fake_chat_models:FakeListChatModel"
WEATHER = ToolSpec(
    "weather", "Current weather", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def spec(**overrides: object) -> ModelSpec:
    fields: dict[str, object] = {
        "id": "lc",
        "provider": "langchain",
        "model": "fake-chat",
        "target": FAKE_LIST,
        "pricing": {"input": 1.0, "output": 2.0},
    }
    fields.update(overrides)
    return ModelSpec.model_validate(fields)


SPEC = spec()


# --- hand-written chat models ------------------------------------------------------------


class MetadataModel(BaseChatModel):
    """Answers ``pieces`` joined, with usage and response metadata like a real provider."""

    pieces: list[str] = ["Hel", "lo"]  # noqa: RUF012 - pydantic copies defaults
    metadata: dict[str, Any] = {"model_name": "served-x", "finish_reason": "length"}  # noqa: RUF012
    usage: tuple[int, int] | None = (11, 7)
    seen: list[tuple[list[BaseMessage], list[str] | None, dict[str, Any]]] = []  # noqa: RUF012

    @property
    def _llm_type(self) -> str:
        return "metadata-test"

    def _usage(self) -> dict[str, int] | None:
        if self.usage is None:
            return None
        return {
            "input_tokens": self.usage[0],
            "output_tokens": self.usage[1],
            "total_tokens": sum(self.usage),
        }

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.seen.append((messages, stop, kwargs))
        message = AIMessage(
            "".join(self.pieces), usage_metadata=self._usage(), response_metadata=self.metadata
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for piece in self.pieces:
            yield ChatGenerationChunk(message=AIMessageChunk(piece))
        last = AIMessageChunk("", usage_metadata=self._usage(), response_metadata=self.metadata)
        yield ChatGenerationChunk(message=last)


class ToolModel(MetadataModel):
    """Supports ``bind_tools`` and answers with one tool call."""

    metadata: dict[str, Any] = {}  # noqa: RUF012

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        return self.bind(tools=tools, tool_choice=tool_choice, **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.seen.append((messages, stop, kwargs))
        call = {"id": "call_1", "name": "weather", "args": {"city": "Oslo"}}
        message = AIMessage("", tool_calls=[call], usage_metadata=self._usage())
        return ChatResult(generations=[ChatGeneration(message=message)])


class RaisingModel(BaseChatModel):
    """Raises ``error`` when called (after streaming ``before`` when streamed)."""

    error: Any
    before: list[str] = []  # noqa: RUF012

    @property
    def _llm_type(self) -> str:
        return "raising-test"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise self.error

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for piece in self.before:
            yield ChatGenerationChunk(message=AIMessageChunk(piece))
        raise self.error


# --- exceptions shaped like provider SDK errors -------------------------------------------


class RateLimitError(Exception):
    pass


class APITimeoutError(Exception):
    pass


class APIConnectionError(Exception):
    pass


class AuthenticationError(Exception):
    pass


class StatusError(Exception):
    """Carries ``status_code`` and ``response`` like the OpenAI/Anthropic SDK errors."""

    def __init__(self, message: str, status_code: Any, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        code = status_code if isinstance(status_code, int) else 500
        self.response = httpx.Response(code, headers=headers or {})


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


Make = Callable[..., LangChainClient]


@pytest.fixture
def make(http: httpx.AsyncClient) -> Make:
    def build(model: BaseChatModel, **overrides: object) -> LangChainClient:
        ctx = ClientContext(http=http, environ={}, chat_models={"lc": model})
        return LangChainClient(spec(**overrides) if overrides else SPEC, ctx)

    return build


def hello(**kwargs: Any) -> ModelRequest:
    return ModelRequest.of("Hi there", **kwargs)


async def collect(client: LangChainClient, request: ModelRequest | None = None) -> list[Any]:
    return [event async for event in client.stream(request or hello())]


# --- invoke --------------------------------------------------------------------------------


async def test_fake_list_model_answers_with_estimated_usage(make: Make) -> None:
    response = await make(FakeListChatModel(responses=["hello world"])).invoke(hello())
    assert response.text == "hello world"
    assert response.model_id == "lc"
    assert response.provider == "langchain"
    assert response.served_model == "fake-chat"  # no metadata: the spec's model name
    assert response.finish_reason == "stop"
    assert response.tool_calls == ()
    # "Hi there": 2 words + 4 per-message overhead + 2 priming; "hello world": 2 words.
    assert response.usage.estimated is True
    assert (response.usage.input_tokens, response.usage.output_tokens) == (8, 2)
    assert response.cost_usd == pytest.approx((8 * 1.0 + 2 * 2.0) / 1e6)
    assert response.latency_ms > 0


async def test_generic_fake_model_through_the_gateway(http: httpx.AsyncClient) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("first"), "second"]))
    gateway = Gateway(Catalog([SPEC]), http=http, environ={}, chat_models={"lc": model})
    assert isinstance(gateway.client("lc"), LangChainClient)
    assert gateway.client("lc").chat_model is model
    assert (await gateway.invoke("lc", hello())).text == "first"
    assert (await gateway.invoke("lc", hello())).text == "second"


async def test_usage_finish_and_served_model_come_from_metadata(make: Make) -> None:
    response = await make(MetadataModel()).invoke(hello())
    assert response.text == "Hello"
    assert response.usage.estimated is False
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert response.cost_usd == pytest.approx((11 * 1.0 + 7 * 2.0) / 1e6)
    assert response.served_model == "served-x"
    assert response.finish_reason == "length"


@pytest.mark.parametrize(
    ("metadata", "finish"),
    [
        ({"finish_reason": "stop"}, "stop"),
        ({"finish_reason": "length"}, "length"),
        ({"finish_reason": "tool_calls"}, "tool_calls"),
        ({"finish_reason": "content_filter"}, "content_filter"),
        ({"stop_reason": "end_turn"}, "stop"),
        ({"stop_reason": "max_tokens"}, "length"),
        ({"stop_reason": "tool_use"}, "tool_calls"),
        ({"stop_reason": "refusal"}, "content_filter"),
        ({"finish_reason": "something_else"}, "stop"),
        ({}, "stop"),
    ],
)
async def test_finish_reason_mapping(make: Make, metadata: dict[str, str], finish: str) -> None:
    assert (await make(MetadataModel(metadata=metadata)).invoke(hello())).finish_reason == finish


@pytest.mark.parametrize(
    ("metadata", "served"),
    [({"model_name": "a-1"}, "a-1"), ({"model": "b-2"}, "b-2"), ({}, "fake-chat")],
)
async def test_served_model_from_metadata(
    make: Make, metadata: dict[str, str], served: str
) -> None:
    assert (await make(MetadataModel(metadata=metadata)).invoke(hello())).served_model == served


async def test_request_options_are_bound_to_the_model(make: Make) -> None:
    model = MetadataModel()
    request = hello(max_tokens=50, temperature=0.3, stop=["END"], system="Be brief.")
    await make(model).invoke(request)
    [(messages, stop, kwargs)] = model.seen
    assert [m.content for m in messages] == ["Be brief.", "Hi there"]
    assert stop == ["END"]
    assert kwargs == {"max_tokens": 50, "temperature": 0.3}


async def test_non_streamed_ttft_equals_latency(make: Make) -> None:
    response = await make(MetadataModel()).invoke(hello())
    assert response.ttft_ms == response.latency_ms


# --- streaming -----------------------------------------------------------------------------


async def test_stream_yields_deltas_then_the_concatenated_response(make: Make) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("Hello brave new world")]))
    events = await collect(make(model))
    deltas = [e.delta for e in events[:-1]]
    assert len(deltas) > 1
    assert all(deltas)
    assert all(e.response is None for e in events[:-1])
    final = events[-1]
    assert final.delta == ""
    assert final.response.text == "".join(deltas) == "Hello brave new world"
    assert final.response.usage.estimated is True
    assert 0 < final.response.ttft_ms <= final.response.latency_ms


async def test_stream_keeps_usage_and_metadata_of_chunks(make: Make) -> None:
    events = await collect(make(MetadataModel(pieces=["a", "b", "c"])))
    assert [e.delta for e in events[:-1]] == ["a", "b", "c"]
    response = events[-1].response
    assert response.text == "abc"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert response.usage.estimated is False
    assert (response.served_model, response.finish_reason) == ("served-x", "length")


async def test_stream_error_is_classified_after_deltas(make: Make) -> None:
    original = RateLimitError("slow down")
    client = make(RaisingModel(error=original, before=["par", "tial"]))
    deltas: list[str] = []

    async def consume() -> None:
        async for event in client.stream(hello()):
            deltas.append(event.delta)

    with pytest.raises(RateLimited) as info:
        await consume()
    assert deltas == ["par", "tial"]
    assert info.value.__cause__ is original


async def test_stream_of_non_json_when_json_requested_is_malformed(make: Make) -> None:
    client = make(FakeListChatModel(responses=["not json"]))
    with pytest.raises(MalformedResponse):
        await collect(client, hello(response_format=ResponseFormat()))


# --- building from the catalog --------------------------------------------------------------


async def test_target_from_catalog_builds_the_chat_model(http: httpx.AsyncClient) -> None:
    catalog = Catalog([spec(params={"responses": ["hello"]})])
    async with Gateway(catalog, http=http, environ={}) as gateway:
        client = gateway.client("lc")
        assert isinstance(client, LangChainClient)
        assert isinstance(client.chat_model, FakeListChatModel)
        assert (await gateway.invoke("lc", hello())).text == "hello"


async def test_target_from_a_catalog_file(http: httpx.AsyncClient, tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - id: lc\n"
        "    provider: langchain\n"
        "    model: fake\n"
        f"    target: {FAKE_LIST}\n"
        "    params: {responses: [hello]}\n",
        encoding="utf-8",
    )
    async with Gateway(load_catalog(path), http=http, environ={}) as gateway:
        assert (await gateway.invoke("lc", hello())).text == "hello"


def test_target_with_missing_module_raises_import_error(http: httpx.AsyncClient) -> None:
    target = "agentmesh_no_such_module.chat:Model"
    with pytest.raises(ImportError, match=target.replace(".", r"\.")) as info:
        LangChainClient(spec(target=target), ClientContext(http=http, environ={}))
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("collections:OrderedDict", "not a BaseChatModel"),
        ("langchain_core.language_models.fake_chat_models:NoSuchModel", "names nothing"),
    ],
)
def test_target_that_is_not_a_chat_model_is_a_bad_request(
    http: httpx.AsyncClient, target: str, message: str
) -> None:
    with pytest.raises(BadRequest, match=message) as info:
        LangChainClient(spec(target=target), ClientContext(http=http, environ={}))
    assert info.value.model_id == "lc"


async def test_given_chat_model_wins_over_target(make: Make) -> None:
    client = make(FakeListChatModel(responses=["given"]), target="agentmesh_no_such_module:X")
    assert (await client.invoke(hello())).text == "given"


# --- classify_exception ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (RateLimitError("slow down"), RateLimited),
        (APITimeoutError("request timed out"), Timeout),
        (APIConnectionError("connection failed"), Unavailable),
        (AuthenticationError("bad key"), AuthError),
        (StatusError("This model's maximum context length is 8192 tokens", 400), ContextOverflow),
        (StatusError("invalid parameter", 400), BadRequest),
        (StatusError("unauthorized", 401), AuthError),
        (StatusError("upstream down", 503), Unavailable),
        (TimeoutError(), Timeout),
        (httpx.ConnectError("refused"), Unavailable),
        (httpx.ReadTimeout("slow"), Timeout),
        (OutputParserException("could not parse"), MalformedResponse),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_classify_exception(exc: Exception, error_type: type[ModelError]) -> None:
    error = classify_exception(exc, SPEC)
    assert type(error) is error_type
    assert error.kind == error_type.kind
    assert error.model_id == "lc"
    assert error.provider == "langchain"
    assert str(error)  # never an empty message


def test_classified_messages_keep_the_original_text() -> None:
    assert "slow down" in str(classify_exception(RateLimitError("slow down"), SPEC))
    assert "TimeoutError" in str(classify_exception(TimeoutError(), SPEC))


def test_status_429_carries_retry_after() -> None:
    error = classify_exception(StatusError("too many", 429, {"retry-after": "3"}), SPEC)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 3.0
    assert error.status_code == 429
    assert (error.retryable, error.fallback) == (True, True)


def test_status_takes_precedence_over_the_class_name() -> None:
    class ConnectionProblem(StatusError):
        pass

    assert isinstance(classify_exception(ConnectionProblem("bad", 401), SPEC), AuthError)


@pytest.mark.parametrize(
    "exc", [TypeError("boom"), ValueError("bad value"), StatusError("fine", "429"), KeyError("k")]
)
def test_unrecognised_exceptions_are_not_classified(exc: Exception) -> None:
    assert classify_exception(exc, SPEC) is None


def test_model_errors_pass_through_unchanged() -> None:
    error = Unavailable("already classified", model_id="other")
    assert classify_exception(error, SPEC) is error


# --- errors through invoke ------------------------------------------------------------------


async def test_rate_limit_inside_invoke_surfaces_as_rate_limited(make: Make) -> None:
    original = RateLimitError("slow down")
    with pytest.raises(RateLimited) as info:
        await make(RaisingModel(error=original)).invoke(hello())
    assert info.value.__cause__ is original
    assert info.value.model_id == "lc"
    assert info.value.retryable is True


async def test_type_error_propagates_unchanged(make: Make) -> None:
    original = TypeError("bug in user code")
    with pytest.raises(TypeError) as info:
        await make(RaisingModel(error=original)).invoke(hello())
    assert info.value is original


async def test_non_json_answer_to_json_request_is_malformed(make: Make) -> None:
    client = make(FakeListChatModel(responses=["Sure! Here it is."]))
    with pytest.raises(MalformedResponse, match="not JSON") as info:
        await client.invoke(hello(response_format=ResponseFormat()))
    assert (info.value.retryable, info.value.fallback) == (True, True)
    assert info.value.model_id == "lc"


async def test_json_answer_to_json_request_is_returned(make: Make) -> None:
    client = make(FakeListChatModel(responses=['{"city": "Oslo"}']))
    response = await client.invoke(hello(response_format=ResponseFormat()))
    assert json.loads(response.text) == {"city": "Oslo"}


async def test_tools_on_a_model_without_bind_tools_is_a_bad_request(make: Make) -> None:
    client = make(FakeListChatModel(responses=["x"]))
    with pytest.raises(BadRequest, match="does not support tool calling") as info:
        await client.invoke(hello(tools=[WEATHER]))
    assert info.value.model_id == "lc"
    assert (info.value.retryable, info.value.fallback) == (False, False)


async def test_model_error_is_not_its_own_cause(make: Make) -> None:
    with pytest.raises(BadRequest) as info:
        await make(FakeListChatModel(responses=["x"])).invoke(hello(tools=[WEATHER]))
    assert info.value.__cause__ is not info.value


async def test_tools_are_bound_in_openai_format_and_calls_parsed(make: Make) -> None:
    model = ToolModel()
    response = await make(model).invoke(hello(tools=[WEATHER], tool_choice="weather"))
    [(_, _, kwargs)] = model.seen
    assert kwargs["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assert kwargs["tool_choice"] == "weather"
    assert response.tool_calls == (ToolCall("call_1", "weather", {"city": "Oslo"}),)
    assert response.finish_reason == "tool_calls"
    assert response.to_message().tool_calls[0]["args"] == {"city": "Oslo"}
