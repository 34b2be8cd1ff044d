"""Resilience under injected faults: agentmesh's ``ResilientCaller`` vs no resilience vs LiteLLM.

What is measured
    Three models, ``primary`` (tier 1, the cheapest, so ``Policy(strategy="cheapest")``
    chooses it and falls back to the others), ``backup1`` (tier 2) and ``backup2``
    (tier 3), are endpoints of agentmesh's loopback ``FaultServer``, run in a child
    process (``_faults_support.py``) so that it does not share the client's GIL. The
    backups are always healthy; the primary follows a *scenario*, whose plan is
    swapped when the request with a given index is dispatched (so every arm meets the
    fault on the same share of its requests):

    * ``a_random_5xx``: 30% of the primary's requests get HTTP 503 (seeded draws),
      for the whole run.
    * ``b_outage``: primary healthy for the first third of the requests, then a hard
      outage (every request 503) for the second third, then healthy again, so that
      both the breaker opening and its closing fall inside the run.
    * ``c_429_storm``: healthy for the first 10%, then every request answered 429
      with ``Retry-After: 2`` until 80%, then healthy. 2 s is longer than the
      policy's ``max_retry_after_s`` (1 s), so agentmesh falls back at once instead
      of waiting.
    * ``c2_429_storm_wait``: the same storm with ``Retry-After: 1``, which the policy
      is willing to wait for (``<= max_retry_after_s``): the waiting path.

    Each scenario runs ``--requests`` requests (2000 by default) at ``--concurrency``
    (32) in each *arm*, each arm on fresh endpoints (same plans, same seeds) and fresh
    clients:

    * ``agentmesh``: ``ResilientCaller(router, gateway, policy).call(RouteRequest,
      ModelRequest, Policy(strategy="cheapest"))`` with a fresh ``Router`` and
      ``Gateway``; the policy (``settings.agentmesh``) retries with full-jitter
      backoff (``base_s`` 0.01, ``cap_s`` 0.1), a retry budget, a circuit breaker
      (threshold 5, cooldown 0.5 s) and fallbacks along the decision.
    * ``baseline``: no resilience, ``await gateway.invoke("primary", request)`` once.
    * ``litellm``: ``litellm.Router`` with one deployment per model group and
      ``fallbacks=[{"primary-group": ["backup1-group", "backup2-group"]}]``,
      ``num_retries=2`` (3 attempts), ``allowed_fails=4`` (cooldown on the 5th failure),
      ``cooldown_time=0.5`` and its backoff constants set to the same base and cap
      (``settings.litellm``); the OpenAI SDK's own retries are off (``max_retries=0``).
      Imported only after the other arms ran, offline (``LITELLM_LOCAL_MODEL_COST_MAP``),
      with every connection but loopback refused (``network_attempts``).

How to read the output (one JSON object on stdout)
    ``scenarios.<name>.<arm>``:

    * ``success_rate``: requests that got an answer / requests; ``failures`` by kind.
    * ``latency_ms``: p50/p95/p99/max of every request, end to end on the client
      (``time.perf_counter``), failures included (a failure is often fast).
    * ``calls_per_request``: HTTP requests the fault server received on the arm's
      three endpoints / requests made (retries, fallbacks and probes included).
      ``primary_fault_rate`` is the share of the primary's requests that got the
      fault; a caller that tries the primary exactly once and then falls back makes
      ``1 + primary faults / requests`` calls per request (``no_retry_floor``).
      With random faults (a) the realized fault share is a seeded draw near 30%;
      ``calls_per_request_at_nominal_fault_rate`` is ``1 + 0.3 * primary calls /
      requests``, what the same traffic costs at exactly the nominal rate.
    * ``served_by``: requests answered by each endpoint (server side).
    * ``by_phase``: success rate of the requests dispatched in each phase (calls in
      flight when the plan is swapped meet the next phase's plan).
    * ``fault_window``: the fault phase on the server's clock (seconds from the
      arm's start), the primary's requests and faults in it, and
      ``primary_recovered_after_s``: from the fault's end to the first healthy
      answer of the primary (when traffic went back to it).
    * ``breaker`` (agentmesh): every transition of the primary's breaker (from the
      ``breaker_listeners``), ``time_to_open_s`` from the fault start, the primary's
      failures the caller saw before the open event (``failures_before_open``,
      compared with the threshold 5; ``primary_faults_served_before_open`` is the
      server's count, in-flight calls included, comparable with LiteLLM's figure;
      ``streak_before_open`` counts only those since the primary's last success),
      the failures of calls already in flight when it opened
      (``failures_in_flight_after_open``, up to its next transition),
      ``time_to_close_s`` from the fault end, ``open_to_closed_without_probe``:
      closes straight from ``open`` (the success of a call admitted before the
      breaker opened), which skip the half-open probe, and
      ``calls_started_while_open``: primary calls begun while its breaker was open
      (retries that had been scheduled before it opened).
    * ``cooldown`` (litellm): how many times LiteLLM put each deployment in cooldown
      (every failure past ``allowed_fails`` renews it), the time from the fault start
      to the first one, and the primary's faults the server served before it
      (server side: includes calls in flight).

    ``targets``: the issue's targets read literally for agentmesh (``meets_*``), with
    the other arms' figures beside them. The breaker target is checked in every
    scenario where the primary fails every request (b, c, c2).

Run::

    .venv/bin/python benchmarks/faults.py                 # full, ~2-3 min on 2 cores
    .venv/bin/python benchmarks/faults.py --quick         # ~1 min
    .venv/bin/python benchmarks/faults.py --requests 1000 --concurrency 16 --no-litellm
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from types import ModuleType
from typing import Any

import _peer_stack
from _faults_support import LoopbackGuard, RemoteFaultServer, TimelineEntry
from agentmesh.models.catalog import Catalog
from agentmesh.models.errors import ModelError
from agentmesh.models.gateway import Gateway
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.resilience import (
    Attempt,
    BreakerEvent,
    BreakerPolicy,
    Call,
    CallFailed,
    ResiliencePolicy,
    ResilientCaller,
    RetryBudgetPolicy,
    RetryPolicy,
)
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing.fault_server import FaultPlan

SEED = 1
"""Seed of the fault draws and of the caller's jitter."""
FULL_REQUESTS = 2000
QUICK_REQUESTS = 600
CONCURRENCY = 32
PROMPT = "Reply with the word ok."
PRIMARY = "primary"
MODELS: tuple[tuple[str, int, float, float], ...] = (
    (PRIMARY, 1, 0.15, 0.6),
    ("backup1", 2, 1.0, 4.0),
    ("backup2", 3, 5.0, 15.0),
)
"""(id, tier, USD per million input tokens, per million output tokens)."""
CALL_TIMEOUT_S = 10.0

