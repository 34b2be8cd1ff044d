"""Provider answers are checked: implausible usage or empty content is a ``malformed_response``.

Each is retried or falls back like any other failure, and no answer ever books a
negative or absurd cost.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from agentmesh.models import Catalog, Gateway, MalformedResponse, ModelRequest, ModelSpec
from agentmesh.resilience import Call, ResiliencePolicy, ResilientCaller
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing import RecordingTransport


def openai_spec(model_id: str = "oa", tier: int = 1) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": model_id,
            "provider": "openai",
            "model": "m",
            "base_url": f"http://{model_id}.test/v1",
            "pricing": {"input": 1.0, "output": 2.0},
            "tier": tier,
        }
    )


def anthropic_spec() -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "id": "an",
            "provider": "anthropic",
            "model": "claude",
            "base_url": "http://an.test",
            "api_key_env": "ANTHROPIC_API_KEY",
            "pricing": {"input": 1.0, "output": 2.0},
        }
    )


def openai_body(message: Any = None, usage: Any = None, **extra: Any) -> dict[str, Any]:
    body = {
        "model": "m",
        "choices": [{"index": 0, "message": message or {"content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5} if usage is None else usage,
    }
    return {**body, **extra}


def anthropic_body(content: Any = None, usage: Any = None) -> dict[str, Any]:
    return {
        "model": "claude",
        "content": [{"type": "text", "text": "ok"}] if content is None else content,
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 5} if usage is None else usage,
    }


OPENAI_BAD: dict[str, dict[str, Any]] = {
    "negative usage": openai_body(usage={"prompt_tokens": -10, "completion_tokens": 5}),
    "absurd usage": openai_body(usage={"prompt_tokens": 10**30, "completion_tokens": 5}),
    "float usage": openai_body(usage={"prompt_tokens": 1e30, "completion_tokens": 5}),
    "string usage": openai_body(usage={"prompt_tokens": "10", "completion_tokens": 5}),
    "non-numeric usage": openai_body(usage={"prompt_tokens": "many", "completion_tokens": 5}),
    "bool usage": openai_body(usage={"prompt_tokens": True, "completion_tokens": 5}),
    "usage not an object": openai_body(usage=[10, 5]),
    "negative completion": openai_body(usage={"prompt_tokens": 10, "completion_tokens": -1}),
    "content null": openai_body(message={"role": "assistant", "content": None}),
    "content a number": openai_body(message={"role": "assistant", "content": 42}),
}
ANTHROPIC_BAD: dict[str, dict[str, Any]] = {
    "content []": anthropic_body(content=[]),
    "negative usage": anthropic_body(usage={"input_tokens": -1, "output_tokens": 5}),
    "absurd usage": anthropic_body(usage={"input_tokens": 10, "output_tokens": 10**30}),
    "string usage": anthropic_body(usage={"input_tokens": "10", "output_tokens": 5}),
    "non-numeric usage": anthropic_body(usage={"input_tokens": "x", "output_tokens": 5}),
    "usage not an object": anthropic_body(usage="10/5"),
    "text not a string": anthropic_body(content=[{"type": "text", "text": 7}]),
}


async def invoke(spec: ModelSpec, body: dict[str, Any]) -> Any:
    transport = RecordingTransport([httpx.Response(200, json=body)])
    async with httpx.AsyncClient(transport=transport) as http:
        gateway = Gateway(Catalog([spec]), http=http, environ={"ANTHROPIC_API_KEY": "k"})
        return await gateway.invoke(spec.id, ModelRequest.of("hi"))


@pytest.mark.parametrize("case", sorted(OPENAI_BAD))
async def test_openai_answers_that_do_not_hold_are_malformed(case: str) -> None:
    with pytest.raises(MalformedResponse) as caught:
        await invoke(openai_spec(), OPENAI_BAD[case])
    assert caught.value.kind == "malformed_response"
    assert caught.value.model_id == "oa"


@pytest.mark.parametrize("case", sorted(ANTHROPIC_BAD))
async def test_anthropic_answers_that_do_not_hold_are_malformed(case: str) -> None:
    with pytest.raises(MalformedResponse):
        await invoke(anthropic_spec(), ANTHROPIC_BAD[case])


@pytest.mark.parametrize(
    "body",
    [
        openai_body(),
        openai_body(usage={}),  # no usage reported: estimated, as before
        openai_body(usage={"prompt_tokens": 10}),  # completion_tokens left out
        openai_body(message={"content": ""}),  # an empty answer is still an answer
        openai_body(
            message={
                "content": None,
                "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{}"}}],
            }
        ),
    ],
)
async def test_plausible_openai_answers_still_pass(body: dict[str, Any]) -> None:
    response = await invoke(openai_spec(), body)
    assert response.cost_usd >= 0
    assert 0 <= response.usage.input_tokens < 1000


async def test_a_malformed_answer_falls_back_and_books_no_absurd_cost() -> None:
    bad = json.dumps(OPENAI_BAD["absurd usage"]).encode()
    good = json.dumps(openai_body()).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bad if request.url.host == "bad.test" else good)

    catalog = Catalog([openai_spec("bad", tier=1), openai_spec("good", tier=2)])
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        gateway = Gateway(catalog, http=http, environ={})

        async def no_wait(_: float) -> None:
            return None

        caller = ResilientCaller(Router(catalog), gateway, ResiliencePolicy(), sleep=no_wait)
        result = await caller.call(
            Call(
                RouteRequest(node="n", prompt="hi"),
                ModelRequest.of("hi"),
                Policy(strategy="cheapest"),
            )
        )
    kinds = [(a.model, a.error_type) for a in result.attempts]
    assert kinds[-1] == ("good", None)
    assert ("bad", "malformed_response") in kinds
    assert 0 <= result.cost_usd < 1.0


DEEP = "[" * 100_000 + "]" * 100_000  # Python's JSON parser recurses once per level


@pytest.mark.parametrize("spec", [openai_spec(), anthropic_spec()], ids=["openai", "anthropic"])
async def test_a_body_nested_too_deeply_is_malformed_not_a_recursion_error(
    spec: ModelSpec,
) -> None:
    transport = RecordingTransport([httpx.Response(200, content=DEEP.encode())])
    async with httpx.AsyncClient(transport=transport) as http:
        gateway = Gateway(Catalog([spec]), http=http, environ={"ANTHROPIC_API_KEY": "k"})
        with pytest.raises(MalformedResponse, match="not JSON"):
            await gateway.invoke(spec.id, ModelRequest.of("hi"))


async def test_tool_arguments_nested_too_deeply_are_malformed() -> None:
    call = {"id": "1", "function": {"name": "f", "arguments": DEEP}}
    with pytest.raises(MalformedResponse, match="not JSON"):
        await invoke(openai_spec(), openai_body(message={"content": None, "tool_calls": [call]}))
