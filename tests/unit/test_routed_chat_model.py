"""`RoutedChatModel`: LangChain's standard chat-model suites, routing, and a stock agent.

Everything runs against scripted models: no network (the unit conftest blocks
sockets). The "integration" suite is integration by name only: its tests call
the model end to end, through the router, the resilient caller and the gateway,
and the scripted models' reply rules answer what each test asks.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from functools import cached_property
from typing import Annotated, Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel, Field, ValidationError
from typing_extensions import TypedDict

from agentmesh.integrations import RoutedChatModel
from agentmesh.models.catalog import UnknownModel
from agentmesh.models.gateway import Gateway
from agentmesh.models.spec import Capability, ModelSpec
from agentmesh.models.types import ModelRequest, ResponseFormat
from agentmesh.resilience import Call, CallFailed, CallResult, ResiliencePolicy, ResilientCaller
from agentmesh.resilience.caller import Streamed
from agentmesh.routing import Policy, Router
from agentmesh.routing.types import RouteRequest
from agentmesh.testing import (
    RecordingTransport,
    openai_completion,
    openai_stream,
    scripted_catalog,
    scripted_model,
)


async def _no_sleep(_: float) -> None:
    return None


class RecordingCaller(ResilientCaller):
    """A real caller that also keeps every (route request, model request) it served."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[RouteRequest, ModelRequest]] = []

    def _seen(self, call: Call) -> None:
        assert isinstance(call.request, ModelRequest)
        self.seen.append((call.route, call.request))

    async def call(self, call: Call) -> CallResult:
        self._seen(call)
        return await super().call(call)

    async def stream(self, call: Call) -> AsyncIterator[Streamed]:
        self._seen(call)
        async for item in super().stream(call):
            yield item


def make_caller(*specs: ModelSpec) -> RecordingCaller:
    catalog = scripted_catalog(*specs)
    return RecordingCaller(Router(catalog), Gateway(catalog), sleep=_no_sleep)


# Reply rules that make the standard suites' requests meaningful: each rule calls the
# test's tool when the request offers it, then answers with the tool's result.
SUITE_RULES: list[dict[str, Any]] = [
    {
        "match": r"magic_function\(3\)",
        "tool": "magic_function",
        "arguments": {"input": 3},
        "reply": "magic_function(3) is {tool_result}.",
    },
    {
        "match": r"magic_function_no_args\(\)",
        "tool": "magic_function_no_args",
        "arguments": {},
        "reply": "magic_function_no_args() is {tool_result}.",
    },
    {
        "match": r"weather in San Francisco",
        "tool": "get_weather",
        "arguments": {"location": "San Francisco, CA"},
        "reply": "In San Francisco: {tool_result}",
    },
    {
        "match": r"Pirate greeting",
        "tool": "greeting_generator",
        "arguments": {"answer_style": "pirate"},
        "reply": "{tool_result}",
    },
    {
        "match": "你好啊集团",
        "tool": "unicode_customer",
        "arguments": {"customer_name": "你好啊集团", "description": "Chinese technology company"},
        "reply": "{tool_result}",
    },
    {
        "match": "こんにちは株式会社",
        "tool": "unicode_customer",
        "arguments": {"customer_name": "こんにちは株式会社", "description": "Japanese company"},
        "reply": "{tool_result}",
    },
    # test_tool_choice forces a call on "Hello!" (the scripted provider ignores tool_choice).
    {
        "match": r"(?m)^Hello!$",
        "tool": "magic_function",
        "arguments": {"input": 1},
        "reply": "Hello!",
    },
    {
        "match": r"What is 3 \+ 4",
        "tool": "my_adder_tool",
        "arguments": {"a": 3, "b": 4},
        "reply": "3 + 4 = {tool_result}",
    },
    {
        "match": r"What is 1 \+ 2",
        "tool": "my_adder_tool",
        "arguments": {"a": 1, "b": 2},
        "reply": "1 + 2: {tool_result}",
    },
    # JSON mode: the prompt describes the object; the model answers with it.
    {
        "match": r"Return the result as a JSON with 'setup' and 'punchline' keys",
        "reply": json.dumps(
            {"setup": "Why did the cat sit on the laptop?", "punchline": "To watch the mouse."}
        ),
    },
]


