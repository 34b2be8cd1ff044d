from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agentmesh.models import (
    AuthError,
    BadRequest,
    ContentFiltered,
    ContextOverflow,
    Gateway,
    MalformedResponse,
    ModelError,
    ModelRequest,
    RateLimited,
    ReplyRule,
    ResponseFormat,
    ScriptedClient,
    Timeout,
    ToolSpec,
    Unavailable,
    estimate_tokens,
)
from agentmesh.testing import scripted_catalog, scripted_model


def client(**behavior: object) -> ScriptedClient:
    return ScriptedClient(scripted_model("sim", **behavior))


async def outcomes(c: ScriptedClient, n: int) -> list[str]:
    kinds = []
    for _ in range(n):
        try:
            await c.invoke(ModelRequest.of("hi"))
            kinds.append("ok")
        except ModelError as exc:
            kinds.append(exc.kind)
    return kinds


async def test_default_reply_expands_prompt_and_model() -> None:
    response = await client(reply="{model} says: {prompt}").invoke(ModelRequest.of("ping {x}"))
    assert response.text == "sim says: ping {x}"
    assert response.simulated is True
    assert response.served_model == "scripted:sim"
    assert response.usage.estimated is True


async def test_first_matching_rule_wins() -> None:
    c = client(
        reply="default",
        replies=[
            ReplyRule(match=r"\d+\s*\+\s*\d+", reply="4"),
            ReplyRule(match=r"(?i)capital", reply="Paris"),
            ReplyRule(match=r"2", reply="never: the first rule matched"),
        ],
    )
    assert (await c.invoke(ModelRequest.of("what is 2 + 2"))).text == "4"
    assert (await c.invoke(ModelRequest.of("The CAPITAL of France"))).text == "Paris"
    assert (await c.invoke(ModelRequest.of("nothing matches"))).text == "default"


async def test_token_counts_follow_the_text_and_drive_cost() -> None:
    spec = scripted_model(
        "sim", reply="word " * 100, fields={"pricing": {"input": 1, "output": 10}}
    )
    short = await ScriptedClient(spec).invoke(ModelRequest.of("hi"))
    long = await ScriptedClient(spec).invoke(ModelRequest.of("hi " * 500))
    assert short.usage.output_tokens == estimate_tokens("word " * 100) >= 100
    assert long.usage.input_tokens > short.usage.input_tokens + 400
    assert long.cost_usd == pytest.approx(
        (long.usage.input_tokens * 1.0 + long.usage.output_tokens * 10.0) / 1e6
    )


async def test_fail_first_then_recover() -> None:
    assert await outcomes(client(fail_first=2, fail_with="rate_limit"), 4) == [
        "rate_limited",
        "rate_limited",
        "ok",
        "ok",
    ]


async def test_down_fails_every_call() -> None:
    assert await outcomes(client(down=True, fail_with="server_error"), 3) == ["unavailable"] * 3


async def test_fail_rate_is_reproducible_with_a_seed() -> None:
    a = await outcomes(client(fail_rate=0.3, seed=11), 200)
    b = await outcomes(client(fail_rate=0.3, seed=11), 200)
    c = await outcomes(client(fail_rate=0.3, seed=12), 200)
    assert a == b
    assert a != c
    assert 40 <= a.count("unavailable") <= 80  # 30% of 200, loosely


@pytest.mark.parametrize(
    ("fail_with", "error_type"),
    [
        ("rate_limit", RateLimited),
        ("timeout", Timeout),
        ("server_error", Unavailable),
        ("malformed", MalformedResponse),
        ("content_filter", ContentFiltered),
        ("auth", AuthError),
        ("bad_request", BadRequest),
        ("context_overflow", ContextOverflow),
    ],
)
async def test_every_failure_kind_raises_its_taxonomy_error(fail_with, error_type) -> None:
    with pytest.raises(error_type) as info:
        await client(down=True, fail_with=fail_with).invoke(ModelRequest.of("hi"))
    assert info.value.model_id == "sim"
    assert "simulated" in str(info.value)


async def test_rate_limit_carries_the_scripted_retry_after() -> None:
    with pytest.raises(RateLimited) as info:
        await client(down=True, fail_with="rate_limit", retry_after=2.5).invoke(
            ModelRequest.of("x")
        )
    assert info.value.retry_after == 2.5


