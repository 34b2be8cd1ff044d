"""Cost of the shared Redis routing state against the in-memory one, and multi-process throughput.

What is measured
    ``route``: one ``await router.route(RouteRequest(prompt=PROMPT, node="bench"),
    policy)`` per sample over the 10-model synthetic catalog of
    ``routing_overhead.py`` (``_routing_fixtures.py``), once with an
    ``InMemoryRoutingState`` and once with a ``RedisRoutingState`` on the local
    server (its own key prefix, deleted afterwards), for ``cheapest``,
    ``least_latency``, ``round_robin`` (increments a counter in the snapshot) and
    ``budget`` (reserves the worst case under ``run:`` and ``global``: route()
    only, the untimed ``release()`` settles it). Both states hold the same 5
    latency and 5 math-quality observations per model.

    ``operations``: each ``RoutingState`` method on its own (snapshot of 10 models
    with a task, two budget keys and a counter; observe; add_quality; reserve;
    settle; swap_breaker), and for Redis a bare ``PING`` (the client's round trip).

    ``throughput``: 8 worker processes (spawned once, each with two ``GraphRunner``s
    of the same 2-executor chain over one scripted model answering after
    ``--latency-ms``: one on its own in-memory state, one on the shared Redis
    state; both with a global budget, so every call reserves and settles). A
    measurement sends one batch of ``--runs`` concurrent runs to each of the
    first P processes (P = 1, 2, 4, 8) and times, in the parent, from sending the
    batches to the last process's answer: runs/s = P x runs / that time. Every
    run must end ``ok``.

How it is timed
    ``route`` / ``operations``: ``time.perf_counter_ns()`` around each awaited call,
    one at a time, after warm-up; gc collected before and disabled during each block;
    memory and Redis blocks alternate (``--blocks`` each), so drifts hit both sides.
    ``throughput``: ``--rounds`` rounds; each round measures every P for both states
    (the state order flips every round) after one untimed warm-up batch per worker.
    Figures are medians (over samples, or over rounds for throughput).

How to read the output (one JSON object on stdout)
    ``route[strategy]``: ``memory`` / ``redis`` median and p99 microseconds,
    ``ratio`` (redis / memory median) and ``added_us`` (redis - memory median).
    ``operations[op]``: the same per state method; ``redis_ping_us`` is the floor
    any Redis call pays (one round trip through redis-py's asyncio client).
    ``throughput.processes[P]``: median runs/s per state, ``redis_vs_memory``
    (redis / memory runs/s) and each round's figure; ``scaling`` is runs/s at P
    over runs/s at 1 process, per state. With ``cpus`` cores, scaling beyond
    ``cpus`` processes cannot be expected (the Redis server shares them).

Run::

    .venv/bin/python benchmarks/state_overhead.py            # full, ~1.5 min on 2 cores
    .venv/bin/python benchmarks/state_overhead.py --quick    # smoke, ~30 s
    .venv/bin/python benchmarks/state_overhead.py --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _routing_fixtures import PROMPT, SEED, SyntheticModel, agentmesh_catalog, synthetic_models
from agentmesh.graph import GraphRunner, Runtime, load_graph
from agentmesh.models import load_catalog
from agentmesh.routing import (
    BreakerState,
    BudgetLimits,
    InMemoryRoutingState,
    Policy,
    RedisRoutingState,
    Router,
    RouteRequest,
    RoutingState,
)

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = 10
STRATEGIES = ("cheapest", "least_latency", "round_robin", "budget")
BUDGETS = BudgetLimits(run_usd=1e6, global_usd=1e9)
PROCESS_COUNTS = (1, 2, 4, 8)
THROUGHPUT_CATALOG = """
models:
  - id: m
    provider: scripted
    model: m
    tier: 1
    pricing: {input: 1.0, output: 2.0}
    behavior: {reply: "done", latency_ms: %s}
"""
THROUGHPUT_GRAPH = """
name: two_steps
nodes:
  n1: {kind: executor, prompt: execute_step, inputs: {question: $input, step: "one"}}
  n2: {kind: executor, prompt: execute_step, inputs: {question: $input, step: "two"}}
