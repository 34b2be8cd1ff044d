"""The JSONL trace file: one finished span per line, appended (what ``--trace FILE`` writes).

Each line is a JSON object::

    {"name": "chat gpt-4o-mini", "trace_id": "<32 hex>", "span_id": "<16 hex>",
     "parent_id": "<16 hex>" | null, "kind": "CLIENT",
     "start": "2025-06-01T12:00:00.123456Z", "end": "...",
     "start_time_unix_nano": 1748779200123456789, "end_time_unix_nano": ...,
     "duration_ms": 12.5, "status": {"code": "OK" | "ERROR" | "UNSET", "description": null},
     "attributes": {...}, "events": [{"name", "time_unix_nano", "attributes"}],
     "links": [{"trace_id", "span_id", "attributes"}],
     "resource": {"service.name": "agentmesh", ...}, "scope": {"name", "version"}}

Nanosecond times are kept next to the readable ones, so :mod:`agentmesh.tracing.reader`
rebuilds spans exactly (and can replay them to any OTLP backend).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonlSpanExporter", "iso_time", "span_to_dict"]


_Q = '"'


def _format_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _with_micros(second: str, unix_nano: int) -> str:
    """``second`` (as :func:`_format_second` writes it) plus the microseconds of ``unix_nano``."""
    return f"{second}.{(unix_nano // 1000) % 1_000_000:06d}Z"


def iso_time(unix_nano: int) -> str:
    """ISO 8601 UTC time of a nanosecond timestamp, to the microsecond (``...Z``)."""
    return _with_micros(_format_second(unix_nano // 1_000_000_000), unix_nano)


def _hex_span(span_id: int) -> str:
    return f"{span_id:016x}"


def _plain(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A dict copy of attributes (a ``mappingproxy`` copies ~7x faster than ``dict()``)."""
    if not values:
        return {}
    copy = getattr(values, "copy", None)
    return copy() if copy is not None else dict(values)


def _fields(span: ReadableSpan) -> dict[str, Any]:
    """Everything of a span's line but its resource and scope (shared by many spans)."""
    ctx = span.get_span_context()
    start = span.start_time or 0
    end = span.end_time or start
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": _hex_span(ctx.span_id) if ctx else None,
        "parent_id": _hex_span(span.parent.span_id) if span.parent else None,
        "kind": span.kind.name,
        "start": iso_time(start),
        "end": iso_time(end),
        "start_time_unix_nano": start,
        "end_time_unix_nano": end,
        "duration_ms": round((end - start) / 1e6, 6),
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": _plain(span.attributes),
        "events": _events(span),
        "links": _links(span),
    }


def _events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "time_unix_nano": e.timestamp, "attributes": _plain(e.attributes)}
        for e in span.events
    ]


def _links(span: ReadableSpan) -> list[dict[str, Any]]:
    return [
        {
            "trace_id": f"{link.context.trace_id:032x}",
            "span_id": _hex_span(link.context.span_id),
            "attributes": _plain(link.attributes),
        }
        for link in span.links
    ]


def _scope(span: ReadableSpan) -> dict[str, Any] | None:
    scope = span.instrumentation_scope
    return {"name": scope.name, "version": scope.version} if scope else None


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One finished span as the JSON-ready mapping written on its line."""
    data = _fields(span)
    data["resource"] = _plain(span.resource.attributes)
    data["scope"] = _scope(span)
    return data


class JsonlSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON line; thread-safe.

    Every batch is written and flushed under a lock, so concurrent batches never
    interleave within a line and a crash loses at most the batch being written.

    Args:
        path: The file; created if missing, appended to otherwise.

    Raises:
        OSError: The file cannot be opened for appending (at construction).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: Any = open(self.path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._lock = threading.Lock()
        self._encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
        # Encoded once per resource and scope object (a provider shares them by all spans).
        self._shared: dict[int, tuple[object, str]] = {}
        self._second: tuple[int, str] = (-1, "")

    def _encoded(self, key: object, value: object) -> str:
        found = self._shared.get(id(key))
        if found is None or found[0] is not key:
            if len(self._shared) > 64:
                self._shared.clear()
            found = (key, self._encoder.encode(value))
            self._shared[id(key)] = found
        return found[1]

    def _iso(self, unix_nano: int) -> str:
        """:func:`iso_time`, with the formatted second cached (spans of a batch share it)."""
        second = unix_nano // 1_000_000_000
        if second != self._second[0]:
            self._second = (second, _format_second(second))
        return _with_micros(self._second[1], unix_nano)

    def _line(self, span: ReadableSpan) -> str:
        """The span's line: the JSON of :func:`span_to_dict`, byte for byte.

        Fixed-shape fields are formatted directly and only the free-form values
        (name, attributes, events, links, description) go through the encoder:
        a third less work per span than encoding the whole mapping.
        """
        encode = self._encoder.encode
        ctx = span.get_span_context()
        if ctx is None:  # pragma: no cover - SDK spans always have a context
            return self._encoder.encode(span_to_dict(span)) + "\n"
        start = span.start_time or 0
        end = span.end_time or start
        parent = span.parent
        status = span.status
        description = status.description
        events, links = span.events, span.links
        return (
            f'{{"name":{encode(span.name)},"trace_id":"{ctx.trace_id:032x}",'
            f'"span_id":"{ctx.span_id:016x}",'
            f'"parent_id":{"null" if parent is None else f"{_Q}{parent.span_id:016x}{_Q}"},'
            f'"kind":"{span.kind.name}","start":"{self._iso(start)}","end":"{self._iso(end)}",'
            f'"start_time_unix_nano":{start},"end_time_unix_nano":{end},'
            f'"duration_ms":{round((end - start) / 1e6, 6)!r},'
            f'"status":{{"code":"{status.status_code.name}",'
            f'"description":{"null" if description is None else encode(description)}}},'
            f'"attributes":{encode(_plain(span.attributes))},'
            f'"events":{encode(_events(span)) if events else "[]"},'
            f'"links":{encode(_links(span)) if links else "[]"},'
            f'"resource":{self._encoded(span.resource, _plain(span.resource.attributes))},'
            f'"scope":{self._encoded(span.instrumentation_scope, _scope(span))}}}\n'
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write ``spans``, one line each, and flush."""
        text = "".join(self._line(s) for s in spans)
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            self._file.write(text)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Lines are flushed per batch already; flush again for good measure."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
        return True

    def shutdown(self) -> None:
        """Close the file; later exports fail."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