RETRY = RetryPolicy(max_attempts=3, base_s=0.01, cap_s=0.1, max_retry_after_s=1.0)
BREAKER = BreakerPolicy(failure_threshold=5, window_s=30.0, cooldown_s=0.5, half_open_probes=1)
RESILIENCE = ResiliencePolicy(
    retry=RETRY, retry_budget=RetryBudgetPolicy(), breaker=BREAKER, deadline_s=CALL_TIMEOUT_S
)
ROUTING = Policy(strategy="cheapest")

LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "INITIAL_RETRY_DELAY": str(RETRY.base_s),
    "MAX_RETRY_DELAY": str(RETRY.cap_s),
    "JITTER": str(RETRY.base_s),
}
"""Set before litellm is imported: offline cost map, and backoff constants ~ agentmesh's."""
LITELLM_ROUTER_SETTINGS: dict[str, Any] = {
    "num_retries": RETRY.max_attempts - 1,
    "allowed_fails": BREAKER.failure_threshold - 1,
    "cooldown_time": BREAKER.cooldown_s,
    "retry_after": 0,
    "timeout": CALL_TIMEOUT_S,
}

TARGET_SUCCESS = 0.999
TARGET_BREAKER_FAILURES = 5
TARGET_CALLS_PER_REQUEST = 1.3
MAX_EVENTS = 40
"""Breaker transitions listed per arm (all are counted)."""
MAX_COOLDOWN_TIMES = 10
"""LiteLLM cooldowns of the primary listed per arm (all are counted)."""

HEALTHY = FaultPlan()


