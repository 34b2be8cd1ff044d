"""The peer arms of ``node_overhead.py``: raw LangGraph, LangGraph + LiteLLM, agentmesh on HTTP.

Each arm is a child process's measurement (see ``node_overhead.py``'s docstring);
the clients they call are in ``_peer_stack.py``. The timing harness and the
graphs stay in ``node_overhead.py`` and reach these functions as a
:class:`Harness`, so that nothing here imports the script that imports it.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _peer_stack as peer

__all__ = ["PEER_VARIANTS", "ChildArgs", "Harness", "children", "peer_section"]


@dataclass(frozen=True, slots=True)
class Harness:
    """What the peer arms use of ``node_overhead.py``.

    Attributes:
        measure: ``measure(runners, plan, calibrate=None, *, gc_on=False)``.
        plain_runners: ``plain_runners(ask, mode)``: every shape's raw graph on ``ask``.
        agentmesh_runners: ``agentmesh_runners(runtime, *, strategy, modes, suffix)``.
        span_counter: ``span_counter(handle, trace_file)``: flush, then count spans.
        plan: The ``Plan(runs, blocks, warmup)`` constructor.
        nodes: Node executions per run of every shape.
        prompts: The prompt folder agentmesh renders from.
    """

    measure: Callable[..., Awaitable[tuple[dict[str, Any], dict[str, Any]]]]
    plain_runners: Callable[[peer.Ask, str], dict[tuple[str, str], Any]]
    agentmesh_runners: Callable[..., dict[tuple[str, str], Any]]
    span_counter: Callable[[Any, str], Callable[[], int]]
    plan: Callable[[int, int, int], Any]
    nodes: Mapping[str, int]
    prompts: Path


@dataclass(frozen=True, slots=True)
class ChildArgs:
    """What a child process is told: the run's size, its trace file, the stub's URL."""

    quick: bool
    trace_file: str
    base_url: str


def peer_plans(harness: Harness, quick: bool) -> dict[str, Any]:
    """Runs per process for the peer arms (their calls cross HTTP: fewer than the scripted)."""
    if quick:
        return {
            "chain10": harness.plan(2, 1, 1),
            "chain100": harness.plan(1, 1, 0),
            "fanout10": harness.plan(2, 1, 1),
        }
    return {
        "chain10": harness.plan(3, 2, 1),
        "chain100": harness.plan(1, 1, 0),
        "fanout10": harness.plan(3, 2, 1),
    }


PEER_NOTES = [
    "Every peer arm calls one loopback OpenAI-compatible stub (benchmarks/_stub_server.py, "
    "its own process) answering every chat completion at once ('ok'; a JSON plan for "
    "'Question:' prompts): per-node time is framework + client + loopback HTTP.",
    "Pool: two models, cheap (0.15/0.60 USD per M tokens) and dear (2.50/10.00), "
    "both on the stub; agentmesh: openai catalog entries with base_url, strategy "
    "cheapest, default resilience (3 calls per model, breaker at 5 failures, falls back); "
    "LiteLLM Router: openai/ deployments with api_base, the same prices, num_retries=2, "
    "allowed_fails=4, cooldown 30 s, fallbacks cheap -> dear.",
    "raw_httpx (the baseline): LangGraph nodes doing a bare httpx POST and response.json(); "
    "raw_gateway: agentmesh's Gateway.invoke on the openai entry (the model client alone).",
    "litellm: nodes awaiting Router.acompletion (one group per model, fallbacks); "
    "litellm_latency: both models in one group, latency-based-routing fed by its own "
    "success callback (latency_history shows the lists it kept); agentmesh_off_latency: "
    "agentmesh with strategy least_latency.",
    "litellm_otel: the same Router with litellm.callbacks=['otel'] (LiteLLM's own "
    "OpenTelemetry logger), exporting through the global SDK provider set by "
    "agentmesh.tracing.configure(jsonl=...): the same BatchSpanProcessor and JSONL "
    "exporter as agentmesh_on. (OpenInference's openinference-instrumentation-litellm and "
    "opentelemetry-instrumentation-litellm also exist on PyPI; not measured here.)",
    "agentmesh_off/on: GraphRunner (checked and compiled once) run() timed, untraced / "
    "traced to JSONL (workflow span, in-memory checkpointer, step records included); the "
    "LiteLLM and raw graphs are compiled without checkpointer.",
    "Each variant in its own process, the processes rotated every round; GC on during "
    "timing; an audit hook refuses (and lists) any network access not on loopback.",
    "stub_requests: requests the stub answered per arm / node executions (1.0: no retry, "
    "no fallback, nothing else called).",
    "Wall time (table, shapes, target.meets) includes waiting for the stub: on a busy "
    "2-core machine each HTTP round trip also waits to be scheduled, a cost of every arm "
    "alike that pulls ratios towards 1 and adds noise. CPU time (cpu_table, cpu, "
    "target.meets_on_cpu: the process's CPU, all threads, the stub's excluded) is each "
    "stack's own work per node.",
]


def node_executions(runs: dict[str, int], nodes: Mapping[str, int]) -> int:
    """Node executions of ``{"shape/mode": runs}``."""
    return sum(n * nodes[key.split("/", 1)[0]] for key, n in runs.items())


def peer_result(
    harness: Harness,
    times: dict[str, Any],
    facts: dict[str, Any],
    guard: peer.NetworkGuard,
    **more: Any,
) -> dict[str, Any]:
    """A peer child's JSON result."""
    executed = node_executions(facts["runs"], harness.nodes)
    return {
        "times_ns": times,
        "cpu_ns": facts["cpu_ns"],
        "node_executions": executed,
        "network": guard.report(),
        **more,
    }


