"""The JSONL file, reading it back, replaying it as OTLP, and ``configure()``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from agentmesh import tracing
from agentmesh.models import Gateway, ModelRequest, RateLimited
from agentmesh.testing import scripted_catalog, scripted_model
from agentmesh.tracing import attributes as A
from agentmesh.tracing import spans as spans_module
from agentmesh.tracing.jsonl import iso_time

from .test_tracing_support import span_fixture


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


async def _some_spans() -> None:
    """A workflow with one failed and one successful call, and a fallback event."""
    cat = scripted_catalog(
        scripted_model("a", fail_first=1, fail_with="rate_limit"), scripted_model("b", tier=2)
    )
    async with Gateway(cat) as gateway:
        with tracing.workflow_span("wf", run_id="run-1"), tracing.node_span("n", "executor"):
            with pytest.raises(RateLimited):
                await gateway.invoke("a", ModelRequest.of("x"))
            tracing.record_fallback("a", "b", "rate_limited")
            await gateway.invoke("b", ModelRequest.of("x"), attributes={A.FALLBACK: True})


async def test_each_finished_span_is_one_json_line(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    await _some_spans()
    path = tmp_path / "t.jsonl"
    exporter = tracing.JsonlSpanExporter(path)
    assert exporter.export(spans.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["name"] for r in lines] == [s.name for s in spans.get_finished_spans()]
    by_name = {r["name"]: r for r in lines}
    root, node = by_name["invoke_workflow wf"], by_name["invoke_agent n"]
    failed, ok = (r for r in lines if r["name"] == "chat a" or r["name"] == "chat b")
    assert root["parent_id"] is None
    assert node["parent_id"] == root["span_id"]
    assert len(root["trace_id"]) == 32
    assert len(root["span_id"]) == 16
    assert failed["kind"] == "CLIENT"
    assert failed["status"]["code"] == "ERROR"
    assert failed["attributes"][A.ERROR_TYPE] == "rate_limited"
    assert failed["events"][0]["name"] == "exception"
    assert ok["status"] == {"code": "UNSET", "description": None}
    assert ok["attributes"][A.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert ok["start"] == iso_time(ok["start_time_unix_nano"])
    assert ok["start"].endswith("Z")
    assert ok["duration_ms"] == pytest.approx(
        (ok["end_time_unix_nano"] - ok["start_time_unix_nano"]) / 1e6
    )
    service = spans.get_finished_spans()[0].resource.attributes["service.name"]
    assert root["resource"]["service.name"] == service
    assert root["scope"]["name"] == "agentmesh"
    assert [e["name"] for e in node["events"]] == ["agentmesh.fallback"]


def test_lines_are_exactly_the_json_of_span_to_dict(tmp_path: Path) -> None:
    """The exporter formats fixed fields itself; its lines must equal the plain encoding."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t", "1.0")
    with tracer.start_as_current_span('root "quoted" \u00e9\u2603', attributes={"k": ("a", "b")}):
        linked = tracer.start_span("linked")
        linked.end()
        child = tracer.start_span(
            "child", links=[Link(linked.get_span_context(), {"why": "retry"})]
        )
        child.add_event("evt", {"n": 1.5, "flag": True})
        child.set_status(Status(StatusCode.ERROR, 'bad "thing"\n\u00fc'))
        child.end(end_time=child.start_time + 1_234_567 if child.start_time else None)
    path = tmp_path / "t.jsonl"
    jsonl = tracing.JsonlSpanExporter(path)
    finished = exporter.get_finished_spans()
    jsonl.export(finished)
    jsonl.shutdown()
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
    expected = [encoder.encode(tracing.span_to_dict(s)) for s in finished]
    assert path.read_text(encoding="utf-8").splitlines() == expected
    assert len(expected) == 3


def test_iso_time_keeps_microseconds_in_utc() -> None:
    assert iso_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"