@dataclass(frozen=True, slots=True)
class Phase:
    """One stretch of a scenario.

    Attributes:
        name: Label in the output.
        start: Share of the requests dispatched before the phase begins.
        plan: The primary's plan during the phase.
        fault: Whether this is the fault the timings refer to.
    """

    name: str
    start: float
    plan: FaultPlan
    fault: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named sequence of phases of the primary (the backups stay healthy)."""

    key: str
    description: str
    phases: tuple[Phase, ...]
    hard_fault: bool
    """The primary fails every request of the fault phase (the breaker target applies)."""


def _storm(retry_after: float) -> FaultPlan:
    return FaultPlan(mode="rate_limit", retry_after=retry_after, fail_rate=1.0, seed=SEED)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "a_random_5xx",
        "primary answers 30% of its requests with HTTP 503 (seeded), the whole run",
        (Phase("random_5xx", 0.0, FaultPlan("error", 503, fail_rate=0.3, seed=SEED), True),),
        hard_fault=False,
    ),
    Scenario(
        "b_outage",
        "primary healthy, then every request 503 for the middle third, then healthy",
        (
            Phase("healthy", 0.0, HEALTHY),
            Phase("outage", 1 / 3, FaultPlan("error", 503, fail_rate=1.0, seed=SEED), True),
            Phase("recovered", 2 / 3, HEALTHY),
        ),
        hard_fault=True,
    ),
    Scenario(
        "c_429_storm",
        "primary healthy, then every request 429 with Retry-After: 2 (longer than "
        "max_retry_after_s: fall back, don't wait) from 10% to 80%, then healthy",
        (
            Phase("healthy", 0.0, HEALTHY),
            Phase("storm", 0.1, _storm(2.0), True),
            Phase("recovered", 0.8, HEALTHY),
        ),
        hard_fault=True,
    ),
    Scenario(
        "c2_429_storm_wait",
        "as c_429_storm with Retry-After: 1 (<= max_retry_after_s: the caller may wait)",
        (
            Phase("healthy", 0.0, HEALTHY),
            Phase("storm", 0.1, _storm(1.0), True),
            Phase("recovered", 0.8, HEALTHY),
        ),
        hard_fault=True,
    ),
)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one request of an arm came to.

    Attributes:
        served: Model that answered (``None`` when the request failed).
        error: Error kind or exception class when it failed.
        attempts: Model calls the client made for it, when the arm reports them.
        primary_retries: Retries of the primary, when the arm reports them.
    """

    served: str | None
    error: str | None = None
    attempts: int | None = None
    primary_retries: int | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One request, timed."""

    index: int
    latency_s: float
    outcome: CallOutcome


@dataclass(frozen=True, slots=True)
class PhaseStart:
    """When a phase began: the first request index it covers and the server's clock."""

    phase: Phase
    first_index: int
    at: float


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One ``Gateway.invoke`` as the caller saw it (agentmesh arm)."""

    model: str
    started: float
    ended: float
    error: str | None


CallFn = Callable[[], Awaitable[CallOutcome]]


class CountingGateway(Gateway):
    """A :class:`Gateway` that logs each call's model, wall-clock times and error kind."""

    def __init__(self, catalog: Catalog, log: list[GatewayCall]) -> None:
        super().__init__(catalog, environ={})
        self.log = log

    async def invoke(self, model_id: str, request: ModelRequest, **kwargs: Any) -> ModelResponse:
        """See :meth:`Gateway.invoke`; the call is logged before it returns or raises."""
        started = time.time()
        try:
            response = await super().invoke(model_id, request, **kwargs)
        except ModelError as error:
            self.log.append(GatewayCall(model_id, started, time.time(), error.kind))
            raise
        self.log.append(GatewayCall(model_id, started, time.time(), None))
        return response


class PhaseSwitcher:
    """Swaps the primary's plan when the first request of each phase is dispatched.

    Requests of a later phase wait until its plan is in place; earlier ones go on.
    """

    def __init__(
        self, server: RemoteFaultServer, endpoint: str, phases: Sequence[Phase], requests: int
    ) -> None:
        self._server = server
        self._endpoint = endpoint
        self._bounds = [(round(p.start * requests), p) for p in phases]
        self._next = 0
        self._lock = asyncio.Lock()
        self.started: list[PhaseStart] = []

    async def before(self, index: int) -> None:
        """Put in place every phase that starts at or before request ``index``."""
        bounds = self._bounds
        if self._next >= len(bounds) or bounds[self._next][0] > index:
            return
        async with self._lock:
            while self._next < len(bounds) and bounds[self._next][0] <= index:
                first, phase = bounds[self._next]
                at = await self._server.plan(self._endpoint, phase.plan)
                self.started.append(PhaseStart(phase, first, at))
                self._next += 1


async def drive(
    call: CallFn, requests: int, concurrency: int, switcher: PhaseSwitcher
) -> tuple[list[Record], float, float]:
    """Make ``requests`` calls, ``concurrency`` at a time (closed loop).

    Returns:
        The records in dispatch order, the start and end of the run (epoch seconds).
    """
    records: list[Record | None] = [None] * requests
    next_index = 0
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal next_index
        while next_index < requests:
            index = next_index
            next_index += 1
            await switcher.before(index)
            started = clock()
            outcome = await call()
            records[index] = Record(index, clock() - started, outcome)

    await switcher.before(0)
    begun = time.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    ended = time.time()
    return [r for r in records if r is not None], begun, ended


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds (``None`` for no values)."""
    ordered = sorted(latencies_s)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    return {
        "p50": round(percentile(ordered, 0.50) * 1000, 2),
        "p95": round(percentile(ordered, 0.95) * 1000, 2),
        "p99": round(percentile(ordered, 0.99) * 1000, 2),
        "max": round(ordered[-1] * 1000, 2),
    }


def ratio(part: float, whole: float) -> float | None:
    """``part / whole`` rounded to 6 places, or ``None`` when ``whole`` is 0."""
    return round(part / whole, 6) if whole else None


@dataclass(slots=True)
class ArmRun:
    """Everything one arm produced in one scenario, before summarizing."""

    records: list[Record]
    begun: float
    ended: float
    phases: list[PhaseStart]
    server_requests: dict[str, int]
    server_faults: dict[str, int]
    connections: int
    timeline: list[TimelineEntry]
    extra: dict[str, Any] = field(default_factory=dict)


def fault_window(run: ArmRun) -> tuple[float, float]:
    """Start and end (server clock) of the fault phase; the run's end if it is the last."""
    for i, started in enumerate(run.phases):
        if started.phase.fault:
            end = run.phases[i + 1].at if i + 1 < len(run.phases) else run.ended
            return started.at, end
    raise ValueError("scenario has no fault phase")


