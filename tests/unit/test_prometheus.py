"""The Prometheus registry (``tracing/prometheus.py``) fed by the spans of real calls and runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client.parser import text_string_to_metric_families

from agentmesh import tracing
from agentmesh.graph import Runtime, load_graph, run_graph
from agentmesh.models import Catalog, Gateway, ModelRequest, load_catalog
from agentmesh.resilience import BreakerPolicy, Call, ResiliencePolicy, ResilientCaller, RetryPolicy
from agentmesh.routing import Router, RouteRequest
from agentmesh.testing import scripted_model
from agentmesh.tracing.prometheus import Metrics, RecordUnsampled

ROOT = Path(__file__).resolve().parents[2]
PRICED = {"pricing": {"input": 1, "output": 1}}


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition text, parsed back by prometheus-client's own parser."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in _samples(metrics).items() if n == name and wanted <= ls)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    found = Metrics()
    with tracing.configure(processors=[found.span_processor()], batch=False):
        yield found


async def test_calls_fallbacks_and_breakers_are_counted_from_spans(metrics: Metrics) -> None:
    catalog = Catalog(
        [
            scripted_model(
                "flaky", tier=1, down=True, fields={"pricing": {"input": 1, "output": 1}}
            ),
            scripted_model("steady", tier=2, fields={"pricing": {"input": 1, "output": 1}}),
        ]
    )
    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=1), breaker=BreakerPolicy(failure_threshold=1)
    )
    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(Router(catalog), gateway, policy)
        with tracing.span("request"):
            result = await caller.call(Call(RouteRequest(node="n1"), ModelRequest.of("hi")))
    assert result.model == "steady"
    assert _value(metrics, "agentmesh_model_calls_total", model="flaky", outcome="unavailable") == 1
    assert _value(metrics, "agentmesh_model_calls_total", model="steady", outcome="ok") == 1
    assert _value(metrics, "agentmesh_model_tokens_total", model="steady", type="output") > 0
    assert _value(metrics, "agentmesh_model_cost_usd_total", model="steady") == pytest.approx(
        result.cost_usd
    )
    assert _value(metrics, "agentmesh_model_call_duration_seconds_count", model="steady") == 1
    fallbacks = _value(metrics, "agentmesh_fallbacks_total", from_model="flaky", to_model="steady")
    assert fallbacks == 1
    assert _value(metrics, "agentmesh_breaker_transitions_total", model="flaky", state="open") == 1
    assert _value(metrics, "agentmesh_breaker_state", model="flaky") == 2
    assert _value(metrics, "agentmesh_route_decisions_total", chosen="flaky", node="n1") == 1


async def test_streamed_calls_record_time_to_first_token(metrics: Metrics) -> None:
    catalog = Catalog([scripted_model("s", latency_ms=1, ms_per_output_token=0.1)])
    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(Router(catalog), gateway)
        items = [i async for i in caller.stream(Call(RouteRequest(), ModelRequest.of("hi")))]
    assert len(items) > 1
    assert _value(metrics, "agentmesh_model_time_to_first_token_seconds_count", model="s") == 1


async def test_a_workflow_run_counts_escalations_per_node(metrics: Metrics) -> None:
    loaded = load_graph(ROOT / "graphs" / "research_report.yaml")
    async with Runtime.open(load_catalog(ROOT / "models" / "sim.yaml")) as runtime:
        result = await run_graph(loaded.spec, runtime, "Why is the sky blue?")
    assert result.status == "ok", result.error
    assert _value(metrics, "agentmesh_escalations_total", node="research", reason="judge") >= 1
    nodes = {
        dict(labels)["node"]
        for (name, labels), _ in _samples(metrics).items()
        if name == "agentmesh_model_calls_total"
    }
    assert {"plan", "research", "check"} <= nodes


def test_two_registries_never_share_series() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request("/v1/models", "auto", "", 200, 0.01)
    assert _value(first, "agentmesh_server_requests_total", status="200") == 1
    assert _value(second, "agentmesh_server_requests_total") == 0


def test_record_unsampled_keeps_dropped_spans_recorded_but_not_sampled() -> None:
    sampler = RecordUnsampled(ParentBased(ALWAYS_ON))
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0))
    ctx = trace.set_span_in_context(NonRecordingSpan(parent), otel_context.Context())
    dropped = sampler.should_sample(ctx, 0x1234, "chat m", attributes={"agentmesh.model_id": "m"})
    kept = sampler.should_sample(None, 0x1234, "chat m")
    assert dropped.decision is Decision.RECORD_ONLY
    assert dict(dropped.attributes) == {"agentmesh.model_id": "m"}  # the span keeps them
    assert kept.decision is Decision.RECORD_AND_SAMPLE
    assert RecordUnsampled(ALWAYS_OFF).should_sample(None, 1, "x").decision is Decision.RECORD_ONLY
    assert "RecordUnsampled" in sampler.get_description()