async def test_concurrent_batches_never_interleave(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    await _some_spans()
    batch = spans.get_finished_spans()
    exporter = tracing.JsonlSpanExporter(tmp_path / "t.jsonl")
    threads = [
        threading.Thread(target=lambda: [exporter.export(batch) for _ in range(25)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    exporter.shutdown()
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == 8 * 25 * len(batch)
    assert all(json.loads(line)["trace_id"] for line in lines)
    assert exporter.export(batch) is SpanExportResult.FAILURE, "closed"


async def test_a_file_reads_back_into_identical_sdk_spans(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    await _some_spans()
    original = spans.get_finished_spans()
    path = tmp_path / "t.jsonl"
    exporter = tracing.JsonlSpanExporter(path)
    exporter.export(original[:3])
    exporter.export(original[3:])  # appended, as batches are
    exporter.shutdown()

    records = tracing.load_spans(path)
    rebuilt = [tracing.to_readable_span(r) for r in records]
    for before, after in zip(original, rebuilt, strict=True):
        assert after.name == before.name
        assert after.context.trace_id == before.context.trace_id
        assert after.context.span_id == before.context.span_id
        assert (after.parent.span_id if after.parent else None) == (
            before.parent.span_id if before.parent else None
        )
        assert (after.start_time, after.end_time) == (before.start_time, before.end_time)
        assert after.kind == before.kind
        assert after.status.status_code == before.status.status_code
        assert dict(after.attributes or {}) == dict(before.attributes or {})
        assert [e.name for e in after.events] == [e.name for e in before.events]
        assert dict(after.resource.attributes) == dict(before.resource.attributes)
        assert after.instrumentation_scope == before.instrumentation_scope


class Collecting(SpanExporter):
    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.batches: list[list[ReadableSpan]] = []
        self.result = result

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append(list(spans))
        return self.result


async def test_replay_hands_otlp_ready_spans_to_an_exporter(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    await _some_spans()
    path = tmp_path / "t.jsonl"
    exporter = tracing.JsonlSpanExporter(path)
    exporter.export(spans.get_finished_spans())
    exporter.shutdown()

    sink = Collecting()
    assert tracing.replay_to_otlp(path, sink, batch_size=3) == len(spans.get_finished_spans()) == 4
    assert [len(b) for b in sink.batches] == [3, 1]
    request = encode_spans([s for b in sink.batches for s in b])  # the OTLP protobuf body
    encoded = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(s.name for s in encoded) == sorted(s.name for s in spans.get_finished_spans())
    chat = next(s for s in encoded if s.name == "chat a")
    assert chat.status.code == StatusCode.ERROR.value
    keys = {kv.key: kv.value for kv in chat.attributes}
    assert keys[A.ERROR_TYPE].string_value == "rate_limited"
    assert request.resource_spans[0].resource.attributes[0].key


def test_replay_reports_a_refused_batch(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps(
            {
                "name": "x",
                "trace_id": "0" * 31 + "1",
                "span_id": "0" * 15 + "1",
                "start_time_unix_nano": 1,
                "end_time_unix_nano": 2,
            }
        )
        + "\n"
    )
    with pytest.raises(tracing.ExportFailed, match="refused spans 1-1 of 1"):
        tracing.replay_to_otlp(path, Collecting(SpanExportResult.FAILURE))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "Expecting value"),
        ("[1]", "must be a JSON object"),
        ('{"name": "x"}', "trace_id must be 32 hex digits"),
        (
            '{"name": "x", "trace_id": "' + "a" * 32 + '", "span_id": "' + "b" * 16 + '"}',
            "start_time_unix_nano must be an integer",
        ),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n" + line + "\n")
    with pytest.raises(tracing.TraceFileError, match=message) as caught:
        tracing.load_spans(path)
    assert str(caught.value).startswith(f"{path}:2: ")
    assert caught.value.line == 2


def test_a_missing_file_is_a_trace_file_error(tmp_path: Path) -> None:
    with pytest.raises(tracing.TraceFileError, match="No such file"):
        tracing.load_spans(tmp_path / "missing.jsonl")


async def test_configure_adds_exporters_and_shutdown_detaches_them(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    one = tracing.configure(jsonl=first, batch=False)
    with tracing.configure(jsonl=second) as two:  # batched: flushed on shutdown
        assert two.provider is one.provider, "one process provider, reused"
        with tracing.span("both"):
            pass
        one.shutdown()
        one.shutdown()  # idempotent
        with tracing.span("second only"):
            pass
    with tracing.span("neither"):
        pass
    assert [json.loads(x)["name"] for x in first.read_text().splitlines()] == ["both"]
    names = [json.loads(x)["name"] for x in second.read_text().splitlines()]
    assert names == ["both", "second only"]
    assert [s.name for s in spans.get_finished_spans()] == ["both", "second only", "neither"]


def test_configure_sets_content_capture_until_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spans_module, "_ENV_CAPTURE", False)
    assert not tracing.capturing_content()
    handle = tracing.configure(capture_content=True)
    assert tracing.capturing_content()
    handle.shutdown()
    assert not tracing.capturing_content()
    with tracing.configure():
        monkeypatch.setattr(spans_module, "_ENV_CAPTURE", True)  # the variable, read at import
        assert tracing.capturing_content(), "None defers to the environment variable"


def test_configure_refuses_a_second_sdk_provider() -> None:
    with pytest.raises(RuntimeError, match="already the global one"):
        tracing.configure(provider=TracerProvider())


def test_configure_reports_an_unwritable_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dir\.jsonl"):
        tracing.configure(jsonl=tmp_path / "no" / "such" / "dir.jsonl")


def test_otlp_exporter_targets_the_traces_path() -> None:
    exporter = tracing.otlp_span_exporter("http://127.0.0.1:4318/", headers={"x-team": "a"})
    assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"  # type: ignore[attr-defined]
    exporter.shutdown()
    full = tracing.otlp_span_exporter("http://collector:4318/v1/traces")
    assert full._endpoint == "http://collector:4318/v1/traces"  # type: ignore[attr-defined]
    full.shutdown()
