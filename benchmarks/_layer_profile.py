"""Where the time of a run goes, by layer: the profiles node_overhead and run_concurrency print.

A profile is ``cProfile`` over untimed runs with the garbage collector off (its
time is measured apart, on the timed runs, by :class:`GcClock`). Each
function's own time goes to the group of its file (:func:`group_of`); the own
time of builtins and of the standard library outside ``asyncio`` (``isinstance``,
``dataclasses.replace``, ``copy``, ``uuid``, pydantic's validators...) goes to
the groups of their callers, in proportion to what each caller spent in them,
so ``isinstance`` called by LangGraph counts as LangGraph. The profiler's own
cost per call event, calibrated in the same process (:func:`call_overhead_s`),
is taken off each group for the calls it made, then the groups are scaled so
that they add up to the measured (unprofiled) time: a profile says which part
of a measured microsecond each layer spent, it is not a second clock.
"""

from __future__ import annotations

import cProfile
import gc
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Key = tuple[str, int, str]

GROUPS: Mapping[str, str] = {
    "langgraph": "LangGraph's Pregel loop: tasks, channels and reducers, the checkpoint "
    "made in memory every step, langchain-core's config and callbacks",
    "checkpointer": "storing checkpoints: LangGraph's serializer and saver, agentmesh's "
    "per-thread index (graph/memory_saver.py); what resuming a run reads",
    "graph": "agentmesh graph bookkeeping: the node wrapper (loop bounds, branch), inputs "
    "resolved, step records, the state update, run start and end (RunResult)",
    "prompts": "the prompt: inputs checked, the sandboxed Jinja render within render "
    "limits, messages split on a per-render nonce, the prompt's identity",
    "routing": "the routing decision: snapshot, filters, ranking, the budget "
    "reservation and its settlement, the observation",
    "resilience": "the resilient call: breaker admission, rate limits, retry budget, "
    "cache plans, redaction, attempt records",
    "models": "the gateway and the scripted provider (the model answer is simulated)",
    "tracing": "spans: agentmesh's span helpers and the OpenTelemetry SDK (with tracing "
    "off, the checks that no span is recording)",
    "agentmesh_other": "other agentmesh modules (limits, JSON, redaction helpers)",
    "event_loop": "asyncio: tasks created and scheduled, loop iterations, futures",
    "benchmark": "the benchmark's own code (raw LangGraph's node functions, the harness)",
    "other": "what no caller claims (the profiler's root)",
}
"""Every group a profile reports, and what its time buys."""

_AGENTMESH = {
    "graph": "graph",
    "prompts": "prompts",
    "routing": "routing",
    "resilience": "resilience",
    "models": "models",
    "testing": "models",
    "tracing": "tracing",
}
_THIRD_PARTY = (
    ("langgraph/checkpoint", "checkpointer"),
    ("langgraph", "langgraph"),
    ("langchain_core", "langgraph"),
    ("jinja2", "prompts"),
    ("markupsafe", "prompts"),
    ("opentelemetry", "tracing"),
)


def group_of(filename: str) -> str | None:
    """The group of a profiled function's file; ``None``: its callers' (builtins, stdlib)."""
    if filename.startswith(("~", "<")):
        return None
    path = Path(filename)
    parts = path.parts
    if "agentmesh" in parts and "site-packages" not in parts[: parts.index("agentmesh")]:
        rest = parts[parts.index("agentmesh") + 1 :]
        if rest[:2] == ("graph", "memory_saver.py"):
            return "checkpointer"
        return _AGENTMESH.get(rest[0], "agentmesh_other") if len(rest) > 1 else "agentmesh_other"
    text = path.as_posix()
    for marker, group in _THIRD_PARTY:
        if f"/{marker}/" in text:
            return group
    if "/asyncio/" in text:
        return "event_loop"
    if "benchmarks" in parts:
        return "benchmark"
    if path.suffix == ".j2":  # a compiled template's code
        return "prompts"
    return None


def call_overhead_s(calls: int = 100_000) -> float:
    """What the profiler adds per profiled call (a Python call and its return), in seconds."""

    def nothing() -> None:
        return None

    def loop() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            nothing()
        return time.perf_counter() - started

    plain = min(loop() for _ in range(3))
    profile = cProfile.Profile()
    profile.enable()
    profiled = min(loop() for _ in range(3))
    profile.disable()
    return max(0.0, (profiled - plain) / calls)


