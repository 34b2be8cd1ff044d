"""A stream cut off mid-answer is charged what it generated (issue #21, deliverable 7).

The scripted provider paces its words (``ms_per_output_token``) so the stream
is still running when the test stops reading after a few deltas: nothing here
sleeps or waits on a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.models import Gateway, ModelRequest
from agentmesh.models.errors import Unavailable
from agentmesh.models.tokens import estimate_message_tokens, estimate_tokens
from agentmesh.models.types import StreamEvent
from agentmesh.resilience import Call, CallFailed, ResiliencePolicy, ResilientCaller
from agentmesh.routing import BudgetLimits, Policy, RouteDecision, Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model
from agentmesh.tracing import attributes as A

from .test_tracing_support import one, span_fixture

PRICE = {"pricing": {"input": 1000.0, "output": 2000.0}}  # USD per 1M: visible sums
INPUT, OUTPUT = 1000.0 / 1e6, 2000.0 / 1e6
REPLY = " ".join(f"word{i}" for i in range(60))
PROMPT = "count for me, slowly please"
KEYS = ["run:r1", "global"]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


def _pool(**behavior: float) -> tuple[ResilientCaller, Router]:
    catalog = scripted_catalog(scripted_model("slow", fields=PRICE, reply=REPLY, **behavior))
    router = Router(catalog, budgets=BudgetLimits(run_usd=1.0, global_usd=5.0))
    return ResilientCaller(router, Gateway(catalog)), router


def _call(**resilience: float) -> Call:
    request = ModelRequest.of(PROMPT, max_tokens=256)
    return Call(
        RouteRequest(prompt=PROMPT, max_output_tokens=256, run_id="r1"),
        request,
        resilience=ResiliencePolicy(**resilience) if resilience else None,
    )


def _expected(text: str) -> float:
    """The cost of the prompt plus ``text``, by the project's token estimator."""
    prompt = estimate_message_tokens(ModelRequest.of(PROMPT).messages)
    return prompt * INPUT + estimate_tokens(text) * OUTPUT


async def _spent(router: Router) -> dict[str, float]:
    return dict((await router.state.snapshot((), budget_keys=KEYS)).spent)


async def _read(caller: ResilientCaller, call: Call, deltas: int) -> str:
    """Read ``deltas`` text deltas of ``call``'s stream, then stop reading (close it)."""
    got: list[str] = []
    stream = caller.stream(call)
    async for item in stream:
        assert isinstance(item, str), "the stream ended before it was cut"
        got.append(item)
        if len(got) == deltas:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    return "".join(got)


async def test_a_stream_closed_mid_answer_charges_its_prompt_and_streamed_text(spans) -> None:
    caller, router = _pool(ms_per_output_token=20)  # 60 words: over a second in all
    text = await _read(caller, _call(), deltas=5)
    assert len(text.split()) == 5
    spent = await _spent(router)
    # Not the worst-case hold (256 output tokens), not nothing: the prompt and 5 words.
    assert spent["run:r1"] == pytest.approx(_expected(text))
    assert spent["global"] == pytest.approx(_expected(text))
    assert spent["run:r1"] < _expected(REPLY)
    span = one(spans, "chat slow")
    a = span.attributes or {}
    assert a[A.STREAM_CUT_OFF] is True
    assert a[A.USAGE_ESTIMATED] is True
    assert a[A.GEN_AI_USAGE_OUTPUT_TOKENS] == estimate_tokens(text)
    assert a[A.COST_USD] == pytest.approx(spent["run:r1"])
    assert A.GEN_AI_RESPONSE_MODEL not in a, "a cut stream is not an answer"


async def test_a_cancelled_streaming_task_charges_what_was_streamed() -> None:
    caller, router = _pool(ms_per_output_token=20)
    got: list[str] = []
    third = asyncio.Event()

    async def consume() -> None:
        async for item in caller.stream(_call()):
            assert isinstance(item, str)
            got.append(item)
            if len(got) == 3:
                third.set()

    task = asyncio.create_task(consume())
    await third.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spent = await _spent(router)
    # The producer may have received the 4th word while the consumer was being cancelled.
    assert spent["run:r1"] in (
        pytest.approx(_expected("".join(got[:3]))),
        pytest.approx(_expected("".join(got))),
    )
    assert spent["run:r1"] == pytest.approx(spent["global"])


