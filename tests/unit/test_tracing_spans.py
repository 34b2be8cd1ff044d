"""Span names and attributes of the gateway, the router and the helpers other layers call."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MAX_TOKENS,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STREAM,
    GEN_AI_RESPONSE_FINISH_REASONS,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOKEN_TYPE,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_WORKFLOW_NAME,
)
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, StatusCode

from agentmesh import tracing
from agentmesh.models import Catalog, Gateway, ModelRequest, RateLimited, Timeout
from agentmesh.routing import BudgetExceeded, BudgetLimits, NoRoute, Policy, Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model
from agentmesh.tracing import attributes as A
from agentmesh.tracing import spans as spans_module

from .test_tracing_support import by_name, collected, metric_fixture, one, span_fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


@pytest.fixture
def meters() -> Iterator[InMemoryMetricReader]:
    yield from metric_fixture()


def catalog(**behavior: object) -> Catalog:
    """small (tier 1, wire name wire-small), large (2), huge (3)."""
    return scripted_catalog(
        scripted_model(
            "small",
            tier=1,
            fields={"model": "wire-small", "pricing": {"input": 1, "output": 2}},
            **{"reply": "four", **behavior},
        ),
        scripted_model("large", tier=2, fields={"pricing": {"input": 10, "output": 20}}),
        scripted_model("huge", tier=3, fields={"pricing": {"input": 50, "output": 90}}),
    )


async def test_chat_span_follows_the_genai_conventions(spans: InMemorySpanExporter) -> None:
    attrs = {**tracing.attempt_attributes(attempt=2, fallback=True, node="plan", escalation=1)}
    attrs["agentmesh.prompt.template"] = "plan"
    async with Gateway(catalog()) as gateway:
        response = await gateway.invoke(
            "small", ModelRequest.of("2+2?", max_tokens=50), attributes=attrs
        )

    span = one(spans, "chat wire-small")
    a = span.attributes or {}
    assert span.kind is SpanKind.CLIENT
    assert a[GEN_AI_OPERATION_NAME] == "chat"
    assert a[GEN_AI_PROVIDER_NAME] == "scripted"
    assert a[GEN_AI_REQUEST_MODEL] == "wire-small"
    assert a[GEN_AI_RESPONSE_MODEL] == response.served_model == "scripted:wire-small"
    assert a[GEN_AI_USAGE_INPUT_TOKENS] == response.usage.input_tokens
    assert a[GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.output_tokens
    assert a[GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert a[A.COST_USD] == pytest.approx(response.cost_usd)
    assert a[A.MODEL_ID] == "small"
    assert a[A.SIMULATED] is True
    assert a[A.USAGE_ESTIMATED] is True
    assert (a[A.ATTEMPT], a[A.FALLBACK], a[A.ESCALATION_LEVEL]) == (2, True, 1)
    assert a[A.NODE_NAME] == "plan"
    assert a[A.PROMPT_TEMPLATE] == "plan"
    assert GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK not in a, "only for streams"
    assert GEN_AI_INPUT_MESSAGES not in a, "content is opt-in"
    assert span.status.status_code is StatusCode.UNSET


async def test_a_failed_call_has_error_type_status_and_a_scrubbed_event(
    spans: InMemorySpanExporter,
) -> None:
    async with Gateway(catalog(fail_first=1, fail_with="rate_limit")) as gateway:
        with pytest.raises(RateLimited):
            await gateway.invoke("small", ModelRequest.of("hi"))

    span = one(spans, "chat wire-small")
    assert (span.attributes or {})[ERROR_TYPE] == "rate_limited"
    assert span.status.status_code is StatusCode.ERROR
    assert "simulated rate_limit" in (span.status.description or "")
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "agentmesh.models.errors.RateLimited"
    assert "exception.stacktrace" not in (event.attributes or {}), "a classified outcome"
    assert GEN_AI_USAGE_INPUT_TOKENS not in (span.attributes or {})


async def test_the_gateway_time_limit_is_traced_as_timeout(spans: InMemorySpanExporter) -> None:
    async with Gateway(scripted_catalog(scripted_model("slow", latency_ms=5_000))) as gateway:
        with pytest.raises(Timeout):
            await gateway.invoke("slow", ModelRequest.of("hi", timeout=0.01))
    assert (one(spans, "chat slow").attributes or {})[ERROR_TYPE] == "timeout"


async def test_a_stream_is_one_span_current_while_the_model_produces(
    spans: InMemorySpanExporter,
) -> None:
    seen: list[trace.Span] = []
    async with Gateway(catalog()) as gateway:
        client = gateway.client("small")
        original = client.stream

        async def watched(request: ModelRequest) -> AsyncIterator[object]:
            seen.append(trace.get_current_span())
            async for event in original(request):
                yield event

        client.stream = watched  # type: ignore[method-assign]
        events = [e async for e in gateway.stream("small", ModelRequest.of("hi"))]

    span = one(spans, "chat wire-small")
    a = span.attributes or {}
    assert events[-1].response is not None
    assert a[GEN_AI_REQUEST_STREAM] is True
    assert a[GEN_AI_USAGE_OUTPUT_TOKENS] == events[-1].response.usage.output_tokens
    assert a[GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert seen[0].get_span_context().span_id == span.context.span_id
    assert trace.get_current_span() is trace.INVALID_SPAN, "the consumer's context is untouched"


async def test_an_abandoned_stream_ends_its_span_without_an_error(
    spans: InMemorySpanExporter,
) -> None:
    async with Gateway(catalog(reply="one two three")) as gateway:
        stream = gateway.stream("small", ModelRequest.of("hi"))
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
    span = one(spans, "chat wire-small")
    assert span.status.status_code is StatusCode.UNSET
    assert ERROR_TYPE not in (span.attributes or {})


async def test_route_span_explains_the_decision(spans: InMemorySpanExporter) -> None:
    router = Router(catalog())
    request = RouteRequest(node="plan", role="planner", prompt="2+2?", task="math", run_id="r1")
    decision = await router.route(request, Policy(strategy="cheapest", min_tier=2))

    span = one(spans, "route plan")
    a = span.attributes or {}
    assert span.kind is SpanKind.INTERNAL
    assert a[A.ROUTE_STRATEGY] == "cheapest"
    assert a[A.ROUTE_CHOSEN] == decision.chosen == "large"
    assert a[A.ROUTE_REASON] == decision.reason
    assert a[A.ROUTE_CANDIDATES] == ("large", "huge")
    assert len(a[A.ROUTE_CANDIDATE_SCORES]) == 2
    assert A.ROUTE_CANDIDATE_COUNT not in a, "only when the list is cut"
    assert a[A.ROUTE_EXCLUDED] == ("small [tier] tier 1 below minimum 2",)
    assert A.ROUTE_EXCLUDED_COUNT not in a
    assert a[A.ROUTE_FALLBACKS] == ("huge",)
    assert a[A.ROUTE_DECISION_ID] == decision.decision_id
    assert (a[A.ROUTE_TASK], a[A.NODE_NAME], a[A.NODE_ROLE], a[A.RUN_ID]) == (
        "math",
        "plan",
        "planner",
        "r1",
    )
    assert A.ESCALATION_LEVEL not in a, "defaults (round 1, escalation 0) are left out"
    assert A.ROUTE_ROUND not in a
    await router.route(
        RouteRequest(node="retry", prompt="x", round=2, escalation=1), Policy(strategy="cheapest")
    )
    again = one(spans, "route retry").attributes or {}
    assert (again[A.ROUTE_ROUND], again[A.ESCALATION_LEVEL]) == (2, 1)
    assert A.ATTEMPT not in again, "a route has no try number: that is the chat span's"


async def test_no_route_records_every_exclusion_and_the_error(spans: InMemorySpanExporter) -> None:
    router = Router(catalog())
    with pytest.raises(NoRoute):
        await router.route(RouteRequest(node="n", prompt="x"), Policy(min_tier=5))
    span = one(spans, "route n")
    a = span.attributes or {}
    assert span.status.status_code is StatusCode.ERROR
    assert a[ERROR_TYPE] == "NoRoute"
    assert len(a[A.ROUTE_EXCLUDED]) == 3
    assert all("[tier]" in e for e in a[A.ROUTE_EXCLUDED])
    assert A.ROUTE_CHOSEN not in a


async def test_budget_exceeded_is_its_own_error_type(spans: InMemorySpanExporter) -> None:
    router = Router(catalog(), budgets=BudgetLimits(run_usd=1e-9))
    with pytest.raises(BudgetExceeded):
        await router.route(RouteRequest(node="n", prompt="x", run_id="r"))
    assert (one(spans, "route n").attributes or {})[ERROR_TYPE] == "BudgetExceeded"


async def test_candidate_lists_are_bounded_but_counted(spans: InMemorySpanExporter) -> None:
    many = scripted_catalog(*(scripted_model(f"m{i:02}") for i in range(30)))
    await Router(many).route(RouteRequest(node="n", prompt="x"), Policy(strategy="cheapest"))
    a = one(spans, "route n").attributes or {}
    assert len(a[A.ROUTE_CANDIDATES]) == tracing.ROUTE_LIST_LIMIT == 20
    assert a[A.ROUTE_CANDIDATE_COUNT] == 30


async def test_workflow_node_route_chat_and_tool_spans_nest(spans: InMemorySpanExporter) -> None:
    cat = catalog()
    router, gateway = Router(cat), Gateway(cat)
    with tracing.workflow_span("research", run_id="r7"), tracing.node_span("plan", "planner"):
        decision = await router.route(RouteRequest(node="plan", prompt="x"))
        await gateway.invoke(decision.chosen, ModelRequest.of("x"))
        with tracing.tool_span("search", call_id="c1", arguments={"q": "x"}) as tool:
            tool.set_content(GEN_AI_TOOL_CALL_RESULT, {"hits": 3})
    await gateway.aclose()

    workflow = one(spans, "invoke_workflow research")
    node = one(spans, "invoke_agent plan")
    tool_span = one(spans, "execute_tool search")
    assert workflow.parent is None
    assert (workflow.attributes or {})[GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert (workflow.attributes or {})[GEN_AI_WORKFLOW_NAME] == "research"
    assert (workflow.attributes or {})[A.RUN_ID] == "r7"
    assert (node.attributes or {})[A.NODE_KIND] == "planner"
    assert node.parent is not None
    assert node.parent.span_id == workflow.context.span_id
    for child in (one(spans, "route plan"), one(spans, "chat wire-small"), tool_span):
        assert child.parent is not None
        assert child.parent.span_id == node.context.span_id
        assert child.context.trace_id == workflow.context.trace_id
    a = tool_span.attributes or {}
    assert (a[GEN_AI_OPERATION_NAME], a[GEN_AI_TOOL_NAME]) == ("execute_tool", "search")
    assert GEN_AI_TOOL_CALL_ARGUMENTS not in a
    assert GEN_AI_TOOL_CALL_RESULT not in a


async def test_an_exception_leaving_a_scope_is_recorded_and_reraised(
    spans: InMemorySpanExporter,
) -> None:
    with pytest.raises(KeyError), tracing.node_span("judge", "judge"):
        raise KeyError("missing")
    span = one(spans, "invoke_agent judge")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[ERROR_TYPE] == "KeyError"
    assert "exception.stacktrace" in (span.events[0].attributes or {}), "a bug keeps its stack"


def test_attempt_attributes_only_carry_what_is_known() -> None:
    assert tracing.attempt_attributes(attempt=1) == {A.ATTEMPT: 1}
    full = tracing.attempt_attributes(
        attempt=3, fallback=True, fallback_from="a", escalation=2, node="n", decision_id="d"
    )
    assert full[A.FALLBACK_FROM] == "a"
    assert full[A.ROUTE_DECISION_ID] == "d"


async def test_content_is_captured_only_when_opted_in(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spans_module, "_ENV_CAPTURE", False)
    request = ModelRequest.of("What is 2+2?", system="Be brief.")
    async with Gateway(catalog()) as gateway:
        await gateway.invoke("small", request)
        with tracing.content_capture(True):
            await gateway.invoke("small", request)
            with tracing.tool_span("calc", arguments={"x": 2}) as tool:
                tool.set_content(GEN_AI_TOOL_CALL_RESULT, 4)
        monkeypatch.setattr(spans_module, "_ENV_CAPTURE", True)  # the variable, read at import
        await gateway.invoke("small", request)

    plain, captured, from_env = by_name(spans, "chat wire-small")
    assert GEN_AI_INPUT_MESSAGES not in (plain.attributes or {})
    a = captured.attributes or {}
    assert json.loads(a[GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is 2+2?"}]},
    ]
    assert json.loads(a[GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "four"}],
            "finish_reason": "stop",
        }
    ]
    tool = one(spans, "execute_tool calc").attributes or {}
    assert (tool[GEN_AI_TOOL_CALL_ARGUMENTS], tool[GEN_AI_TOOL_CALL_RESULT]) == ('{"x":2}', "4")
    assert GEN_AI_INPUT_MESSAGES in (from_env.attributes or {})


async def test_a_rendered_prompt_is_identified_on_the_chat_span(
    spans: InMemorySpanExporter,
) -> None:
    from agentmesh.prompts import PromptLibrary

    cat = catalog()
    rendered = PromptLibrary(ROOT / "prompts").render(
        "plan", cat["small"], {"question": "Why is the sky blue?"}
    )
    async with Gateway(cat) as gateway:
        await gateway.invoke("small", rendered.to_request(), attributes=rendered.trace_attributes())
    a = one(spans, "chat wire-small").attributes or {}
    assert (a[A.PROMPT_TEMPLATE], a[A.PROMPT_VARIANT], a[A.PROMPT_HASH]) == (
        "plan",
        rendered.variant,
        rendered.hash,
    )


async def test_metrics_of_calls_and_decisions(meters: InMemoryMetricReader) -> None:
    cat = catalog()
    async with Gateway(cat) as gateway:
        decision = await Router(cat).route(RouteRequest(node="plan", prompt="x"))
        response = await gateway.invoke(
            decision.chosen, ModelRequest.of("x"), attributes={A.NODE_NAME: "plan"}
        )
    metrics = collected(meters)
    tokens = {a[GEN_AI_TOKEN_TYPE]: p.sum for a, p in metrics[GEN_AI_CLIENT_TOKEN_USAGE]}
    assert tokens == {"input": response.usage.input_tokens, "output": response.usage.output_tokens}
    ((attrs, duration),) = metrics[GEN_AI_CLIENT_OPERATION_DURATION]
    assert duration.count == 1
    assert attrs[GEN_AI_PROVIDER_NAME] == "scripted"
    assert attrs[A.NODE_NAME] == "plan"
    ((_, cost),) = metrics[A.METRIC_COST]
    assert cost.value == pytest.approx(response.cost_usd)
    ((chosen, count),) = metrics[A.METRIC_ROUTE_DECISIONS]
    assert (chosen[A.ROUTE_CHOSEN], chosen[A.ROUTE_STRATEGY], count.value) == (
        "small",
        "cheapest",
        1,
    )


async def test_resilience_recorders_count_and_leave_evidence_on_the_span(
    spans: InMemorySpanExporter, meters: InMemoryMetricReader
) -> None:
    with tracing.node_span("plan", "planner"):
        tracing.record_fallback("small", "large", "rate_limited", node="plan")
        tracing.record_escalation("plan", 1, reason="judge")
        tracing.record_breaker_transition("small", "closed", "open")
    metrics = collected(meters)
    ((fallback, n),) = metrics[A.METRIC_FALLBACKS]
    assert (fallback[A.FALLBACK_FROM], fallback[A.FALLBACK_TO], n.value) == ("small", "large", 1)
    ((escalation, _),) = metrics[A.METRIC_ESCALATIONS]
    assert escalation[A.ESCALATION_LEVEL] == 1
    ((breaker, _),) = metrics[A.METRIC_BREAKER_TRANSITIONS]
    assert (breaker[A.BREAKER_FROM], breaker[A.BREAKER_TO]) == ("closed", "open")
    names = [e.name for e in one(spans, "invoke_agent plan").events]
    assert names == ["agentmesh.fallback", "agentmesh.escalation", "agentmesh.breaker"]