async def peer_raw_child(harness: Harness, args: ChildArgs) -> dict[str, Any]:
    """Raw LangGraph calling the stub: a bare httpx POST, and agentmesh's Gateway."""
    from agentmesh.models import Gateway

    guard = peer.guard_loopback()
    plan = peer_plans(harness, args.quick)
    catalog = peer.stub_catalog(args.base_url, "peer_raw")
    async with peer.httpx_ask(args.base_url, "peer_raw") as ask, Gateway(catalog) as gateway:
        runners = harness.plain_runners(ask, "httpx") | harness.plain_runners(
            peer.gateway_ask(gateway, peer.POOL[0].id), "gateway"
        )
        times, facts = await harness.measure(runners, plan, gc_on=True)
    return peer_result(harness, times, facts, guard)


async def litellm_child(harness: Harness, args: ChildArgs, *, otel: bool) -> dict[str, Any]:
    """LangGraph + LiteLLM Router on the stub; with LiteLLM's ``otel`` callback if ``otel``."""
    from agentmesh import tracing

    guard = peer.guard_loopback()
    plan = peer_plans(harness, args.quick)
    litellm, found = peer.import_litellm()
    if litellm is None:
        return {"skipped": found, "network": guard.report()}
    arm = "peer_litellm_otel" if otel else "peer_litellm"
    with tracing.configure(jsonl=args.trace_file) if otel else contextlib.nullcontext() as handle:
        if otel:  # LiteLLM's OpenTelemetry logger adopts the global SDK provider just set
            litellm.callbacks = ["otel"]  # type: ignore[attr-defined]  # a ModuleType here
        routers = peer.litellm_routers(litellm, args.base_url, arm, latency=not otel)
        runners: dict[tuple[str, str], Any] = {}
        for mode, (router, group) in routers.items():
            runners |= harness.plain_runners(peer.litellm_ask(router, group), mode)
        try:
            times, facts = await harness.measure(runners, plan, gc_on=True)
            history = peer.latency_history(routers["latency"][0]) if not otel else None
        finally:
            await peer.aclose_routers(routers)
        spans = harness.span_counter(handle, args.trace_file)() if handle is not None else None
    return peer_result(
        harness, times, facts, guard, litellm=found, latency_history=history, spans_written=spans
    )


async def peer_agentmesh_child(
    harness: Harness, args: ChildArgs, *, traced: bool
) -> dict[str, Any]:
    """The agentmesh workflows on the stub's two-model pool, untraced or traced to JSONL."""
    from agentmesh import tracing
    from agentmesh.graph import Runtime

    guard = peer.guard_loopback()
    plan = peer_plans(harness, args.quick)
    arm = "peer_agentmesh_on" if traced else "peer_agentmesh_off"
    catalog = peer.stub_catalog(args.base_url, arm)
    with tracing.configure(jsonl=args.trace_file) if traced else contextlib.nullcontext() as handle:
        async with Runtime.open(catalog, prompts=harness.prompts) as runtime:
            runners = harness.agentmesh_runners(runtime, modes=("runner",))
            if not traced:
                runners |= harness.agentmesh_runners(
                    runtime, strategy="least_latency", modes=("runner",), suffix="_latency"
                )
            times, facts = await harness.measure(runners, plan, gc_on=True)
        spans = harness.span_counter(handle, args.trace_file)() if handle is not None else None
    return peer_result(harness, times, facts, guard, spans_written=spans)