async def test_a_deadline_mid_stream_reports_the_cut_attempt_and_its_spend() -> None:
    caller, router = _pool(ms_per_output_token=20)
    got: list[str] = []

    async def consume() -> None:
        async for item in caller.stream(_call(deadline_s=0.5)):  # some of the 60 words
            assert isinstance(item, str)
            got.append(item)

    with pytest.raises(CallFailed) as failed:
        await consume()
    assert got, "the deadline came after the first words"
    assert failed.value.kind == "timeout"
    (cut,) = failed.value.attempts
    assert (cut.model, cut.outcome) == ("slow", "cancelled")
    assert cut.message.startswith("cut off mid-stream after")
    assert 0 < cut.spend.output_tokens < estimate_tokens(REPLY)
    assert (await _spent(router))["run:r1"] == pytest.approx(cut.cost_usd)


class _Decisions(list[RouteDecision]):
    """The decisions a router made; ``made`` is set once one is (and reserved)."""

    def __init__(self) -> None:
        super().__init__()
        self.made = asyncio.Event()


def _watch(router: Router, monkeypatch: pytest.MonkeyPatch) -> _Decisions:
    decisions = _Decisions()
    route = router.route

    async def routed(request: RouteRequest, policy: Policy | None = None) -> RouteDecision:
        decision = await route(request, policy)
        decisions.append(decision)
        decisions.made.set()
        return decision

    monkeypatch.setattr(router, "route", routed)
    return decisions


async def _cancel_once_routed(task: asyncio.Task[object], decisions: _Decisions) -> None:
    await decisions.made.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_stream_cut_before_its_first_token_keeps_its_hold_until_the_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caller, router = _pool(latency_ms=5000)  # nothing streamed for five seconds
    decisions = _watch(router, monkeypatch)
    await _cancel_once_routed(asyncio.create_task(_read(caller, _call(), deltas=1)), decisions)
    (decision,) = decisions
    # Nothing is known of what it cost: the worst case stays held (lapses with its lease).
    assert decision.reserved_usd > _expected(REPLY)
    assert await _spent(router) == pytest.approx(dict.fromkeys(KEYS, decision.reserved_usd))


async def test_a_cancelled_call_that_is_not_streamed_keeps_its_hold_until_the_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caller, router = _pool(latency_ms=5000)
    decisions = _watch(router, monkeypatch)
    await _cancel_once_routed(asyncio.create_task(caller.call(_call())), decisions)
    (decision,) = decisions
    assert await _spent(router) == pytest.approx(dict.fromkeys(KEYS, decision.reserved_usd))


class _Dropping(Gateway):
    """A gateway whose streams fail with a server error after ``after`` deltas."""

    after = 4

    async def stream(  # type: ignore[override]
        self, model_id: str, request: ModelRequest, *, attributes: Any = None
    ) -> AsyncIterator[StreamEvent]:
        sent = 0
        async for event in super().stream(model_id, request, attributes=attributes):
            if event.delta and sent == self.after:
                raise Unavailable("connection dropped mid-stream", model_id=model_id)
            sent += bool(event.delta)
            yield event


async def test_a_stream_failing_mid_answer_is_billed_what_it_streamed() -> None:
    catalog = scripted_catalog(scripted_model("slow", fields=PRICE, reply=REPLY))
    router = Router(catalog, budgets=BudgetLimits(run_usd=1.0, global_usd=5.0))
    caller = ResilientCaller(router, _Dropping(catalog))
    got: list[str] = []

    async def consume() -> None:
        async for item in caller.stream(_call()):
            assert isinstance(item, str)
            got.append(item)

    with pytest.raises(CallFailed) as failed:
        await consume()
    assert len(got) == _Dropping.after
    (attempt,) = failed.value.attempts
    assert (attempt.outcome, attempt.error_type) == ("error", "unavailable")
    assert attempt.cost_usd == pytest.approx(_expected("".join(got)))
    assert (await _spent(router))["run:r1"] == pytest.approx(attempt.cost_usd)