def summarize(run: ArmRun, prefix: str) -> dict[str, Any]:
    """The JSON summary common to every arm."""
    records = run.records
    total = len(records)
    ok = sum(1 for r in records if r.outcome.served is not None)
    failures = Counter(r.outcome.error or "unknown" for r in records if r.outcome.served is None)
    requests = {k.removeprefix(prefix): v for k, v in sorted(run.server_requests.items())}
    faults = {k.removeprefix(prefix): v for k, v in sorted(run.server_faults.items())}
    served = {k: v - faults.get(k, 0) for k, v in requests.items()}
    primary_requests = requests.get(PRIMARY, 0)
    primary_faults = faults.get(PRIMARY, 0)

    by_phase: dict[str, Any] = {}
    for i, started in enumerate(run.phases):
        last = run.phases[i + 1].first_index if i + 1 < len(run.phases) else total
        chunk = [r for r in records if started.first_index <= r.index < last]
        good = sum(1 for r in chunk if r.outcome.served is not None)
        by_phase[started.phase.name] = {
            "requests": len(chunk),
            "success_rate": ratio(good, len(chunk)),
            "latency_p95_ms": latency_summary([r.latency_s for r in chunk])["p95"],
        }

    start, end = fault_window(run)
    nominal = next(p.phase.plan.fail_rate for p in run.phases if p.phase.fault)
    primary_name = prefix + PRIMARY
    in_window = [e for e in run.timeline if e.endpoint == primary_name and start <= e.at < end]
    recovered = next(
        (e.at for e in run.timeline if e.endpoint == primary_name and e.at >= end and not e.faulty),
        None,
    )
    last_phase_is_fault = run.phases[-1].phase.fault
    attempts = [r.outcome.attempts for r in records if r.outcome.attempts is not None]
    retries = [r.outcome.primary_retries for r in records if r.outcome.primary_retries is not None]
    wall = run.ended - run.begun
    return {
        "requests": total,
        "succeeded": ok,
        "success_rate": ratio(ok, total),
        "failures": dict(failures),
        "latency_ms": latency_summary([r.latency_s for r in records]),
        "latency_ok_ms": latency_summary(
            [r.latency_s for r in records if r.outcome.served is not None]
        ),
        "calls_per_request": ratio(sum(requests.values()), total),
        "primary_fault_rate": ratio(primary_faults, primary_requests),
        "no_retry_floor_calls_per_request": ratio(total + primary_faults, total),
        "calls_per_request_at_nominal_fault_rate": (
            ratio(total + nominal * primary_requests, total) if nominal < 1 else None
        ),
        "client_attempts_per_request": (round(statistics.fmean(attempts), 6) if attempts else None),
        "primary_retries": sum(retries) if retries else None,
        "server": {
            "requests": requests,
            "faults": faults,
            "connections": run.connections,
        },
        "served_by": served,
        "primary_share": ratio(served.get(PRIMARY, 0), total),
        "by_phase": by_phase,
        "fault_window": {
            "start_s": round(start - run.begun, 4),
            "end_s": round(end - run.begun, 4),
            "duration_s": round(end - start, 4),
            "primary_requests": len(in_window),
            "primary_faults": sum(1 for e in in_window if e.faulty),
            "primary_recovered_after_s": (
                None if last_phase_is_fault or recovered is None else round(recovered - end, 4)
            ),
        },
        "wall_s": round(wall, 3),
        "throughput_rps": round(total / wall, 1) if wall > 0 else None,
    }