def children(
    harness: Harness,
) -> dict[str, Callable[[ChildArgs], Coroutine[Any, Any, dict[str, Any]]]]:
    """Every peer variant's measurement, by variant name."""
    return {
        "peer_raw": functools.partial(peer_raw_child, harness),
        "peer_litellm": functools.partial(litellm_child, harness, otel=False),
        "peer_litellm_otel": functools.partial(litellm_child, harness, otel=True),
        "peer_agentmesh_off": functools.partial(peer_agentmesh_child, harness, traced=False),
        "peer_agentmesh_on": functools.partial(peer_agentmesh_child, harness, traced=True),
    }


# --- report (parent process) ---------------------------------------------------------

PEER_VARIANTS = (
    "peer_raw",
    "peer_litellm",
    "peer_litellm_otel",
    "peer_agentmesh_off",
    "peer_agentmesh_on",
)
COLUMNS: dict[str, tuple[str, str]] = {
    "raw_httpx": ("peer_raw", "httpx"),
    "raw_gateway": ("peer_raw", "gateway"),
    "litellm": ("peer_litellm", "router"),
    "litellm_latency": ("peer_litellm", "latency"),
    "litellm_otel": ("peer_litellm_otel", "router"),
    "agentmesh_off": ("peer_agentmesh_off", "runner"),
    "agentmesh_off_latency": ("peer_agentmesh_off", "runner_latency"),
    "agentmesh_on": ("peer_agentmesh_on", "runner"),
}
"""Peer column -> (variant, mode)."""
BASELINE = "raw_httpx"
TARGET_RATIO = 0.5
TARGET = ("agentmesh_off", "litellm")
RATIOS = (
    TARGET,
    ("agentmesh_on", "litellm_otel"),
    ("agentmesh_off_latency", "litellm_latency"),
    ("agentmesh_off", BASELINE),
    ("agentmesh_on", BASELINE),
    ("agentmesh_off", "raw_gateway"),
    ("agentmesh_on", "raw_gateway"),
    ("litellm", BASELINE),
    ("litellm_otel", BASELINE),
    ("raw_gateway", BASELINE),
)
TABLE = (
    ("raw LG", BASELINE),
    ("LG+LiteLLM", "litellm"),
    ("LG+LiteLLM+OTel", "litellm_otel"),
    ("agentmesh", "agentmesh_off"),
    ("agentmesh+JSONL", "agentmesh_on"),
)


def _per_round(
    rounds: list[dict[str, dict[str, Any]]], shapes: Mapping[str, int], clock: str
) -> dict[str, dict[str, list[float]]]:
    """``{shape: {column: [per-round median per-node us]}}`` on ``clock`` (a result key)."""
    out: dict[str, dict[str, list[float]]] = {shape: {} for shape in shapes}
    for results in rounds:
        for column, (variant, mode) in COLUMNS.items():
            times = results.get(variant, {}).get(clock)
            for shape, nodes in shapes.items():
                if times and mode in times.get(shape, {}):
                    value = statistics.median(times[shape][mode]) / 1000 / nodes
                    out[shape].setdefault(column, []).append(value)
    return out


def _shape(per_round: dict[str, list[float]]) -> dict[str, Any]:
    """Medians, ratios and the target ratio's spread over rounds, for one shape."""
    node_us = {c: statistics.median(v) for c, v in per_round.items()}
    ratios = {
        f"{a} / {b}": round(node_us[a] / node_us[b], 3)
        for a, b in RATIOS
        if a in node_us and b in node_us
    }
    a, b = TARGET
    spread = [x / y for x, y in zip(per_round.get(a, []), per_round.get(b, []), strict=False)]
    return {
        "per_node_us": {c: round(v, 1) for c, v in node_us.items()},
        "ratios": ratios,
        "target_ratio_range_over_rounds": (
            [round(min(spread), 3), round(max(spread), 3)] if spread else None
        ),
    }


def _table(shapes: dict[str, dict[str, Any]], title: str) -> list[str]:
    """The five arms side by side, per-node microseconds, and the two ratios."""
    head = f"{title:<14}" + "".join(f"{label:>17}" for label, _ in TABLE)
    lines = [head + f"{'agentmesh/LiteLLM':>19}{'agentmesh/raw':>15}"]
    for shape, found in shapes.items():
        us = found["per_node_us"]
        cells = "".join(f"{us[c]:>17.1f}" if c in us else f"{'-':>17}" for _, c in TABLE)
        ratios = found["ratios"]
        to_litellm = ratios.get(f"{TARGET[0]} / {TARGET[1]}")
        to_raw = ratios.get(f"agentmesh_off / {BASELINE}")
        lines.append(
            f"{shape:<14}{cells}"
            + (f"{to_litellm:>18.3f}x" if to_litellm is not None else f"{'-':>19}")
            + (f"{to_raw:>14.3f}x" if to_raw is not None else f"{'-':>15}")
        )
    return lines


