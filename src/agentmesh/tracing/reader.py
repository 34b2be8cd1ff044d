r"""Read JSONL trace files back: span records for the viewer, SDK spans for OTLP replay.

- :func:`load_spans` parses a file written by
  :class:`~agentmesh.tracing.jsonl.JsonlSpanExporter` into :class:`SpanRecord`\\ s;
  a bad line fails with :class:`TraceFileError` naming the file and line.
- :func:`to_readable_span` rebuilds the SDK's ``ReadableSpan`` (same ids,
  parent, times, status, attributes, events, resource and scope), and
  :func:`replay_to_otlp` hands them to any span exporter, such as the OTLP one:
  that is how a trace file loads into any OTLP-compatible backend after the fact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from agentmesh.tracing.attributes import RUN_ID

__all__ = [
    "EventRecord",
    "ExportFailed",
    "SpanRecord",
    "TraceFileError",
    "load_spans",
    "parse_spans",
    "replay_to_otlp",
    "select_run",
    "to_readable_span",
]


class TraceFileError(ValueError):
    """A trace file cannot be read or a line is not a span; ``str`` names file and line.

    Attributes:
        path: The file.
        line: The 1-based line number, or ``None`` when the file itself failed.
    """

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class ExportFailed(RuntimeError):
    """The exporter refused a batch of replayed spans."""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A span event (``exception``, ``agentmesh.fallback``...)."""

    name: str
    time_unix_nano: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span as read from a trace file.

    Attributes:
        name: Span name (``chat gpt-4o-mini``, ``route plan``...).
        trace_id: 32 hex digits.
        span_id: 16 hex digits.
        parent_id: The parent's span id, or ``None`` for a root.
        kind: ``INTERNAL``, ``CLIENT``...
        start_ns: Start, nanoseconds since the epoch.
        end_ns: End, nanoseconds since the epoch.
        status: ``UNSET``, ``OK`` or ``ERROR``.
        description: The status description (the error message), if any.
        attributes: The span's attributes.
        events: Its events, in order.
        links: Its links, as ``(trace_id, span_id, attributes)``.
        resource: Resource attributes (``service.name``...).
        scope: Instrumentation scope ``(name, version)``.
        line: The line of the file it came from.
    """

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    description: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[EventRecord, ...] = ()
    links: tuple[tuple[str, str, Mapping[str, Any]], ...] = ()
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope: tuple[str, str | None] = ("", None)
    line: int = 0

    @property
    def duration_ms(self) -> float:
        """Duration in milliseconds."""
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def failed(self) -> bool:
        """True when the span ended in an error."""
        return self.status == "ERROR"


def _hex(value: Any, digits: int, name: str) -> str:
    if not isinstance(value, str) or len(value) != digits:
        raise ValueError(f"{name} must be {digits} hex digits, got {value!r}")
    int(value, 16)
    return value.lower()


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


def _record(data: Any, line: int) -> SpanRecord:
    if not isinstance(data, dict):
        raise ValueError("a span line must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str):
        raise ValueError("missing span 'name'")
    parent = data.get("parent_id")
    status = _mapping(data.get("status"), "status")
    code = status.get("code", "UNSET")
    if code not in ("UNSET", "OK", "ERROR"):
        raise ValueError(f"unknown status code {code!r}")
    kind = data.get("kind", "INTERNAL")
    if kind not in SpanKind.__members__:
        raise ValueError(f"unknown span kind {kind!r}")
    scope = _mapping(data.get("scope"), "scope")
    return SpanRecord(
        name=name,
        trace_id=_hex(data.get("trace_id"), 32, "trace_id"),
        span_id=_hex(data.get("span_id"), 16, "span_id"),
        parent_id=None if parent is None else _hex(parent, 16, "parent_id"),
        kind=kind,
        start_ns=_int(data.get("start_time_unix_nano"), "start_time_unix_nano"),
        end_ns=_int(data.get("end_time_unix_nano"), "end_time_unix_nano"),
        status=code,
        description=status.get("description"),
        attributes=_mapping(data.get("attributes"), "attributes"),
        events=tuple(
            EventRecord(
                str(e["name"]),
                _int(e.get("time_unix_nano"), "event time_unix_nano"),
                _mapping(e.get("attributes"), "event attributes"),
            )
            for e in data.get("events") or ()
        ),
        links=tuple(
            (
                _hex(link.get("trace_id"), 32, "link trace_id"),
                _hex(link.get("span_id"), 16, "link span_id"),
                _mapping(link.get("attributes"), "link attributes"),
            )
            for link in data.get("links") or ()
        ),
        resource=_mapping(data.get("resource"), "resource"),
        scope=(str(scope.get("name", "")), scope.get("version")),
        line=line,
    )


def parse_spans(lines: Iterable[str], *, source: str = "<trace>") -> list[SpanRecord]:
    """Parse JSONL ``lines`` (blank lines are skipped).

    Raises:
        TraceFileError: A line is not JSON or not a span; names ``source`` and the line.
    """
    records: list[SpanRecord] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            records.append(_record(json.loads(text), number))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise TraceFileError(source, number, str(exc) or type(exc).__name__) from None
    return records


def load_spans(path: str | os.PathLike[str]) -> list[SpanRecord]:
    """Every span of a JSONL trace file, in file order.

    Raises:
        TraceFileError: The file cannot be read, or a line is not a span.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            return parse_spans(handle, source=name)
    except OSError as exc:
        raise TraceFileError(name, None, exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise TraceFileError(name, None, f"not UTF-8 text ({exc.reason})") from None


def select_run(records: Sequence[SpanRecord], run: str) -> list[SpanRecord]:
    """The spans of the traces ``run`` names: an ``agentmesh.run.id``, or a trace id (prefix)."""
    wanted = {r.trace_id for r in records if r.attributes.get(RUN_ID) == run}
    if not wanted and len(run) >= 4:
        prefix = run.lower()
        wanted = {r.trace_id for r in records if r.trace_id.startswith(prefix)}
    return [r for r in records if r.trace_id in wanted]


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in values.items()
        if value is not None
    }


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=TraceFlags(1)
    )