def breaker_report(
    events: Sequence[BreakerEvent], calls: Sequence[GatewayCall], run: ArmRun, hard_fault: bool
) -> dict[str, Any]:
    """The primary's breaker: transitions, time to open and close, failures before opening.

    ``failures_before_open`` (failures since the fault start) is only meaningful when
    the primary fails every request of the fault phase (``hard_fault``); with random
    faults the breaker reacts to a streak, reported as ``streak_before_open``.
    """
    primary = [e for e in events if e.model == PRIMARY]
    start, end = fault_window(run)
    fault_is_last = run.phases[-1].phase.fault
    failures = [c for c in calls if c.model == PRIMARY and c.error is not None]
    opened = [e for e in primary if e.new == "open" and e.old == "closed"]
    first_open = next((e for e in opened if e.at >= start), None)
    report: dict[str, Any] = {
        "threshold": BREAKER.failure_threshold,
        "cooldown_s": BREAKER.cooldown_s,
        "transitions": Counter(f"{e.old}->{e.new}" for e in primary),
        "opens": len(opened),
        "open_to_closed_without_probe": sum(
            1 for e in primary if e.old == "open" and e.new == "closed"
        ),
        "time_to_open_s": None,
        "failures_before_open": None,
        "primary_faults_served_before_open": None,
        "streak_before_open": None,
        "failures_in_flight_after_open": None,
        "closes_during_fault": sum(1 for e in primary if e.new == "closed" and start <= e.at < end),
        "time_to_close_s": None,
    }
    open_spans = [
        (e.at, next((n.at for n in primary[i + 1 :]), run.ended))
        for i, e in enumerate(primary)
        if e.new == "open"
    ]
    report["calls_started_while_open"] = sum(
        1
        for c in calls
        if c.model == PRIMARY and any(begin < c.started < until for begin, until in open_spans)
    )
    durations = []
    for e in opened:
        closed = next((c for c in primary if c.new == "closed" and c.at >= e.at), None)
        if closed is not None:
            durations.append(closed.at - e.at)
    report["open_durations_ms"] = (
        {
            "min": round(min(durations) * 1000, 2),
            "median": round(statistics.median(durations) * 1000, 2),
            "max": round(max(durations) * 1000, 2),
        }
        if durations
        else None
    )
    if first_open is not None:
        after = next((e for e in primary if e.at > first_open.at), None)
        until = min(after.at if after is not None else end, end)
        report["time_to_open_s"] = round(first_open.at - start, 4)
        if hard_fault:
            report["failures_before_open"] = sum(
                1 for c in failures if start <= c.ended <= first_open.at
            )
            report["primary_faults_served_before_open"] = sum(
                1
                for e in run.timeline
                if e.endpoint.endswith("-" + PRIMARY)
                and e.faulty
                and start <= e.at <= first_open.at
            )
        last_success = max(
            (
                c.ended
                for c in calls
                if c.model == PRIMARY and c.error is None and c.ended <= first_open.at
            ),
            default=start,
        )
        report["streak_before_open"] = sum(
            1 for c in failures if max(start, last_success) <= c.ended <= first_open.at
        )
        report["failures_in_flight_after_open"] = sum(
            1 for c in failures if first_open.at < c.ended <= until
        )
    if not fault_is_last:
        closed_after = next((e for e in primary if e.new == "closed" and e.at >= end), None)
        if closed_after is not None:
            report["time_to_close_s"] = round(closed_after.at - end, 4)
    report["transitions"] = dict(report["transitions"])
    report["events"] = [
        f"{e.at - run.begun:.4f}s {e.old}->{e.new} ({e.reason})" for e in primary[:MAX_EVENTS]
    ]
    return report


def attempts_made(attempts: Sequence[Attempt]) -> int:
    """Calls actually made (skips for an open circuit are not calls)."""
    return sum(1 for a in attempts if a.outcome != "skipped")


def primary_retries(attempts: Sequence[Attempt]) -> int:
    """Retries of the primary (attempts after the first on it)."""
    return sum(1 for a in attempts if a.model == PRIMARY and a.reason.startswith("retry"))


def catalog_for(server: RemoteFaultServer, prefix: str) -> Catalog:
    """The three models, each on its own fault-server endpoint ``prefix + id``."""
    specs = [
        ModelSpec.model_validate(
            {
                "id": model_id,
                "provider": "openai",
                "model": model_id,
                "base_url": server.base_url(prefix + model_id),
                "tier": tier,
                "pricing": {"input": price_in, "output": price_out},
                "timeout_s": CALL_TIMEOUT_S,
            }
        )
        for model_id, tier, price_in, price_out in MODELS
    ]
    return Catalog(specs, source=f"faults-{prefix}")


async def run_arm(
    server: RemoteFaultServer,
    scenario: Scenario,
    prefix: str,
    call: CallFn,
    requests: int,
    concurrency: int,
) -> ArmRun:
    """Set the endpoints' plans, drive the load, and collect the server's side."""
    for model_id, *_ in MODELS:
        if model_id != PRIMARY:
            await server.plan(prefix + model_id, HEALTHY)
    switcher = PhaseSwitcher(server, prefix + PRIMARY, scenario.phases, requests)
    before = await server.stats(prefix)
    records, begun, ended = await drive(call, requests, concurrency, switcher)
    after = await server.stats(prefix)
    timeline = await server.take_timeline(prefix)
    return ArmRun(
        records,
        begun,
        ended,
        switcher.started,
        after.requests,
        after.faults,
        after.connections - before.connections,
        timeline,
    )