def suite_caller() -> RecordingCaller:
    """Two tiers with the same rules: routing picks ``small``; ``model="strong"`` pins."""
    return make_caller(
        scripted_model("small", tier=1, replies=SUITE_RULES),
        scripted_model("strong", tier=2, replies=SUITE_RULES),
    )


class TestRoutedChatModelUnit(ChatModelUnitTests):
    """LangChain's standard unit suite.

    Skipped by the suite itself, through its documented properties:
    ``test_init_from_env`` (no ``init_from_env_params``: a routed model reads no
    environment; API keys are named in the catalog) and ``test_serdes`` (not
    ``is_lc_serializable``: the caller is a live process object).
    """

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RoutedChatModel

    @cached_property
    def _caller(self) -> ResilientCaller:
        return suite_caller()

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"caller": self._caller, "node": "suite"}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str | None:
        return "strong"


class TestRoutedChatModelIntegration(ChatModelIntegrationTests):
    """LangChain's standard integration suite, end to end over scripted models.

    Structured output runs with ``method="json_schema"``: the request carries the
    schema as a JSON response format (``json`` capability) and the scripted model
    answers with a schema-shaped object. The default ``function_calling`` method
    (LangChain's own, over ``bind_tools``) is tested below with rules naming the
    schema's tool: a scripted rule calls one tool name per prompt, and the suite
    asks the same prompt of ``Joke`` and ``JokeDict``.

    Skipped by the suite itself, through its documented properties: image, PDF,
    audio and Anthropic-format inputs (``supports_*`` false: those tests download
    files over the network, and scripted models read text only) and
    ``test_stream_time`` (``enable_vcr_tests`` false: there is no HTTP to record).
    """

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RoutedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"caller": suite_caller(), "node": "suite"}

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "json_schema"}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str | None:
        return "strong"


# --- routing -----------------------------------------------------------------------------


async def test_policy_min_tier_routes_to_the_strong_model() -> None:
    caller = make_caller(scripted_model("weak", tier=1), scripted_model("strong", tier=2))
    cheap = await RoutedChatModel(caller=caller).ainvoke("Summarise the report")
    assert cheap.response_metadata["model_id"] == "weak"

    model = RoutedChatModel(caller=caller, node="analyst", policy=Policy(min_tier=2))
    answer = await model.ainvoke("Summarise the report")

    meta = answer.response_metadata
    assert answer.content == "Simulated reply from strong."
    assert meta["model_name"] == "scripted:strong"
    assert meta["model_id"] == "strong"
    assert meta["route"]["strategy"] == "cheapest"
    assert meta["route"]["chosen"] == "strong"
    assert "strong" in meta["route"]["reason"]
    assert meta["finish_reason"] == "stop"
    assert meta["simulated"] is True
    assert [a["outcome"] for a in meta["attempts"]] == ["ok"]
    assert isinstance(answer, AIMessage)
    usage = answer.usage_metadata
    assert usage is not None
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    route, _ = caller.seen[-1]
    assert (route.node, route.role, route.prompt) == ("analyst", "executor", "Summarise the report")


def _down_then_up() -> RecordingCaller:
    # Equal price and tier: the id breaks the tie, so the down model "m1" is chosen first.
    return make_caller(scripted_model("m1", down=True), scripted_model("m2", reply="from m2"))