def _stub_requests(
    rounds: list[dict[str, dict[str, Any]]], stats: Mapping[str, Any]
) -> dict[str, Any]:
    """Requests the stub answered per arm against the arm's node executions."""
    out: dict[str, Any] = {}
    for variant in PEER_VARIANTS:
        executed = sum(r.get(variant, {}).get("node_executions", 0) for r in rounds)
        answered = stats.get("requests", {}).get(variant, 0)
        if executed:
            out[variant] = {
                "requests": answered,
                "node_executions": executed,
                "requests_per_node": round(answered / executed, 3),
            }
    return out


def _traced(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Spans written per node execution by the traced arms."""
    out: dict[str, Any] = {}
    for variant in ("peer_litellm_otel", "peer_agentmesh_on"):
        spans = sum(r.get(variant, {}).get("spans_written") or 0 for r in rounds)
        executed = sum(r.get(variant, {}).get("node_executions", 0) for r in rounds)
        if executed:
            out[variant] = {"spans": spans, "spans_per_node": round(spans / executed, 2)}
    return out


def peer_report(
    rounds: list[dict[str, dict[str, Any]]],
    shapes: Mapping[str, int],
    stub_stats: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``peer`` block of node_overhead's JSON: the five arms side by side."""
    per_shape = {s: _shape(v) for s, v in _per_round(rounds, shapes, "times_ns").items()}
    cpu = {s: _shape(v) for s, v in _per_round(rounds, shapes, "cpu_ns").items()}
    last = rounds[-1]
    litellm = last.get("peer_litellm", {})
    refused = sorted(
        {r for res in last.values() for r in res.get("network", {}).get("non_loopback_refused", [])}
    )
    key = f"{TARGET[0]} / {TARGET[1]}"
    target = {s: r["ratios"].get(key) for s, r in per_shape.items()}
    cpu_target = {s: r["ratios"].get(key) for s, r in cpu.items()}
    seconds = {
        v: [r[v]["process_s"] for r in rounds if "process_s" in r.get(v, {})] for v in PEER_VARIANTS
    }
    return {
        "table": _table(per_shape, "wall us/node"),
        "cpu_table": _table(cpu, "CPU us/node"),
        "process_s_median": {v: statistics.median(s) for v, s in seconds.items() if s},
        "shapes": per_shape,
        "cpu": {
            s: {"per_node_cpu_us": c["per_node_us"], "ratios": c["ratios"]} for s, c in cpu.items()
        },
        "baseline": BASELINE,
        "litellm": litellm.get("litellm") or litellm.get("skipped"),
        "litellm_latency_history": litellm.get("latency_history"),
        "stub_requests": _stub_requests(rounds, stub_stats),
        "tracing": _traced(rounds),
        "network": {
            "non_loopback_refused": refused,
            "network_events_last_round": {
                v: res.get("network", {}).get("network_events")
                for v, res in last.items()
                if v in PEER_VARIANTS
            },
        },
        "target": {
            "criterion": f"agentmesh untraced (GraphRunner) / LangGraph + LiteLLM Router per-node "
            f"time <= {TARGET_RATIO:g}, for every shape",
            "ratios": target,
            "meets": all(v is not None and v <= TARGET_RATIO for v in target.values()),
            "cpu_ratios": cpu_target,
            "meets_on_cpu": all(v is not None and v <= TARGET_RATIO for v in cpu_target.values()),
        },
    }


def peer_section(
    harness: Harness,
    rounds: list[dict[str, dict[str, Any]]],
    quick: bool,
    stub_stats: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``peer`` block of the JSON: notes, method and figures."""
    plan = peer_plans(harness, quick)
    return {
        "notes": PEER_NOTES,
        "method": {
            "rounds": len(rounds),
            "runs_per_process": {
                s: {"timed": p.runs * p.blocks, "blocks": p.blocks, "warmup": p.warmup}
                for s, p in plan.items()
            },
            "gc": "ON during the timed runs (as users run), collected once before the first block",
        },
    } | peer_report(rounds, harness.nodes, stub_stats)