async def agentmesh_arm(
    server: RemoteFaultServer, scenario: Scenario, requests: int, concurrency: int
) -> dict[str, Any]:
    """``ResilientCaller`` over a fresh router and gateway."""
    prefix = f"{scenario.key}-agentmesh-"
    catalog = catalog_for(server, prefix)
    events: list[BreakerEvent] = []
    calls: list[GatewayCall] = []
    route_request = RouteRequest(node="faults", prompt=PROMPT, max_output_tokens=16)
    model_request = ModelRequest.of(PROMPT, max_tokens=16)
    async with CountingGateway(catalog, calls) as gateway:
        caller = ResilientCaller(
            Router(catalog),
            gateway,
            RESILIENCE,
            rng=random.Random(SEED),
            breaker_listeners=[events.append],
        )

        async def call() -> CallOutcome:
            try:
                result = await caller.call(Call(route_request, model_request, ROUTING))
            except CallFailed as failure:
                return CallOutcome(
                    None,
                    failure.kind,
                    attempts_made(failure.attempts),
                    primary_retries(failure.attempts),
                )
            return CallOutcome(
                result.model,
                None,
                attempts_made(result.attempts),
                primary_retries(result.attempts),
            )

        run = await run_arm(server, scenario, prefix, call, requests, concurrency)
    summary = summarize(run, prefix)
    summary["breaker"] = breaker_report(events, calls, run, scenario.hard_fault)
    return summary


async def baseline_arm(
    server: RemoteFaultServer, scenario: Scenario, requests: int, concurrency: int
) -> dict[str, Any]:
    """One ``Gateway.invoke`` of the primary per request: no retry, no fallback."""
    prefix = f"{scenario.key}-baseline-"
    catalog = catalog_for(server, prefix)
    model_request = ModelRequest.of(PROMPT, max_tokens=16)
    async with Gateway(catalog, environ={}) as gateway:

        async def call() -> CallOutcome:
            try:
                await gateway.invoke(PRIMARY, model_request)
            except ModelError as error:
                return CallOutcome(None, error.kind, 1, 0)
            return CallOutcome(PRIMARY, None, 1, 0)

        run = await run_arm(server, scenario, prefix, call, requests, concurrency)
    return summarize(run, prefix)


def import_litellm() -> tuple[ModuleType | None, str]:
    """LiteLLM imported offline and quietly, with backoff constants like agentmesh's."""
    return _peer_stack.import_litellm({**_peer_stack.LITELLM_ENV, **LITELLM_ENV})


def litellm_model_list(server: RemoteFaultServer, prefix: str) -> list[dict[str, Any]]:
    """One deployment per model group ``<id>-group``, on the same endpoints as agentmesh."""
    return [
        {
            "model_name": f"{model_id}-group",
            "litellm_params": {
                "model": f"openai/{model_id}",
                "api_base": server.base_url(prefix + model_id),
                "api_key": "x",
                "max_retries": 0,
                "timeout": CALL_TIMEOUT_S,
            },
            "model_info": {"id": prefix + model_id},
        }
        for model_id, *_ in MODELS
    ]


def cooldown_report(cooldowns: Sequence[tuple[float, str]], run: ArmRun) -> dict[str, Any]:
    """When LiteLLM cooled the primary down, against the fault window."""
    start, _ = fault_window(run)
    primary = [at for at, model in cooldowns if model == PRIMARY]
    first = next((at for at in primary if at >= start), None)
    primary_endpoint = next(
        (e.endpoint for e in run.timeline if e.endpoint.endswith("-" + PRIMARY)), None
    )
    return {
        "cooldown_time_s": BREAKER.cooldown_s,
        "allowed_fails": LITELLM_ROUTER_SETTINGS["allowed_fails"],
        "cooldowns": Counter(model for _, model in cooldowns),
        "time_to_first_cooldown_s": None if first is None else round(first - start, 4),
        "primary_faults_served_before_cooldown": (
            None
            if first is None
            else sum(
                1
                for e in run.timeline
                if e.endpoint == primary_endpoint and e.faulty and start <= e.at <= first
            )
        ),
        "first_primary_cooldowns_at_s": [
            round(at - run.begun, 4) for at in primary[:MAX_COOLDOWN_TIMES]
        ],
    }