class _Attribution:
    """Own time and calls of every profiled function, given to groups (module docstring)."""

    def __init__(self, stats: Mapping[Key, Any]) -> None:
        self.stats = stats
        self._shares: dict[Key, dict[str, float]] = {}

    def shares(self, key: Key) -> dict[str, float]:
        """How ``key``'s time divides among groups (its own group, or its callers')."""
        group = group_of(key[0])
        if group is not None:
            return {group: 1.0}
        found = self._shares.get(key)
        if found is not None:
            return found
        self._shares[key] = {"other": 1.0}  # a caller cycle back to ``key`` ends here
        callers: Mapping[Key, Any] = self.stats[key][4] if key in self.stats else {}
        weights = {c: edge[3] for c, edge in callers.items() if c != key}
        total = sum(weights.values())
        out: dict[str, float] = defaultdict(float)
        for caller, weight in weights.items():
            for name, share in self.shares(caller).items():
                out[name] += share * (weight / total if total else 1 / len(weights))
        self._shares[key] = dict(out) or {"other": 1.0}
        return self._shares[key]

    def groups(self) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, float]]]:
        """Own seconds and calls per group, and each group's own seconds per function."""
        own: dict[str, float] = defaultdict(float)
        calls: dict[str, float] = defaultdict(float)
        by_function: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for key, (_, primitive, tottime, _, callers) in self.stats.items():
            label = _label(key)
            if group_of(key[0]) is not None or not callers:
                parts = self.shares(key)
                for name, share in parts.items():
                    own[name] += tottime * share
                    calls[name] += primitive * share
                    by_function[name][label] += tottime * share
                continue
            # a builtin or stdlib function: each caller pays what it spent in it
            for caller, (_, edge_calls, edge_tt, _) in callers.items():
                for name, share in self.shares(caller).items():
                    own[name] += edge_tt * share
                    calls[name] += edge_calls * share
                    by_function[name][label] += edge_tt * share
        return dict(own), dict(calls), {k: dict(v) for k, v in by_function.items()}


def _label(key: Key) -> str:
    filename, line, name = key
    if filename.startswith(("~", "<")):
        return name
    path = Path(filename)
    return f"{path.parent.name}/{path.name}:{line}({name})"


def attribute(profile: cProfile.Profile, units: int, overhead_s: float) -> dict[str, Any]:
    """Per unit (node or run): each group's profiled own time less the profiler's cost, calls.

    Returns:
        ``{"us": {group: us}, "calls": {group: calls}, "top": {group: [[function, us], ...]}}``,
        largest groups first, every figure per unit.
    """
    profile.create_stats()
    stats: Mapping[Key, Any] = profile.stats  # type: ignore[attr-defined]
    own, calls, by_function = _Attribution(stats).groups()
    net = {g: max(0.0, own[g] - calls.get(g, 0.0) * overhead_s) for g in own}
    order = sorted(net, key=lambda g: -net[g])
    top = {
        g: [
            [label, round(1e6 * seconds / units, 2)]
            for label, seconds in sorted(by_function[g].items(), key=lambda kv: -kv[1])[:8]
        ]
        for g in order
    }
    return {
        "us": {g: 1e6 * net[g] / units for g in order},
        "calls": {g: round(calls.get(g, 0.0) / units, 1) for g in order},
        "top": top,
    }


def scaled(profiled: Mapping[str, float], measured_us: float) -> dict[str, float]:
    """``profiled`` groups scaled to add up to ``measured_us`` (the unprofiled time)."""
    total = sum(profiled.values())
    if total <= 0:
        return {}
    return {g: round(us * measured_us / total, 1) for g, us in profiled.items()}


class GcClock:
    """Time the garbage collector spends, by generation, while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.ns = [0, 0, 0]
        self.collections = [0, 0, 0]
        self._started = 0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        generation = info["generation"]
        self.ns[generation] += time.perf_counter_ns() - self._started
        self.collections[generation] += 1

    @property
    def total_ns(self) -> int:
        """Nanoseconds in every collection so far."""
        return sum(self.ns)


async def profiled(run: Callable[[], Awaitable[Any]], times: int) -> cProfile.Profile:
    """``times`` awaits of ``run()`` under a fresh profiler, the garbage collector off."""
    gc.collect()
    gc.disable()
    profile = cProfile.Profile()
    try:
        profile.enable()
        for _ in range(times):
            await run()
        profile.disable()
    finally:
        gc.enable()
    return profile


def breakdown(
    measured_us: float, gc_us: float, profiles: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``measured_us`` split: the collector's ``gc_us``, the rest by the profiles' groups.

    Args:
        measured_us: The median time (of a node or a run) the timed runs measured.
        gc_us: The collector's mean time in the same unit, from the timed runs.
        profiles: :func:`attribute` results of the same runs, one per round: their
            groups are averaged, then scaled to ``measured_us - gc_us``.
    """
    groups: dict[str, float] = defaultdict(float)
    for found in profiles:
        for group, us in found["us"].items():
            groups[group] += us / len(profiles)
    profiled = sum(groups.values())
    rest = max(0.0, measured_us - gc_us)
    factor = rest / profiled if profiled else 0.0
    us = {g: round(v * factor, 1) for g, v in sorted(groups.items(), key=lambda kv: -kv[1])}
    last = profiles[-1]
    return {
        "measured_us": round(measured_us, 1),
        "us": us | {"gc": round(gc_us, 1)},
        "calls": last["calls"],
        "top": {g: [[f, round(v * factor, 1)] for f, v in top] for g, top in last["top"].items()},
        "profiled_us": round(profiled, 1),
        "scale_to_measured": round(factor, 3),
    }


def difference(ours: Mapping[str, float], theirs: Mapping[str, float]) -> dict[str, float]:
    """``ours - theirs`` per group, largest first."""
    diff = {g: round(ours.get(g, 0.0) - theirs.get(g, 0.0), 1) for g in {*ours, *theirs}}
    return dict(sorted(diff.items(), key=lambda kv: -kv[1]))


def line(title: str, diff: Mapping[str, float], shown: int = 7) -> str:
    """One summary line: the total and its largest parts (``title: +512 us = a +180, ...``)."""
    parts = ", ".join(f"{g} {v:+.1f}" for g, v in list(diff.items())[:shown])
    return f"{title}: {sum(diff.values()):+.1f} us = {parts}"
