"""Trace files load into an OTLP backend: a loopback OTLP/HTTP collector decodes what arrives."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh import tracing
from agentmesh.models import Gateway, ModelRequest, RateLimited
from agentmesh.routing import Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model

pytestmark = pytest.mark.integration


class Collector:
    """What a minimal OTLP/HTTP collector on 127.0.0.1 received, decoded."""

    def __init__(self) -> None:
        self.spans: list[object] = []
        self.metric_names: set[str] = set()
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with collector.lock:
                    collector.headers.append(dict(self.headers))
                    if self.path == "/v1/traces":
                        request = ExportTraceServiceRequest.FromString(body)
                        for resource_spans in request.resource_spans:
                            for scope_spans in resource_spans.scope_spans:
                                collector.spans.extend(scope_spans.spans)
                    elif self.path == "/v1/metrics":
                        request_m = ExportMetricsServiceRequest.FromString(body)
                        for resource_metrics in request_m.resource_metrics:
                            for scope_metrics in resource_metrics.scope_metrics:
                                collector.metric_names.update(m.name for m in scope_metrics.metrics)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def by_name(self) -> dict[str, object]:
        with self.lock:
            return {s.name: s for s in self.spans}  # type: ignore[attr-defined]


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    running.thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()


async def _trace(path: Path) -> None:
    cat = scripted_catalog(scripted_model("a", fail_first=1, fail_with="rate_limit"))
    with tracing.configure(jsonl=path):
        async with Gateway(cat) as gateway:
            with tracing.workflow_span("wf", run_id="otlp-1"), tracing.node_span("n", "executor"):
                decision = await Router(cat).route(RouteRequest(node="n", prompt="x"))
                with pytest.raises(RateLimited):
                    await gateway.invoke(decision.chosen, ModelRequest.of("x"))
                await gateway.invoke(decision.chosen, ModelRequest.of("x"))


async def test_a_trace_file_replays_into_an_otlp_collector(
    collector: Collector, tmp_path: Path
) -> None:
    path = tmp_path / "t.jsonl"
    await _trace(path)
    records = tracing.load_spans(path)
    exporter = tracing.otlp_span_exporter(collector.url, headers={"x-tenant": "t1"})
    try:
        assert tracing.replay_to_otlp(path, exporter) == len(records) == 5
    finally:
        exporter.shutdown()

    with collector.lock:
        received = {s.span_id.hex(): s for s in collector.spans}  # type: ignore[attr-defined]
    assert set(received) == {r.span_id for r in records}
    for record in records:
        span = received[record.span_id]
        assert span.name == record.name  # type: ignore[attr-defined]
        assert span.trace_id.hex() == record.trace_id  # type: ignore[attr-defined]
        assert (span.parent_span_id.hex() or None) == record.parent_id  # type: ignore[attr-defined]
        assert span.start_time_unix_nano == record.start_ns  # type: ignore[attr-defined]
        assert span.end_time_unix_nano == record.end_ns  # type: ignore[attr-defined]
    chats = [s for s in collector.spans if s.name == "chat a"]  # type: ignore[attr-defined]
    assert len(chats) == 2
    failed = next(s for s in chats if s.status.code == 2)  # type: ignore[attr-defined]
    attrs = {kv.key: kv.value for kv in failed.attributes}  # type: ignore[attr-defined]
    assert attrs["error.type"].string_value == "rate_limited"
    assert attrs["gen_ai.provider.name"].string_value == "scripted"
    assert all(h.get("x-tenant") == "t1" for h in collector.headers)


def test_the_cli_exports_a_trace_file(collector: Collector, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    asyncio.run(_trace(path))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentmesh",
            "trace",
            "export",
            str(path),
            "--otlp-endpoint",
            collector.url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "exported 5 spans" in out.stderr
    assert len(collector.spans) == 5


async def test_configure_exports_live_spans_over_otlp(collector: Collector) -> None:
    cat = scripted_catalog(scripted_model("m"))
    handle = tracing.configure(otlp_endpoint=collector.url)
    try:
        async with Gateway(cat) as gateway:
            with tracing.workflow_span("live", run_id="l1"):
                await gateway.invoke("m", ModelRequest.of("x"))
    finally:
        handle.shutdown()  # flushes the batch (and metrics, if this installed the meter)
    names = set(collector.by_name())
    assert {"invoke_workflow live", "chat m"} <= names
    if handle.meter_provider is not None:
        assert "gen_ai.client.token.usage" in collector.metric_names
        assert "gen_ai.client.operation.duration" in collector.metric_names