async def litellm_arm(
    litellm: ModuleType,
    server: RemoteFaultServer,
    scenario: Scenario,
    requests: int,
    concurrency: int,
) -> dict[str, Any]:
    """``litellm.Router.acompletion`` with equivalent retries, cooldown and fallbacks."""
    prefix = f"{scenario.key}-litellm-"
    router = litellm.Router(
        model_list=litellm_model_list(server, prefix),
        fallbacks=[{"primary-group": ["backup1-group", "backup2-group"]}],
        **LITELLM_ROUTER_SETTINGS,
    )
    cooldowns: list[tuple[float, str]] = []
    original = router.cooldown_cache.add_deployment_to_cooldown

    def recording(*args: Any, **kwargs: Any) -> Any:
        model_id = kwargs.get("model_id", args[0] if args else "")
        cooldowns.append((time.time(), str(model_id).removeprefix(prefix)))
        return original(*args, **kwargs)

    router.cooldown_cache.add_deployment_to_cooldown = recording
    messages = [{"role": "user", "content": PROMPT}]

    async def call() -> CallOutcome:
        try:
            response = await router.acompletion(
                model="primary-group", messages=messages, max_tokens=16
            )
        except Exception as exc:  # litellm raises its own and provider exception types
            return CallOutcome(None, type(exc).__name__)
        hidden = getattr(response, "_hidden_params", None) or {}
        served = str(hidden.get("model_id") or "").removeprefix(prefix)
        return CallOutcome(served or "unknown")

    try:
        run = await run_arm(server, scenario, prefix, call, requests, concurrency)
    finally:
        router.discard()
        with contextlib.suppress(Exception):  # best effort: release pooled connections
            from litellm.llms.custom_httpx.async_client_cleanup import (
                close_litellm_async_clients,
            )

            await close_litellm_async_clients()  # type: ignore[no-untyped-call]
    summary = summarize(run, prefix)
    summary["cooldown"] = cooldown_report(cooldowns, run)
    return summary


