"""Is an OpenTelemetry provider installed? The one check on the hot path when tracing is off.

The OpenTelemetry API answers this only through ``get_tracer_provider()`` /
``get_meter_provider()``, which look the environment up on every call while no
provider is installed (about 1 us each here), and its no-op spans and
instruments still cost ~8 us of work per traced model call. Reading the API's
own "installed provider" globals costs 0.1 us, so agentmesh does that, and skips
spans and metrics altogether while nothing is installed.

This reads two private names of ``opentelemetry-api``. If a future version
drops them, :func:`spans_on` and :func:`metrics_on` return True and agentmesh
simply takes the normal (API no-op) path: slower, never wrong. A provider named
by ``OTEL_PYTHON_TRACER_PROVIDER`` / ``OTEL_PYTHON_METER_PROVIDER`` (which the
API loads lazily) also selects the normal path.
"""

from __future__ import annotations

import os

from opentelemetry import trace as _trace_api
from opentelemetry.metrics import _internal as _metrics_api

__all__ = ["metrics_on", "spans_on"]

_MISSING = object()
_TRACE_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
_METRICS_FROM_ENV = "OTEL_PYTHON_METER_PROVIDER" in os.environ


def spans_on() -> bool:
    """False only when no global tracer provider is installed (every span would be a no-op)."""
    return _TRACE_FROM_ENV or getattr(_trace_api, "_TRACER_PROVIDER", _MISSING) is not None


def metrics_on() -> bool:
    """False only when no global meter provider is installed (every metric would be a no-op)."""
    return _METRICS_FROM_ENV or getattr(_metrics_api, "_METER_PROVIDER", _MISSING) is not None
