"""Shared by the tracing tests (no tests here).

OpenTelemetry's global providers can be set once per process, so the session
installs one SDK ``TracerProvider`` with an in-memory exporter and one
``MeterProvider`` with a delta-temporality in-memory reader, the first time a
test asks (``installed()``); each test clears what it reads. ``configure()``
calls made by tests reuse this provider and detach their own exporters on
``shutdown()``, so nothing leaks from one test into another.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_KINDS = (
    Counter,
    UpDownCounter,
    Histogram,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
)
DELTA = dict.fromkeys(_KINDS, AggregationTemporality.DELTA)


@cache
def installed() -> tuple[InMemorySpanExporter, InMemoryMetricReader | None]:
    """The session's span exporter and metric reader, on the global providers.

    The reader is ``None`` if something else installed a ``MeterProvider`` first
    (its readers cannot be extended); only the metric tests then fail.
    """
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "agentmesh-tests"}))
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return exporter, None
    reader = InMemoryMetricReader(preferred_temporality=DELTA)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return exporter, reader


def span_fixture() -> Iterator[InMemorySpanExporter]:
    """Body of each module's ``spans`` fixture: a cleared exporter, cleared again after."""
    exporter, _ = installed()
    exporter.clear()
    yield exporter
    exporter.clear()


def metric_fixture() -> Iterator[InMemoryMetricReader]:
    """Body of each module's ``meters`` fixture: the reader, drained before the test."""
    _, reader = installed()
    if reader is None:
        pytest.fail("a MeterProvider was installed before the tracing tests' (global state leak)")
    reader.get_metrics_data()
    yield reader


def by_name(spans: Any, name: str) -> list[ReadableSpan]:
    """Finished spans called ``name``."""
    return [s for s in spans.get_finished_spans() if s.name == name]


def one(spans: Any, name: str) -> ReadableSpan:
    """The one finished span called ``name``."""
    found = by_name(spans, name)
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


def collected(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Every metric recorded since the last read, by name: ``(attributes, data point)`` pairs."""
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                out.setdefault(metric.name, []).extend(
                    (dict(p.attributes or {}), p) for p in metric.data.data_points
                )
    return out