async def test_prompt_larger_than_the_context_window_overflows() -> None:
    spec = scripted_model("tiny", fields={"context_window": 50, "max_output_tokens": 10})
    with pytest.raises(ContextOverflow):
        await ScriptedClient(spec).invoke(ModelRequest.of("word " * 100))


async def test_output_is_cut_at_max_tokens() -> None:
    response = await client(reply="one two three four five six").invoke(
        ModelRequest.of("x", max_tokens=3)
    )
    assert response.text == "one two three"
    assert response.finish_reason == "length"


async def test_json_requests_get_json() -> None:
    response = await client(reply="plain words").invoke(
        ModelRequest.of("x", response_format=ResponseFormat())
    )
    assert response.text == '{"answer": "plain words"}'
    kept = await client(reply='{"a": 1}').invoke(
        ModelRequest.of("x", response_format=ResponseFormat())
    )
    assert kept.text == '{"a": 1}'


async def test_stream_yields_the_same_text_word_by_word() -> None:
    c = client(reply="alpha beta gamma")
    events = [e async for e in c.stream(ModelRequest.of("x"))]
    assert [e.delta for e in events[:-1]] == ["alpha ", "beta ", "gamma"]
    assert events[-1].response is not None
    assert events[-1].response.text == "alpha beta gamma"


async def test_latency_is_simulated_without_blocking(monkeypatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("agentmesh.models.scripted.asyncio.sleep", fake_sleep)
    await client(reply="a b c d", latency_ms=20, ms_per_output_token=5).invoke(ModelRequest.of("x"))
    assert slept == [pytest.approx(0.020 + 0.005 * estimate_tokens("a b c d"))]


async def test_gateway_serves_scripted_models() -> None:
    async with Gateway(scripted_catalog(scripted_model("a", reply="A"))) as gateway:
        response = await gateway.invoke("a", ModelRequest.of("x"))
    assert response.text == "A"


async def test_json_requests_with_a_schema_get_a_value_of_that_shape() -> None:
    schema = {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "passed": {"type": "boolean"},
            "priority": {"enum": ["low", "high"]},
            "note": {"type": ["null", "string"]},
        },
        "required": ["steps", "score", "passed", "priority", "note"],
    }
    response = await client(reply="plain words").invoke(
        ModelRequest.of("x", response_format=ResponseFormat(schema=schema))
    )
    assert json.loads(response.text) == {
        "steps": ["plain words (1)", "plain words (2)", "plain words (3)"],
        "score": 1.0,
        "passed": True,
        "priority": "low",
        "note": "plain words",
    }


async def test_a_rule_calls_an_offered_tool_then_answers_with_its_result() -> None:
    rule = {
        "match": "weather",
        "tool": "forecast",
        "arguments": {"city": "Oslo"},
        "reply": "{tool_result}!",
    }
    model = client(replies=[rule])
    offered = ModelRequest.of("weather please", tools=[ToolSpec("forecast")])
    first = await model.invoke(offered)
    assert first.finish_reason == "tool_calls"
    assert [(c.name, dict(c.arguments)) for c in first.tool_calls] == [
        ("forecast", {"city": "Oslo"})
    ]
    call = first.tool_calls[0]
    follow = ModelRequest(
        messages=[
            *offered.messages,
            AIMessage(
                "", tool_calls=[{"name": call.name, "args": dict(call.arguments), "id": call.id}]
            ),
            ToolMessage("rain", tool_call_id=call.id),
        ],
        tools=offered.tools,
    )
    second = await model.invoke(follow)
    assert second.text == "rain!"
    assert not second.tool_calls
    not_offered = await model.invoke(ModelRequest.of("weather please"))
    assert not not_offered.tool_calls, "no tool call when the request offers no tool"


async def test_rules_match_any_user_message_of_the_conversation() -> None:
    model = client(replies=[{"match": "^Task: review", "reply": "reviewed"}], reply="default")
    request = ModelRequest(
        messages=[HumanMessage("Task: review this"), AIMessage("meh"), HumanMessage("try again")]
    )
    assert (await model.invoke(request)).text == "reviewed"