def to_readable_span(record: SpanRecord) -> ReadableSpan:
    """The SDK span ``record`` was written from (what exporters accept)."""
    code = StatusCode[record.status]
    return ReadableSpan(
        name=record.name,
        context=_context(record.trace_id, record.span_id),
        parent=_context(record.trace_id, record.parent_id) if record.parent_id else None,
        resource=Resource(_attributes(record.resource)),
        attributes=_attributes(record.attributes),
        events=[
            Event(e.name, _attributes(e.attributes), timestamp=e.time_unix_nano)
            for e in record.events
        ],
        links=[Link(_context(t, s), _attributes(a)) for t, s, a in record.links],
        kind=SpanKind[record.kind],
        status=Status(code, record.description if code is StatusCode.ERROR else None),
        start_time=record.start_ns,
        end_time=record.end_ns,
        instrumentation_scope=InstrumentationScope(record.scope[0], record.scope[1]),
    )


def replay_to_otlp(
    source: str | os.PathLike[str] | Sequence[SpanRecord],
    exporter: SpanExporter,
    *,
    batch_size: int = 512,
) -> int:
    """Send a trace file's spans (or records) to ``exporter``; returns how many were sent.

    With :func:`~agentmesh.tracing.config.otlp_span_exporter` this loads a
    trace file into any OTLP-compatible backend. The exporter is not shut down.

    Raises:
        TraceFileError: The file cannot be read.
        ExportFailed: The exporter refused a batch.
    """
    records = load_spans(source) if isinstance(source, str | os.PathLike) else list(source)
    spans = [to_readable_span(r) for r in records]
    for start in range(0, len(spans), batch_size):
        if exporter.export(spans[start : start + batch_size]) is not SpanExportResult.SUCCESS:
            raise ExportFailed(
                f"{type(exporter).__name__} refused spans {start + 1}-"
                f"{min(start + batch_size, len(spans))} of {len(spans)}"
            )
    return len(spans)
