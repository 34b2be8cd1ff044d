"""``configure()``: where an application (or the CLI) sends agentmesh's spans and metrics.

Library code only talks to the global OpenTelemetry API (see
:mod:`agentmesh.tracing.spans`); this module is for applications. It installs an
SDK ``TracerProvider`` as the global one if none is installed, or **reuses** the
SDK provider already installed (OpenTelemetry refuses to replace a global
provider), and adds this configuration's exporters to it as span processors. The
returned :class:`Tracing` handle flushes and detaches exactly those processors,
so ``configure`` may be called more than once in a process (tests, a CLI run
after another): each call adds its own exporters and ``shutdown()`` removes them
from the data path.

Metrics work the same way except that an SDK ``MeterProvider`` cannot gain
readers after it is built: metric readers (OTLP when an endpoint is given, or
``metric_readers``) are installed only if no SDK meter provider exists yet.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME

from agentmesh.tracing.jsonl import JsonlSpanExporter
from agentmesh.tracing.spans import _reset_capture, _set_capture

__all__ = ["Tracing", "configure", "otlp_span_exporter"]

_log = logging.getLogger(__name__)


def _otlp_module(name: str) -> Any:
    try:
        if name == "trace":
            from opentelemetry.exporter.otlp.proto.http import trace_exporter

            return trace_exporter
        from opentelemetry.exporter.otlp.proto.http import metric_exporter

        return metric_exporter
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "OTLP export needs the 'otlp' extra: pip install 'agentmesh[otlp]' "
            "(opentelemetry-exporter-otlp-proto-http)"
        ) from exc


def _signal_endpoint(endpoint: str, signal: str) -> str:
    """``http://host:4318`` -> ``http://host:4318/v1/<signal>``; a full path is kept."""
    base = endpoint.rstrip("/")
    return base if base.endswith(f"/v1/{signal}") else f"{base}/v1/{signal}"


def otlp_span_exporter(endpoint: str, *, headers: Mapping[str, str] | None = None) -> SpanExporter:
    """An OTLP/HTTP (protobuf) span exporter for ``endpoint`` (extra ``otlp``).

    Args:
        endpoint: The collector's base URL (``http://localhost:4318``) or its
            full traces URL (``.../v1/traces``).
        headers: Extra HTTP headers (e.g. a backend's API key).

    Raises:
        ImportError: The ``otlp`` extra is not installed; the message says how to.
    """
    module = _otlp_module("trace")
    exporter: SpanExporter = module.OTLPSpanExporter(
        endpoint=_signal_endpoint(endpoint, "traces"), headers=dict(headers or {})
    )
    return exporter


class _Detachable(SpanProcessor):
    """Forwards spans to its processors until shut down, then drops them.

    A global ``TracerProvider`` keeps every processor ever added; this wrapper is
    what lets a :class:`Tracing` handle take its exporters out of the data path.
    """

    def __init__(self, processors: Sequence[SpanProcessor]) -> None:
        self._processors = tuple(processors)
        self._active = True
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self._active:
            for processor in self._processors:
                processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self._active:
            for processor in self._processors:
                processor.on_end(span)

    def shutdown(self) -> None:
        with self._lock:
            if not self._active:
                return
            self._active = False
        for processor in self._processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._processors)