edges: [n1 -> n2]
"""


# --------------------------------------------------------------------------- timing


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def summarize(samples_ns: Sequence[int]) -> dict[str, Any]:
    """Median and p99 in microseconds."""
    ordered = sorted(samples_ns)
    return {
        "median_us": round(statistics.median(ordered) / 1000, 2),
        "p99_us": round(percentile(ordered, 0.99) / 1000, 2),
        "samples": len(ordered),
    }


async def time_block(
    call: Callable[[], Awaitable[Any]],
    iterations: int,
    after: Callable[[Any], Awaitable[Any]] | None = None,
) -> list[int]:
    """Time ``iterations`` awaits of ``call()`` one by one (``after`` untimed), gc off."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for _ in range(iterations):
            start = clock()
            result = await call()
            samples.append(clock() - start)
            if after is not None:
                await after(result)
    finally:
        gc.enable()
    return samples


async def paired(
    calls: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[Any]] | None]],
    *,
    blocks: int,
    iterations: int,
    warmup: int,
) -> dict[str, Any]:
    """Time each side's call in alternating blocks; medians, ratio and difference."""
    samples: dict[str, list[int]] = {side: [] for side in calls}
    for call, after in calls.values():
        await time_block(call, warmup, after)
    for block in range(blocks):
        order = list(calls) if block % 2 == 0 else list(reversed(calls))
        for side in order:
            call, after = calls[side]
            samples[side] += await time_block(call, iterations, after)
    out: dict[str, Any] = {side: summarize(s) for side, s in samples.items()}
    if "memory" in out and "redis" in out:
        memory, redis = out["memory"]["median_us"], out["redis"]["median_us"]
        out["ratio"] = round(redis / memory, 2) if memory else None
        out["added_us"] = round(redis - memory, 2)
    return out


# --------------------------------------------------------------------------- route + ops


async def prepare(state: RoutingState, models: Sequence[SyntheticModel]) -> None:
    """The observations ``routing_overhead.py`` records: 5 latencies and 5 scores per model."""
    for model in models:
        for latency in model.latencies_ms:
            await state.observe(model.spec.id, latency_ms=latency, error=None)
        for score in model.math_scores:
            await state.add_quality("math", model.spec.id, score)


def policy_for(name: str, models: Sequence[SyntheticModel]) -> Policy:
    """The timed policy (``round_robin`` weighted like ``routing_overhead.py``)."""
    if name == "round_robin":
        return Policy(strategy=name, params={"weights": {m.spec.id: m.weight for m in models}})
    return Policy(strategy=name)


async def bench_route(
    states: dict[str, RoutingState], models: Sequence[SyntheticModel], args: argparse.Namespace
) -> dict[str, Any]:
    """``Router.route()`` per strategy on each state."""
    catalog = agentmesh_catalog(models)
    out: dict[str, Any] = {}
    for name in STRATEGIES:
        policy = policy_for(name, models)
        budgeted = name == "budget"
        request = RouteRequest(prompt=PROMPT, node="bench", run_id="bench" if budgeted else None)
        calls: dict[str, Any] = {}
        for side, state in states.items():
            router = Router(catalog, state=state, budgets=BUDGETS if budgeted else None)

            def call(
                router: Router = router, request: RouteRequest = request, policy: Policy = policy
            ) -> Awaitable[Any]:
                return router.route(request, policy)

            calls[side] = (call, router.release if budgeted else None)
        out[name] = await paired(
            calls, blocks=args.blocks, iterations=args.iterations, warmup=args.warmup
        )
    return out


def operations(state: RoutingState, ids: Sequence[str]) -> dict[str, Callable[[], Awaitable[Any]]]:
    """One call of each state method, as the router and the breaker make them."""
    limits = [("run:bench-ops", 1e6), ("global", 1e9)]
    keys = [key for key, _ in limits]
    breakers = [BreakerState(), BreakerState("open", until=1e12, reason="bench")]
    flips = [0]

    def swap() -> Awaitable[bool]:
        flips[0] += 1
        old, new = breakers[flips[0] % 2 - 1], breakers[flips[0] % 2]
        return state.swap_breaker("m0", old, new)

    return {
        "snapshot": lambda: state.snapshot(
            ids, task="math", budget_keys=keys, counter="rr:bench-ops"
        ),
        "observe": lambda: state.observe(ids[0], latency_ms=321.5, error=None),
        "add_quality": lambda: state.add_quality("math", ids[0], 0.5),
        "reserve": lambda: state.reserve(limits, 1e-6),
        "settle": lambda: state.settle(keys, 1e-6, 5e-7),
        "swap_breaker": swap,
    }