async def test_a_down_model_falls_back_and_every_attempt_is_recorded() -> None:
    answer = await RoutedChatModel(caller=_down_then_up()).ainvoke("hello")

    meta = answer.response_metadata
    assert answer.content == "from m2"
    assert meta["model_id"] == "m2"
    assert meta["route"]["chosen"] == "m1"
    attempts = meta["attempts"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [
        ("m1", "error"),
        ("m1", "error"),
        ("m1", "error"),
        ("m2", "ok"),
    ]
    assert {a["error_type"] for a in attempts[:-1]} == {"unavailable"}
    assert attempts[-1]["reason"] == "fallback after unavailable on m1"


async def test_a_stream_that_fails_before_its_first_token_falls_back() -> None:
    chunks = [c async for c in RoutedChatModel(caller=_down_then_up()).astream("hello")]

    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert full.content == "from m2"
    assert full.response_metadata["model_id"] == "m2"
    attempts = full.response_metadata["attempts"]
    assert (attempts[0]["model"], attempts[0]["reason"]) == ("m1", "primary (streamed)")
    assert attempts[0]["error_type"] == "unavailable"
    assert (attempts[-1]["model"], attempts[-1]["outcome"]) == ("m2", "ok")
    assert sum(1 for c in chunks if c.usage_metadata) == 1


async def test_when_every_model_fails_call_failed_is_raised_as_is() -> None:
    caller = make_caller(scripted_model("m1", down=True), scripted_model("m2", down=True))
    model = RoutedChatModel(caller=caller, resilience=ResiliencePolicy(retry={"max_attempts": 1}))

    with pytest.raises(CallFailed) as failed:
        await model.ainvoke("hello")
    assert failed.value.kind == "unavailable"
    assert [a.model for a in failed.value.attempts] == ["m1", "m2"]
    with pytest.raises(CallFailed):
        [c async for c in model.astream("hello")]


async def test_streaming_sends_the_answer_word_by_word_with_metadata_on_the_last_chunk() -> None:
    caller = make_caller(scripted_model("m", reply="one two three four"))
    chunks = [c async for c in RoutedChatModel(caller=caller).astream("count")]

    texts = [c.content for c in chunks]
    assert texts[:4] == ["one ", "two ", "three ", "four"]
    last = chunks[-1]
    assert last.chunk_position == "last"
    assert last.usage_metadata is not None
    assert last.response_metadata["model_name"] == "scripted:m"
    assert last.response_metadata["attempts"][0]["reason"] == "primary (streamed)"
    assert all(not c.usage_metadata and not c.response_metadata for c in chunks[:-1])


def test_sync_calls_run_on_a_private_loop_even_inside_a_running_loop() -> None:
    model = RoutedChatModel(caller=make_caller(scripted_model("m", reply="sync {prompt}")))

    async def inside_a_loop() -> tuple[BaseMessage, list[str]]:
        answer = model.invoke("hi")  # blocking, from a coroutine: must not deadlock
        chunks = [str(c.content) for c in model.stream("there")]
        return answer, chunks

    answer, chunks = asyncio.run(inside_a_loop())
    assert answer.content == "sync hi"
    assert "".join(chunks) == "sync there"
    assert model.batch(["a", "b"])[1].content == "sync b"


def test_a_stream_abandoned_early_is_closed() -> None:
    caller = make_caller(scripted_model("m", reply="a b c d e f"))
    stream = RoutedChatModel(caller=caller).stream("go")
    assert next(stream).content == "a "
    stream.close()  # must not hang; the routed call's reservation is released
    assert RoutedChatModel(caller=caller).invoke("again").content == "a b c d e f"


def test_streaming_true_streams_inside_invoke() -> None:
    tokens: list[str] = []

    class Tokens(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    caller = make_caller(scripted_model("m", reply="x y z"))
    answer = RoutedChatModel(caller=caller, streaming=True).invoke(
        "go", config={"callbacks": [Tokens()]}
    )
    assert answer.content == "x y z"
    assert tokens[:3] == ["x ", "y ", "z"]
    assert answer.response_metadata["model_id"] == "m"


# --- requests ----------------------------------------------------------------------------


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_tools_stop_and_limits_reach_the_model_request_and_the_route_request() -> None:
    caller = make_caller(scripted_model("m"), scripted_model("m2", tier=2))
    model = RoutedChatModel(caller=caller, node="calc", task="math", max_tokens=50, stop=["END"])

    model.bind_tools([add], tool_choice="add").invoke("What is 2 + 2?", temperature=0.2)

    route, request = caller.seen[-1]
    assert route.capabilities == {Capability.TOOLS}
    assert (route.node, route.task, route.max_output_tokens) == ("calc", "math", 50)
    assert route.prompt == "What is 2 + 2?"
    assert route.prompt_tokens
    assert route.prompt_tokens > 0
    assert [t.name for t in request.tools] == ["add"]
    assert request.tools[0].description == "Add two integers."
    assert set(request.tools[0].parameters["properties"]) == {"a", "b"}
    assert request.tool_choice == "add"
    assert (request.max_tokens, request.temperature, request.stop) == (50, 0.2, ("END",))

    answer = model.invoke("plain", stop=["STOP"], escalation=1, agentmesh_run_id="run-7")
    assert answer.response_metadata["model_id"] == "m2"
    route, request = caller.seen[-1]
    assert route.capabilities == frozenset()
    assert (route.escalation, route.run_id) == (1, "run-7")
    assert (request.tools, request.tool_choice, request.stop) == ((), None, ("STOP",))


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("any", "required"),
        ("required", "required"),
        (True, "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("add", "add"),
        ({"type": "function", "function": {"name": "add"}}, "add"),
        ({"type": "tool", "name": "add"}, "add"),
    ],
)
def test_tool_choice_is_normalised(choice: Any, expected: str) -> None:
    model = RoutedChatModel(caller=make_caller(scripted_model("m")))
    bound = model.bind_tools([add], tool_choice=choice)
    assert bound.kwargs["tool_choice"] == expected  # type: ignore[attr-defined]
    assert bound.kwargs["tools"][0]["function"]["name"] == "add"  # type: ignore[attr-defined]


def test_bind_tools_takes_functions_pydantic_classes_and_schemas() -> None:
    class Lookup(BaseModel):
        """Look a word up."""

        word: str

    def shout(text: str) -> str:
        """Shout the text."""
        return text.upper()

    schema = {"name": "ping", "description": "Ping.", "parameters": {"type": "object"}}
    model = RoutedChatModel(caller=make_caller(scripted_model("m")))
    bound = model.bind_tools([add, Lookup, shout, schema])
    names = [t["function"]["name"] for t in bound.kwargs["tools"]]  # type: ignore[attr-defined]
    assert names == ["add", "Lookup", "shout", "ping"]
    with pytest.raises(ValueError, match="names no bound tool"):
        model.bind_tools([add], tool_choice="subtract")


def test_messages_are_sent_as_system_human_ai_and_tool_messages() -> None:
    caller = make_caller(scripted_model("m"))
    model = RoutedChatModel(caller=caller)
    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1", "type": "tool_call"}
    history: list[BaseMessage] = [
        SystemMessage("be brief"),
        ChatMessage(role="user", content="add 1 and 2"),
        AIMessageChunk(
            content="",
            tool_call_chunks=[{"name": "add", "args": '{"a": 1, "b": 2}', "id": "c1", "index": 0}],
        ),
        ToolMessage("3", tool_call_id="c1"),
        ChatMessage(role="assistant", content="It is 3."),
        HumanMessage("thanks"),
    ]

    model.invoke(history)

    sent = caller.seen[-1][1].messages
    assert [type(m) for m in sent] == [
        SystemMessage,
        HumanMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
        HumanMessage,
    ]
    assert isinstance(sent[2], AIMessage)
    assert sent[2].tool_calls == [call]
    with pytest.raises(ValueError, match="FunctionMessage"):
        model.invoke([FunctionMessage(name="f", content="x")])


def test_unknown_options_and_init_arguments_are_rejected() -> None:
    caller = make_caller(scripted_model("m"))
    model = RoutedChatModel(caller=caller)
    with pytest.raises(TypeError, match="unsupported call options \\['top_k'\\]"):
        model.invoke("hi", top_k=3)
    model.invoke("hi", tool_choice="auto")  # no tools bound: the choice has nothing to force
    assert caller.seen[-1][1].tool_choice is None
    with pytest.raises(ValidationError, match="temprature"):
        RoutedChatModel(caller=caller, temprature=0.1)  # type: ignore[call-arg]
    with pytest.raises(UnknownModel):
        model.invoke("hi", model="nope")


def test_a_pinned_model_serves_and_traces_under_its_name() -> None:
    caller = make_caller(scripted_model("weak", tier=1), scripted_model("strong", tier=2))
    model = RoutedChatModel(caller=caller)
    answer = model.invoke("hi", model="strong")
    assert answer.response_metadata["model_id"] == "strong"
    assert model._get_ls_params(model="strong")["ls_model_name"] == "strong"
    assert model._get_ls_params()["ls_model_name"] == "agentmesh:chat"
    assert caller.seen[-1][0].exclude == {"weak"}


# --- structured output -------------------------------------------------------------------


class Verdict(BaseModel):
    """A verdict on a claim."""

    claim: str = Field(description="the claim judged")
    holds: bool


class VerdictDict(TypedDict):
    """A verdict on a claim."""

    claim: Annotated[str, ..., "the claim judged"]
    holds: bool


VERDICT_RULES = [
    {
        "match": "pydantic verdict",
        "tool": "Verdict",
        "arguments": {"claim": "cats purr", "holds": True},
        "reply": "",
    },
    {
        "match": "typed verdict",
        "tool": "VerdictDict",
        "arguments": {"claim": "dogs fly", "holds": False},
        "reply": "",
    },
]


def test_default_structured_output_is_langchains_bind_tools_implementation() -> None:
    caller = make_caller(scripted_model("m", replies=VERDICT_RULES))
    model = RoutedChatModel(caller=caller)

    verdict = model.with_structured_output(Verdict).invoke("Give a pydantic verdict")
    assert verdict == Verdict(claim="cats purr", holds=True)
    route, request = caller.seen[-1]
    assert route.capabilities == {Capability.TOOLS}
    assert request.tool_choice == "required"
    assert request.response_format is None

    as_dict = model.with_structured_output(VerdictDict).invoke("Give a typed verdict")
    assert as_dict == {"claim": "dogs fly", "holds": False}

    raw = model.with_structured_output(Verdict, include_raw=True).invoke("pydantic verdict")
    assert isinstance(raw, dict)
    assert raw["parsed"] == Verdict(claim="cats purr", holds=True)
    assert raw["raw"].tool_calls[0]["name"] == "Verdict"


@pytest.mark.parametrize("schema", [Verdict, VerdictDict, Verdict.model_json_schema()])
def test_json_schema_structured_output_asks_for_json(schema: Any) -> None:
    caller = make_caller(scripted_model("m", reply="yes"))
    model = RoutedChatModel(caller=caller)

    result = model.with_structured_output(schema, method="json_schema").invoke("judge: cats purr")

    route, request = caller.seen[-1]
    assert route.capabilities == {Capability.JSON}
    assert request.tools == ()
    assert isinstance(request.response_format, ResponseFormat)
    assert request.response_format.name in ("Verdict", "VerdictDict")
    assert request.response_format.schema is not None
    assert set(request.response_format.schema["properties"]) == {"claim", "holds"}
    parsed = result.model_dump() if isinstance(result, BaseModel) else result
    assert parsed == {"claim": "yes", "holds": True}


def test_json_mode_asks_for_any_json_object() -> None:
    caller = make_caller(scripted_model("m", reply='{"claim": "x", "holds": false}'))
    model = RoutedChatModel(caller=caller)
    result = model.with_structured_output(Verdict, method="json_mode").invoke("judge, in JSON")
    assert result == Verdict(claim="x", holds=False)
    assert caller.seen[-1][1].response_format == ResponseFormat()
    raw = model.with_structured_output(Verdict, method="json_schema", include_raw=True).invoke("x")
    assert isinstance(raw, dict)
    assert raw["parsed"] == Verdict(claim="x", holds=False)
    assert raw["parsing_error"] is None
    assert isinstance(raw["raw"], AIMessage)
    with pytest.raises(ValueError, match="unknown method"):
        model.with_structured_output(Verdict, method="xml")


# --- a stock agent -----------------------------------------------------------------------


def _create_agent() -> Callable[[BaseChatModel, Sequence[Any]], Any]:
    """LangChain 1.x's ``create_agent`` when installed, else LangGraph's prebuilt ReAct agent."""
    try:
        from langchain.agents import create_agent  # type: ignore[import-not-found]
    except ImportError:
        from langgraph.prebuilt import create_react_agent

        def build(model: BaseChatModel, tools: Sequence[Any]) -> Any:
            with warnings.catch_warnings():  # deprecated in favour of langchain's create_agent
                warnings.simplefilter("ignore", DeprecationWarning)
                return create_react_agent(model, tools)

        return build
    return lambda model, tools: create_agent(model, tools)


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_a_stock_agent_calls_the_tool_then_answers_with_its_result(mode: str) -> None:
    looked_up: list[str] = []

    @tool
    def population(city: str) -> str:
        """Population of a city."""
        looked_up.append(city)
        return "2.1 million"

    caller = make_caller(
        scripted_model(
            "m",
            replies=[
                {
                    "match": "population of Paris",
                    "tool": "population",
                    "arguments": {"city": "Paris"},
                    "reply": "Paris has {tool_result} inhabitants.",
                }
            ],
        )
    )
    agent = _create_agent()(RoutedChatModel(caller=caller, node="agent"), [population])
    question = {"messages": [HumanMessage("What is the population of Paris?")]}

    if mode == "async":
        state = await agent.ainvoke(question)
    else:
        state = await asyncio.to_thread(agent.invoke, question)

    messages = state["messages"]
    assert looked_up == ["Paris"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert messages[1].tool_calls[0]["args"] == {"city": "Paris"}
    assert messages[2].content == "2.1 million"
    assert messages[-1].content == "Paris has 2.1 million inhabitants."
    assert messages[-1].response_metadata["model_id"] == "m"
    routes = [route for route, _ in caller.seen]
    assert [r.capabilities for r in routes] == [{Capability.TOOLS}] * 2
    assert {r.node for r in routes} == {"agent"}


# --- an HTTP provider ----------------------------------------------------------------------


def test_an_openai_compatible_model_gets_the_tools_and_the_tool_round_trip() -> None:
    spec = ModelSpec.model_validate(
        {
            "id": "gpt",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": "http://llm.test/v1",
            "api_key_env": None,
            "capabilities": ["tools", "streaming"],
        }
    )
    transport = RecordingTransport(
        [
            openai_completion(
                None,
                model="gpt-4o-mini-2024",
                tool_calls=[{"id": "c1", "name": "add", "arguments": '{"a": 2, "b": 3}'}],
                finish_reason="tool_calls",
            ),
            openai_completion("2 + 3 = 5", model="gpt-4o-mini-2024", usage=(30, 6)),
            openai_stream(["The answer ", "is 5."], model="gpt-4o-mini-2024", usage=(12, 4)),
        ]
    )
    catalog = scripted_catalog(spec)
    gateway = Gateway(catalog, http=httpx.AsyncClient(transport=transport), environ={})
    model = RoutedChatModel(caller=ResilientCaller(Router(catalog), gateway))
    with_tools = model.bind_tools([add], tool_choice="add")

    question = HumanMessage("What is 2 + 3?")
    call = with_tools.invoke([question])
    result = add.invoke(call.tool_calls[0])
    answer = with_tools.invoke([question, call, result])
    streamed = list(model.stream("And in words?"))  # sync calls share one private loop

    assert call.tool_calls == [
        {"name": "add", "args": {"a": 2, "b": 3}, "id": "c1", "type": "tool_call"}
    ]
    assert answer.content == "2 + 3 = 5"
    assert answer.response_metadata["model_name"] == "gpt-4o-mini-2024"
    assert answer.response_metadata["simulated"] is False
    assert answer.usage_metadata == {"input_tokens": 30, "output_tokens": 6, "total_tokens": 36}
    first, second, third = transport.bodies()
    assert first["tools"][0]["function"]["name"] == "add"
    assert set(first["tools"][0]["function"]["parameters"]["properties"]) == {"a", "b"}
    assert first["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert second["messages"][1]["tool_calls"][0]["id"] == "c1"
    assert second["messages"][2] == {"role": "tool", "content": "5", "tool_call_id": "c1"}
    assert third["stream"] is True
    assert "".join(str(c.content) for c in streamed) == "The answer is 5."
    assert streamed[-1].usage_metadata == {
        "input_tokens": 12,
        "output_tokens": 4,
        "total_tokens": 16,
    }