def target(
    name: str,
    basis: str,
    threshold: float,
    values: dict[str, float | None],
    comparison: str,
) -> dict[str, Any]:
    """One target with every arm's figure and whether it meets it (``None``: not measured)."""

    def meets(value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= threshold if comparison == ">=" else value <= threshold

    return {
        "target": f"{name} {comparison} {threshold:g}",
        "basis": basis,
        "values": values,
        "meets": {arm: meets(v) for arm, v in values.items()},
    }


def targets_block(results: dict[str, dict[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    """The issue's targets, read literally, for every arm; ``meets_*`` are agentmesh's."""

    def value(scenario: str, arm: str, key: str) -> float | None:
        found = results.get(scenario, {}).get(arm, {})
        figure = found.get(key) if isinstance(found, dict) else None
        return None if figure is None else float(figure)

    def worst_breaker(arm: str) -> float | None:
        counts: list[float] = []
        for scenario in SCENARIOS:
            if not scenario.hard_fault or scenario.key not in results:
                continue
            found = results[scenario.key].get(arm)
            if not isinstance(found, dict):
                continue
            if arm == "agentmesh":
                figure = found["breaker"]["failures_before_open"]
            elif arm == "litellm":
                figure = found["cooldown"]["primary_faults_served_before_cooldown"]
            else:
                figure = None
            counts.append(math.inf if figure is None else float(figure))
        return max(counts) if counts else None

    a_success = target(
        "a success rate",
        "scenario a_random_5xx, requests answered / requests",
        TARGET_SUCCESS,
        {arm: value("a_random_5xx", arm, "success_rate") for arm in arms},
        ">=",
    )
    b_success = target(
        "b success rate",
        "scenario b_outage, requests answered / requests",
        TARGET_SUCCESS,
        {arm: value("b_outage", arm, "success_rate") for arm in arms},
        ">=",
    )
    breaker = target(
        "failures before the breaker opens",
        "worst over the hard-fault scenarios (b, c, c2). agentmesh: primary failures the "
        "caller saw between the fault start and the open event (the server-side count, "
        "in-flight calls included, is breaker.primary_faults_served_before_open); "
        "litellm: primary faults the server served before the first cooldown (in-flight "
        "calls included; LiteLLM's own failure count is not instrumented here); "
        "baseline has no breaker (inf = never opened)",
        TARGET_BREAKER_FAILURES,
        {arm: (worst_breaker(arm) if arm != "baseline" else math.inf) for arm in arms},
        "<=",
    )
    calls = target(
        "a calls per request",
        "scenario a_random_5xx, HTTP requests received by the three endpoints / requests",
        TARGET_CALLS_PER_REQUEST,
        {arm: value("a_random_5xx", arm, "calls_per_request") for arm in arms},
        "<=",
    )
    for block in (a_success, b_success, breaker, calls):
        block["values"] = {
            arm: ("inf" if v is not None and math.isinf(v) else v)
            for arm, v in block["values"].items()
        }
    mine = [t["meets"].get("agentmesh") for t in (a_success, b_success, breaker, calls)]
    return {
        "a_success": a_success,
        "b_success": b_success,
        "breaker_within_5_failures": breaker,
        "a_calls_per_request": calls,
        "meets_a_success": a_success["meets"].get("agentmesh"),
        "meets_b_success": b_success["meets"].get("agentmesh"),
        "meets_breaker_within_5_failures": breaker["meets"].get("agentmesh"),
        "meets_a_calls_per_request": calls["meets"].get("agentmesh"),
        "meets_all": all(m is True for m in mine),
    }


def describe_plan(plan: FaultPlan) -> str:
    """A one-line view of a plan, with the fields its mode uses."""
    if plan.mode == "ok":
        return "ok"
    text = f"{plan.mode} fail_rate={plan.fail_rate:g} seed={plan.seed}"
    if plan.mode == "error":
        text += f" status={plan.status}"
    if plan.mode == "rate_limit":
        text += f" status=429 retry_after={plan.retry_after}"
    return text


def settings_block(requests: int, concurrency: int, litellm_version: str | None) -> dict[str, Any]:
    """Everything the run was configured with."""
    return {
        "requests_per_arm": requests,
        "concurrency": concurrency,
        "seed": SEED,
        "prompt": PROMPT,
        "models": [
            {"id": m, "tier": t, "usd_per_mtok_in": i, "usd_per_mtok_out": o}
            for m, t, i, o in MODELS
        ],
        "scenarios": {
            s.key: {
                "description": s.description,
                "phases": [
                    {
                        "name": p.name,
                        "from_request": p.start,
                        "primary_plan": describe_plan(p.plan),
                    }
                    for p in s.phases
                ],
            }
            for s in SCENARIOS
        },
        "agentmesh": {
            "resilience": RESILIENCE.model_dump(mode="json"),
            "routing": ROUTING.model_dump(mode="json"),
            "sleep": "asyncio.sleep (real backoff)",
            "clock": "time.time (breaker events)",
        },
        "baseline": "Gateway.invoke('primary') once per request",
        "litellm": {
            "version": litellm_version,
            "env": LITELLM_ENV,
            "router": {
                **LITELLM_ROUTER_SETTINGS,
                "fallbacks": [{"primary-group": ["backup1-group", "backup2-group"]}],
                "deployment": {"max_retries": 0, "timeout": CALL_TIMEOUT_S},
            },
            "equivalence": "num_retries = max_attempts - 1; allowed_fails = threshold - 1 "
            "(litellm cools down when failures exceed allowed_fails; its failure count "
            "lives cooldown_time seconds, it is not a consecutive streak); cooldown_time = "
            "cooldown_s; backoff INITIAL_RETRY_DELAY = base_s, MAX_RETRY_DELAY = cap_s, "
            "JITTER = base_s (litellm sleeps base*2^n + jitter, agentmesh uniform(0, "
            "min(cap, base*2^n))); litellm has no max_retry_after_s: it honours an "
            "integer Retry-After up to 60 s and uses it as the cooldown time",
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario in every arm; agentmesh and baseline first, then litellm."""
    started = time.perf_counter()
    requests = args.requests or (QUICK_REQUESTS if args.quick else FULL_REQUESTS)
    concurrency = args.concurrency
    guard = LoopbackGuard()
    guard.install()
    server = await RemoteFaultServer.start()
    results: dict[str, dict[str, Any]] = {s.key: {} for s in SCENARIOS}
    litellm_version: str | None = None
    arms = ["agentmesh", "baseline"]
    try:
        for scenario in SCENARIOS:
            results[scenario.key]["agentmesh"] = await agentmesh_arm(
                server, scenario, requests, concurrency
            )
            results[scenario.key]["baseline"] = await baseline_arm(
                server, scenario, requests, concurrency
            )
        if args.no_litellm:
            for scenario in SCENARIOS:
                results[scenario.key]["litellm"] = {"skipped": "--no-litellm"}
        else:
            litellm, found = import_litellm()
            if litellm is None:
                for scenario in SCENARIOS:
                    results[scenario.key]["litellm"] = {"skipped": found}
            else:
                litellm_version = found
                arms.append("litellm")
                for scenario in SCENARIOS:
                    results[scenario.key]["litellm"] = await litellm_arm(
                        litellm, server, scenario, requests, concurrency
                    )
    finally:
        await server.close()
    return {
        "benchmark": "faults",
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "agentmesh": version("agentmesh"),
        },
        "settings": settings_block(requests, concurrency, litellm_version),
        "scenarios": results,
        "targets": targets_block(results, arms),
        "network_attempts": guard.attempts,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_REQUESTS} requests per arm")
    parser.add_argument("--requests", type=int, default=0, help="requests per scenario and arm")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="requests in flight")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM arm")
    args = parser.parse_args(argv)
    if args.requests < 0 or args.concurrency < 1:
        parser.error("--requests must be >= 0 and --concurrency >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one JSON object on stdout.

    Anything a library prints while it runs goes to stderr, so stdout holds only the JSON.
    """
    args = parse_args(argv)
    out = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        report = asyncio.run(run(args))
    json.dump(report, out, indent=2)
    out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