async def bench_operations(
    states: dict[str, RoutingState], ids: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Each state method on each state, plus Redis's bare round trip."""
    ops = {side: operations(state, ids) for side, state in states.items()}
    out: dict[str, Any] = {}
    for op in ops["memory"]:
        out[op] = await paired(
            {side: (table[op], None) for side, table in ops.items()},
            blocks=args.blocks,
            iterations=args.iterations,
            warmup=args.warmup,
        )
    redis = states["redis"]
    assert isinstance(redis, RedisRoutingState)
    ping = await paired(
        {"redis": (redis.ping, None)},
        blocks=args.blocks,
        iterations=args.iterations,
        warmup=args.warmup,
    )
    out["redis_ping_us"] = ping["redis"]["median_us"]
    return out


# --------------------------------------------------------------------------- throughput


def _worker(conn: Connection, config: dict[str, Any]) -> None:
    asyncio.run(_serve(conn, config))


async def _serve(conn: Connection, config: dict[str, Any]) -> None:
    """A worker process: two runners (own memory state, shared Redis state), batches on demand."""
    catalog = load_catalog(config["catalog"])
    loaded = load_graph(config["graph"])
    prompts = ROOT / "prompts"
    budgets = BudgetLimits(global_usd=1e9)
    shared = RedisRoutingState.from_url(config["redis"], prefix=config["prefix"])
    try:
        async with (
            Runtime.open(catalog, prompts=prompts, state=shared, budgets=budgets) as on_redis,
            Runtime.open(
                catalog, prompts=prompts, state=InMemoryRoutingState(), budgets=budgets
            ) as on_memory,
        ):
            runners = {
                "memory": GraphRunner(loaded.spec, on_memory),
                "redis": GraphRunner(loaded.spec, on_redis),
            }
            conn.send("ready")
            while (job := await asyncio.to_thread(conn.recv)) is not None:
                runner = runners[job["state"]]
                results = await asyncio.gather(
                    *(
                        runner.run("question", run_id=f"{job['tag']}-{i}")
                        for i in range(job["runs"])
                    )
                )
                conn.send(sum(r.status == "ok" for r in results))
    finally:
        await shared.aclose()


class Pool:
    """Worker processes, each running batches of concurrent runs when told."""

    def __init__(self, size: int, config: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs = []
        for _ in range(size):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(theirs, config), daemon=True)
            proc.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(proc)
        for conn in self.conns:
            if conn.recv() != "ready":
                raise RuntimeError("a worker failed to start")

    def batch(self, processes: int, state: str, runs: int) -> float:
        """Runs/s of one batch of ``runs`` per process on the first ``processes`` workers."""
        tag = uuid.uuid4().hex[:8]
        start = time.perf_counter()
        for i, conn in enumerate(self.conns[:processes]):
            conn.send({"state": state, "runs": runs, "tag": f"{tag}-{i}"})
        ok = sum(conn.recv() for conn in self.conns[:processes])
        elapsed = time.perf_counter() - start
        if ok != processes * runs:
            raise RuntimeError(f"{processes * runs - ok} runs failed ({state})")
        return processes * runs / elapsed

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(30)


def bench_throughput(args: argparse.Namespace, prefix: str, tmp: Path) -> dict[str, Any]:
    """Runs/s at 1, 2, 4, 8 processes, own in-memory state vs one shared Redis state."""
    (tmp / "models.yaml").write_text(THROUGHPUT_CATALOG % args.latency_ms)
    (tmp / "graph.yaml").write_text(THROUGHPUT_GRAPH)
    config = {
        "catalog": str(tmp / "models.yaml"),
        "graph": str(tmp / "graph.yaml"),
        "redis": args.redis,
        "prefix": prefix,
    }
    pool = Pool(max(PROCESS_COUNTS), config)
    try:
        for state in ("memory", "redis"):  # warm-up: every worker, both runners
            pool.batch(max(PROCESS_COUNTS), state, 5)
        figures: dict[int, dict[str, list[float]]] = {
            n: {"memory": [], "redis": []} for n in PROCESS_COUNTS
        }
        for round_ in range(args.rounds):
            states = ("memory", "redis") if round_ % 2 == 0 else ("redis", "memory")
            for n in PROCESS_COUNTS:
                for state in states:
                    figures[n][state].append(pool.batch(n, state, args.runs))
    finally:
        pool.close()
    medians = {
        n: {state: statistics.median(values) for state, values in by_state.items()}
        for n, by_state in figures.items()
    }
    one = medians[PROCESS_COUNTS[0]]
    return {
        "runs_per_process": args.runs,
        "model_latency_ms": args.latency_ms,
        "graph": "2 executors in a chain (2 routed, reserved and settled calls per run)",
        "processes": {
            str(n): {
                "memory_runs_per_s": round(medians[n]["memory"], 1),
                "redis_runs_per_s": round(medians[n]["redis"], 1),
                "redis_vs_memory": round(medians[n]["redis"] / medians[n]["memory"], 2),
                "rounds": {s: [round(v, 1) for v in values] for s, values in figures[n].items()},
            }
            for n in PROCESS_COUNTS
        },
        "scaling": {
            state: {str(n): round(medians[n][state] / one[state], 2) for n in PROCESS_COUNTS}
            for state in ("memory", "redis")
        },
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds (smoke)")
    parser.add_argument(
        "--redis",
        default=os.environ.get("AGENTMESH_BENCH_REDIS", "redis://127.0.0.1:6379/0"),
        help="Redis server (default: $AGENTMESH_BENCH_REDIS or redis://127.0.0.1:6379/0)",
    )
    parser.add_argument("--runs", type=int, default=50, help="concurrent runs per process")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="scripted model latency")
    args = parser.parse_args(argv)
    args.blocks, args.iterations, args.warmup, args.rounds = (
        (2, 150, 30, 1) if args.quick else (6, 400, 100, 5)
    )
    return args


async def run(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The single-process measurements (route and operations)."""
    models = synthetic_models(CANDIDATES)
    redis = RedisRoutingState.from_url(args.redis, prefix=prefix)
    try:
        await redis.ping()
        info = await redis.client.info("server")
        states: dict[str, RoutingState] = {"memory": InMemoryRoutingState(), "redis": redis}
        for state in states.values():
            await prepare(state, models)
        route = await bench_route(states, models, args)
        ops = await bench_operations(states, [m.spec.id for m in models], args)
        return {"route": route, "operations": ops, "redis_version": info.get("redis_version")}
    finally:
        await redis.clear()
        await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one JSON object on stdout."""
    args = parse_args(argv)
    prefix = f"agentmesh-bench:{uuid.uuid4().hex[:8]}:"
    started = time.perf_counter()
    try:
        single = asyncio.run(run(args, prefix))
    except OSError as exc:
        print(f"state_overhead: cannot use Redis at {args.redis}: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="agentmesh-bench-") as tmp:
        try:
            throughput = bench_throughput(args, prefix, Path(tmp))
        finally:
            asyncio.run(_clear(args.redis, prefix))
    report = {
        "benchmark": "state_overhead",
        "mode": "quick" if args.quick else "full",
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "agentmesh": version("agentmesh"),
            "redis_py": version("redis"),
            "redis_server": single["redis_version"],
            "redis_url": args.redis,
        },
        "method": {
            "timer": "time.perf_counter_ns() around each awaited call, one call per sample",
            "blocks": f"{args.blocks} alternating blocks of {args.iterations} calls per side, "
            f"after {args.warmup} warm-up calls; gc off during blocks",
            "catalog": f"{CANDIDATES} synthetic scripted models (seed {SEED}), every one "
            "eligible; 5 latencies and 5 math scores each in both states",
            "throughput": f"{args.rounds} round(s); median runs/s over rounds",
        },
        "route": single["route"],
        "operations": single["operations"],
        "throughput": throughput,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


async def _clear(url: str, prefix: str) -> None:
    state = RedisRoutingState.from_url(url, prefix=prefix)
    try:
        await state.clear()
    finally:
        await state.aclose()


if __name__ == "__main__":
    sys.exit(main())
