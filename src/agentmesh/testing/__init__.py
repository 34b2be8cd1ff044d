"""Test doubles for code built on agentmesh: no network, deterministic.

- :func:`scripted_model` / :func:`scripted_catalog`: simulated models whose
  replies and failures you script (see :class:`~agentmesh.models.ScriptedBehavior`).
- :class:`RecordingTransport`: an ``httpx.MockTransport`` that answers with a
  queue of scripted responses and records every request, to test the HTTP
  adapters (or your own) without a server.
- Builders of provider bodies: :func:`openai_completion`, :func:`openai_stream`,
  :func:`anthropic_message`, :func:`anthropic_stream`.

Example::

    transport = RecordingTransport([openai_completion("hi")])
    async with httpx.AsyncClient(transport=transport) as http:
        gateway = Gateway(catalog, http=http)
        ...
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx

from agentmesh.models.catalog import Catalog
from agentmesh.models.spec import Capability, ModelSpec, Provider, ScriptedBehavior

__all__ = [
    "RecordingTransport",
    "anthropic_message",
    "anthropic_stream",
    "openai_completion",
    "openai_stream",
    "scripted_catalog",
    "scripted_model",
    "sse_body",
]

Scripted = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def scripted_model(
    model_id: str = "fake",
    *,
    tier: int = 1,
    fields: Mapping[str, Any] | None = None,
    **behavior: Any,
) -> ModelSpec:
    """A simulated model spec; keyword arguments are :class:`ScriptedBehavior` fields.

    ``fields`` sets other :class:`ModelSpec` fields (validated), e.g. pricing.
    Example: ``scripted_model("flaky", fail_first=2, fail_with="rate_limit")``.
    """
    return ModelSpec.model_validate(
        {
            "id": model_id,
            "provider": Provider.SCRIPTED,
            "model": model_id,
            "tier": tier,
            "capabilities": {Capability.JSON, Capability.TOOLS, Capability.STREAMING},
            **(fields or {}),
            "behavior": ScriptedBehavior(**behavior),
        }
    )


def scripted_catalog(*specs: ModelSpec) -> Catalog:
    """A catalog of the given specs (default: one ``fake`` scripted model)."""
    return Catalog(specs or (scripted_model(),), source="<testing>")


class RecordingTransport(httpx.MockTransport):
    """Answers each request with the next scripted item and records the request.

    Items are ``httpx.Response`` objects, exceptions (raised, e.g.
    ``httpx.ConnectError``), or callables taking the request. When the queue is
    empty the last item is reused, so one item can answer every request.

    Attributes:
        requests: Every request received, in order.
    """

    def __init__(self, responses: Iterable[Scripted]) -> None:
        self._queue: deque[Scripted] = deque(responses)
        if not self._queue:
            raise ValueError("RecordingTransport needs at least one scripted response")
        self._last: Scripted = self._queue[0]
        self.requests: list[httpx.Request] = []
        super().__init__(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self._queue.popleft() if self._queue else self._last
        self._last = item
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return item(request)

    def bodies(self) -> list[Any]:
        """The JSON body of every recorded request."""
        return [json.loads(r.content) for r in self.requests]


def openai_completion(
    text: str | None = "ok",
    *,
    model: str = "fake-model",
    tool_calls: Sequence[Mapping[str, Any]] = (),
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = (10, 5),
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """A chat-completions response; ``tool_calls`` items are ``{"id", "name", "arguments"}``."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in tool_calls
        ]
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return httpx.Response(status, json=body, headers=headers)


def sse_body(events: Iterable[tuple[str | None, Any]]) -> bytes:
    """Encode ``(event_name, data)`` pairs as Server-Sent Events; data is JSON unless a str."""
    out: list[str] = []
    for name, data in events:
        if name:
            out.append(f"event: {name}")
        payload = data if isinstance(data, str) else json.dumps(data)
        out.extend(f"data: {line}" for line in payload.split("\n"))
        out.append("")
    return ("\n".join(out) + "\n").encode()


def _sse_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def openai_stream(
    pieces: Sequence[str],
    *,
    model: str = "fake-model",
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = (10, 5),
    done: bool = True,
) -> httpx.Response:
    """A streamed chat completion of ``pieces``; ``done=False`` cuts it before ``[DONE]``."""
    events: list[tuple[str | None, Any]] = [
        (None, {"model": model, "choices": [{"index": 0, "delta": {"content": p}}]}) for p in pieces
    ]
    if finish_reason is not None:
        events.append(
            (
                None,
                {
                    "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}],
                },
            )
        )
    if usage is not None:
        events.append(
            (
                None,
                {
                    "model": model,
                    "choices": [],
                    "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                },
            )
        )
    if done:
        events.append((None, "[DONE]"))
    return _sse_response(sse_body(events))


def anthropic_message(
    text: str = "ok",
    *,
    model: str = "claude-test",
    tool_uses: Sequence[Mapping[str, Any]] = (),
    stop_reason: str = "end_turn",
    usage: tuple[int, int] = (10, 5),
) -> httpx.Response:
    """A Messages API response; ``tool_uses`` items are ``{"id", "name", "input"}``."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content.extend({"type": "tool_use", **dict(t)} for t in tool_uses)
    return httpx.Response(
        200,
        json={
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        },
    )


def anthropic_stream(
    pieces: Sequence[str],
    *,
    model: str = "claude-test",
    stop_reason: str = "end_turn",
    usage: tuple[int, int] = (10, 5),
    complete: bool = True,
) -> httpx.Response:
    """A streamed Messages response; ``complete=False`` cuts it before ``message_stop``."""
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "model": model,
                    "usage": {"input_tokens": usage[0], "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    events.extend(
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
        )
        for p in pieces
    )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason},
                "usage": {"output_tokens": usage[1]},
            },
        )
    )
    if complete:
        events.append(("message_stop", {"type": "message_stop"}))
    return _sse_response(sse_body(events))
