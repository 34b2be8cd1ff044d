"""The response cache in front of a real llama.cpp server on loopback (gateway controls, 1)."""

from __future__ import annotations

from typing import Any

import pytest

from agentmesh.models import Catalog, Gateway, ModelRequest, ModelResponse
from agentmesh.resilience import Call, MemoryCache, ResilientCaller
from agentmesh.routing import Router, RouteRequest

from .test_llamacpp_server import server_spec

pytestmark = pytest.mark.integration


class Counting(Gateway):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.calls = 0

    async def invoke(self, model_id: str, request: ModelRequest, **kw: Any) -> ModelResponse:
        self.calls += 1
        return await super().invoke(model_id, request, **kw)


def _call(max_tokens: int) -> Call:
    prompt = "What is the capital of France?"
    # A newline ends the answer: the base model then stops instead of rambling to the cap.
    return Call(
        RouteRequest(prompt=prompt, max_output_tokens=max_tokens),
        ModelRequest.of(prompt, max_tokens=max_tokens, temperature=0, stop=("\n",)),
    )


async def test_a_real_answer_is_cached_and_a_truncated_one_is_not(llama_server: str) -> None:
    catalog = Catalog([server_spec(llama_server)])
    async with Counting(catalog, environ={}) as gateway:
        caller = ResilientCaller(Router(catalog), gateway, cache=MemoryCache())
        first = await caller.call(_call(200))
        second = await caller.call(_call(200))
        cut = [await caller.call(_call(1)) for _ in range(2)]
    assert first.response.finish_reason == "stop", first.response.text
    assert second.cached
    assert second.cost_usd == 0
    assert second.response.text == first.response.text
    assert all(c.response.finish_reason == "length" for c in cut)
    assert not any(c.cached for c in cut)
    assert gateway.calls == 3  # the full answer once, the truncated one every time