class Tracing:
    """What one :func:`configure` call installed; use as a context manager or call :meth:`shutdown`.

    Attributes:
        provider: The (global) SDK tracer provider the exporters were added to.
        exporters: The span exporters this configuration added.
        jsonl_path: The JSONL file spans are appended to, if any.
        meter_provider: The meter provider this configuration installed, if it did.
    """

    def __init__(
        self,
        provider: TracerProvider,
        processor: _Detachable,
        exporters: Sequence[SpanExporter],
        *,
        jsonl_path: str | None,
        meter_provider: MeterProvider | None,
        capture_token: Any,
    ) -> None:
        self.provider = provider
        self.exporters = tuple(exporters)
        self.jsonl_path = jsonl_path
        self.meter_provider = meter_provider
        self._processor = processor
        self._capture_token = capture_token
        self._closed = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every finished span (and metric) now; True when all exporters succeeded."""
        done = self._processor.force_flush(timeout_millis)
        if self.meter_provider is not None:
            done = self.meter_provider.force_flush(timeout_millis) and done
        return done

    def shutdown(self) -> None:
        """Flush, then detach and close this configuration's exporters (idempotent).

        The content-capture setting made by :func:`configure` is undone. The
        global provider itself stays installed (OpenTelemetry cannot uninstall it).
        """
        if self._closed:
            return
        self._closed = True
        self._processor.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        if self._capture_token is not None:
            _reset_capture(self._capture_token)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def _global_provider(
    provider: TracerProvider | None, service_name: str, sampler: Sampler | None = None
) -> TracerProvider:
    current = trace.get_tracer_provider()
    if provider is None:
        if isinstance(current, TracerProvider):
            return current
        provider = TracerProvider(
            sampler=sampler, resource=Resource.create({SERVICE_NAME: service_name})
        )
    if current is provider:
        return provider
    if isinstance(current, TracerProvider):
        raise RuntimeError(
            "another OpenTelemetry SDK TracerProvider is already the global one; agentmesh "
            "spans go to the global provider, so call configure() without provider= to add "
            "exporters to it"
        )
    trace.set_tracer_provider(provider)
    return provider


def _meter_provider(
    readers: Sequence[MetricReader],
    otlp_endpoint: str | None,
    otlp_headers: Mapping[str, str] | None,
    service_name: str,
) -> MeterProvider | None:
    if os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        otlp_endpoint = None  # metrics off (trace-only backends answer 405 to them)
    if not readers and otlp_endpoint is None:
        return None
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        _log.warning(
            "an OpenTelemetry SDK MeterProvider is already installed; agentmesh's metric "
            "readers were not added (a MeterProvider's readers are fixed when it is built)"
        )
        return None
    readers = list(readers)
    if otlp_endpoint is not None:
        exporter = _otlp_module("metric").OTLPMetricExporter(
            endpoint=_signal_endpoint(otlp_endpoint, "metrics"), headers=dict(otlp_headers or {})
        )
        readers.append(PeriodicExportingMetricReader(exporter))
    meter_provider = MeterProvider(
        metric_readers=readers, resource=Resource.create({SERVICE_NAME: service_name})
    )
    metrics.set_meter_provider(meter_provider)
    return meter_provider


def configure(
    *,
    jsonl: str | os.PathLike[str] | None = None,
    console: bool = False,
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
    processors: Sequence[SpanProcessor] = (),
    sampler: Sampler | None = None,
    capture_content: bool | None = None,
    service_name: str = "agentmesh",
    provider: TracerProvider | None = None,
    batch: bool = True,
) -> Tracing:
    """Send agentmesh spans (and metrics) somewhere; returns the handle to flush and stop.

    Args:
        jsonl: Append finished spans to this file, one JSON object per line
            (what ``--trace FILE`` writes and ``agentmesh trace`` reads).
        console: Print finished spans on stdout (OpenTelemetry's console exporter).
        otlp_endpoint: Export spans, and metrics every 60 s, with OTLP/HTTP to
            this collector URL (extra ``otlp``). ``OTEL_METRICS_EXPORTER=none``
            keeps the metrics home (for trace-only backends such as Phoenix).
        otlp_headers: HTTP headers for the OTLP exporters.
        exporters: More span exporters (e.g. an ``InMemorySpanExporter``).
        metric_readers: Metric readers to install with a new SDK meter provider.
        processors: More span processors, detached with the exporters (e.g.
            :meth:`agentmesh.tracing.prometheus.Metrics.span_processor`).
        sampler: The sampler of a provider created here (ignored when one is
            installed already); default OpenTelemetry's (parent-based, always on).
        capture_content: Put prompts, completions and tool payloads on spans
            (never keys or headers). Set for the calling context (a context
            variable, inherited by the tasks it starts) and undone by
            ``shutdown``; ``None`` (the default) leaves the decision to
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (read at import;
            off unless ``true``).
        service_name: ``service.name`` of a provider created here.
        provider: Use this SDK provider; it must be, or become, the global one.
        batch: Export in a background thread (``BatchSpanProcessor``); False
            exports each span as it ends (``SimpleSpanProcessor``; for tests and
            short scripts).

    Raises:
        ImportError: OTLP was asked for without the ``otlp`` extra.
        OSError: The JSONL file cannot be opened for appending.
        RuntimeError: ``provider`` was given but another SDK provider is global.
    """
    span_exporters: list[SpanExporter] = []
    jsonl_path = None
    if otlp_endpoint is not None:
        span_exporters.append(otlp_span_exporter(otlp_endpoint, headers=otlp_headers))
    if jsonl is not None:
        jsonl_path = os.fspath(jsonl)
        span_exporters.append(JsonlSpanExporter(jsonl_path))
    if console:
        span_exporters.append(ConsoleSpanExporter())
    span_exporters.extend(exporters)

    tracer_provider = _global_provider(provider, service_name, sampler)
    processor_type = BatchSpanProcessor if batch else SimpleSpanProcessor
    processor = _Detachable([*(processor_type(e) for e in span_exporters), *processors])
    tracer_provider.add_span_processor(processor)
    meter_provider = _meter_provider(metric_readers, otlp_endpoint, otlp_headers, service_name)
    return Tracing(
        tracer_provider,
        processor,
        span_exporters,
        jsonl_path=jsonl_path,
        meter_provider=meter_provider,
        capture_token=None if capture_content is None else _set_capture(capture_content),
    )
