"""Runs per second at 1 / 10 / 100 / 1000 concurrent runs in one process, and memory per run.

What is measured
    One workflow, a chain of ``--nodes`` executors (3 by default) over one scripted
    model answering at once (zero latency, simulated), run three ways in one process:

    ``agentmesh``: a ``GraphRunner`` (checked and compiled once) on a runtime with a
    per-run budget (``BudgetLimits(run_usd=1)``, so every call reserves and settles
    under ``run:{id}``); its default in-memory checkpointer; each run ends ``ok``,
    is dropped from the checkpointer and releases its budget.
    ``raw``: the same chain as a plain LangGraph ``StateGraph`` whose nodes call the
    same model through ``agentmesh.models.Gateway.invoke`` (no checkpointer): what
    LangGraph itself costs, the baseline of the target.
    ``raw_saver``: that graph compiled with LangGraph's ``InMemorySaver``, each run
    deleting its thread when done (``adelete_thread``), as a service would: shown
    for information (its delete scans every stored write of every thread).

    A measurement at concurrency C starts ``max(C, --min-runs)`` runs in waves of C
    concurrent runs (``asyncio.gather``) and divides the runs by the wall time.
    The arms alternate in a rotated order every round; each figure is the median
    over ``--rounds`` rounds. The garbage collector stays on, as users run.

    ``gc``: while the rounds are timed, ``gc.callbacks`` time every collection: per
    arm and level the collector's share of the wall time, its microseconds per run
    and its collections per 1,000 runs by generation (medians over rounds).
    ``profile``: after the rounds, ``max(C, --profile-runs)`` untimed runs of
    ``agentmesh`` and ``raw`` at every level under ``cProfile`` (collector off), by
    layer (``_layer_profile.py``), scaled to the measured time per run less the
    collector's: ``summary`` (why a run costs more at 1000 than at 100, per arm;
    agentmesh's extra microseconds over raw per level), ``per_run_us`` /
    ``per_node_us`` by group, ``growth_1000_vs_100_us_per_run``,
    ``agentmesh_over_raw_us_per_run``, calls per run (``event_loop`` calls count
    the loop's scheduling work) and each group's top functions.

    ``memory``: after warm-up, ``--memory-runs`` sequential agentmesh runs, three
    blocks in a row; after each block ``gc.collect()`` and the resident set size
    (``/proc/self/statm``) and the count of objects the collector tracks. Growth is
    reported per 1,000 runs for the last two blocks (the first block warms caches).

How to read the output (one JSON object on stdout)
    ``runs_per_s[arm][C]``: median runs/s, and every round's figure.
    ``ratio_to_raw[C]``: agentmesh / raw runs/s; ``targets``: agentmesh at 1000 >= at
    100, agentmesh >= 0.8x raw at every level, RSS growth <= 0.05 MB per 1,000
    sequential runs. ``left_behind``: checkpoint threads and run budgets the state
    still holds after every agentmesh run ended (0 and 0 expected).

Run::

    .venv/bin/python benchmarks/run_concurrency.py            # ~2 min on 2 cores
    .venv/bin/python benchmarks/run_concurrency.py --quick    # smoke run, ~20 s
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph

import _layer_profile as profiling
import _peer_stack as peer
from node_overhead import RawState, raw_chain

MODEL = "m"
QUESTION = "Should our 12-person company move its file storage to the cloud?"
PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
LEVELS = (1, 10, 100, 1000)
TARGET_RATIO = 0.8
TARGET_RSS_MB = 0.05
ARMS = ("agentmesh", "raw", "raw_saver")
PROFILED = ("agentmesh", "raw")

Run = Callable[[], Awaitable[None]]


def catalog() -> Any:
    """One scripted model answering ``ok`` at once."""
    from agentmesh.testing import scripted_catalog, scripted_model

    return scripted_catalog(scripted_model(MODEL, reply="ok", latency_ms=0))


def agentmesh_spec(nodes: int) -> Any:
    """A chain of ``nodes`` executors, each given the previous answer as its step."""
    from agentmesh.graph import Workflow
    from agentmesh.routing import Policy

    wf = Workflow(f"chain{nodes}", policy=Policy(strategy="cheapest"))
    for i in range(1, nodes + 1):
        step = "Estimate the yearly cost of the current server." if i == 1 else f"$n{i - 1}"
        wf.executor(f"n{i}", prompt="execute_step", inputs={"question": QUESTION, "step": step})
        if i > 1:
            wf.edge(f"n{i - 1}", f"n{i}")
    return wf.spec()


def raw_graph(nodes: int, ask: peer.Ask) -> Any:
    """The chain as a plain LangGraph ``StateGraph`` (``node_overhead``'s raw chain)."""
    return raw_chain(StateGraph(RawState), nodes, ask)


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


async def throughput(run: Run, level: int, total: int) -> float:
    """Runs/s of ``total`` runs started in waves of ``level`` concurrent ones."""
    started = time.perf_counter()
    done = 0
    while done < total:
        wave = min(level, total - done)
        await asyncio.gather(*(run() for _ in range(wave)))
        done += wave
    return done / (time.perf_counter() - started)


async def timed(
    run: Run, level: int, total: int, collector: profiling.GcClock
) -> tuple[float, dict[str, Any]]:
    """``throughput``, and what the garbage collector did meanwhile."""
    ns, collections = collector.total_ns, list(collector.collections)
    started = time.perf_counter_ns()
    rate = await throughput(run, level, total)
    wall = time.perf_counter_ns() - started
    counts = [
        after - before for after, before in zip(collector.collections, collections, strict=True)
    ]
    gc_ns = collector.total_ns - ns
    return rate, {"gc_share": gc_ns / wall, "gc_us_per_run": gc_ns / 1000 / total, "counts": counts}


async def layer_profiles(runs: dict[str, Run], args: argparse.Namespace) -> dict[str, Any]:
    """``{arm: {level: profile per run}}``: untimed waves under ``cProfile``, the collector off."""
    overhead = profiling.call_overhead_s()
    out: dict[str, Any] = {"profiler_call_ns": round(1e9 * overhead, 1)}
    for arm in PROFILED:
        out[arm] = {}
        for level in LEVELS:
            total = max(level, args.profile_runs)

            async def waves(arm: str = arm, level: int = level, total: int = total) -> None:
                await throughput(runs[arm], level, total)

            profile = await profiling.profiled(waves, 1)
            out[arm][level] = profiling.attribute(profile, total, overhead)
    return out


async def memory_growth(run: Run, runs: int) -> dict[str, Any]:
    """RSS and tracked objects after each of three blocks of ``runs`` sequential runs."""
    marks: list[tuple[float, int]] = []
    for _ in range(3):
        for _ in range(runs):
            await run()
        gc.collect()
        marks.append((rss_mb(), len(gc.get_objects())))
    per_k = 1000 / runs
    rss = [round((marks[i + 1][0] - marks[i][0]) * per_k, 3) for i in (0, 1)]
    objects = [round((marks[i + 1][1] - marks[i][1]) * per_k) for i in (0, 1)]
    return {
        "runs_per_block": runs,
        "rss_mb": [round(m[0], 2) for m in marks],
        "rss_growth_mb_per_1000_runs": rss,
        "tracked_objects_growth_per_1000_runs": objects,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every arm at every level for ``args.rounds`` rounds, then the memory blocks."""
    from agentmesh.graph import GraphRunner, Runtime
    from agentmesh.models import Gateway
    from agentmesh.routing import BudgetLimits, InMemoryRoutingState

    spec = agentmesh_spec(args.nodes)
    state = InMemoryRoutingState()
    budgets = BudgetLimits(run_usd=1.0)
    async with (
        Runtime.open(catalog(), prompts=PROMPTS, state=state, budgets=budgets) as runtime,
        Gateway(catalog()) as gateway,
    ):
        runner = GraphRunner(spec, runtime)
        ask = peer.gateway_ask(gateway, MODEL)
        plain = raw_graph(args.nodes, ask).compile()
        saver = InMemorySaver()
        saved = raw_graph(args.nodes, ask).compile(checkpointer=saver)

        async def agentmesh_run() -> None:
            result = await runner.run(QUESTION)
            if result.status != "ok":
                raise RuntimeError(f"agentmesh run failed: {result.error}")

        async def raw_run() -> None:
            await plain.ainvoke({"input": QUESTION, "results": {}})

        async def raw_saver_run() -> None:
            thread = uuid.uuid4().hex[:12]
            config: Any = {"configurable": {"thread_id": thread}}
            await saved.ainvoke({"input": QUESTION, "results": {}}, config)
            await saver.adelete_thread(thread)

        runs: dict[str, Run] = {
            "agentmesh": agentmesh_run,
            "raw": raw_run,
            "raw_saver": raw_saver_run,
        }
        for run in runs.values():  # warm-up: imports, template compilation, first-call caches
            await throughput(run, 10, 50)
        rounds: dict[str, dict[int, list[float]]] = {a: {n: [] for n in LEVELS} for a in ARMS}
        collected: dict[str, dict[int, list[dict[str, Any]]]] = {
            a: {n: [] for n in LEVELS} for a in ARMS
        }
        with profiling.GcClock() as collector:
            for r in range(args.rounds):
                order = ARMS[r % len(ARMS) :] + ARMS[: r % len(ARMS)]
                for level in LEVELS:
                    for arm in order:
                        total = max(level, args.min_runs)
                        rate, gc_facts = await timed(runs[arm], level, total, collector)
                        rounds[arm][level].append(rate)
                        collected[arm][level].append(gc_facts)
        profiles = await layer_profiles(runs, args)
        memory = await memory_growth(agentmesh_run, args.memory_runs)
        left = {
            "checkpoint_threads": len(runner.checkpointer.storage),  # type: ignore[attr-defined]
            "run_budgets": sum(k.startswith("run:") for k in state._spent),
            "run_holds": sum(k.startswith("run:") for k in state._holds),
        }
    return {
        "rounds": rounds,
        "min_runs": args.min_runs,
        "gc": collected,
        "profiles": profiles,
        "memory": memory,
        "left_behind": left,
    }


def gc_report(measured: dict[str, Any]) -> dict[str, Any]:
    """Per arm and level: the collector's share of the wall time, its collections, medians."""
    out: dict[str, Any] = {}
    for arm, levels in measured["gc"].items():
        out[arm] = {}
        for level, facts in levels.items():
            total = max(level, measured["min_runs"])
            counts = [statistics.median(f["counts"][g] for f in facts) for g in range(3)]
            out[arm][str(level)] = {
                "gc_share_pct": round(100 * statistics.median(f["gc_share"] for f in facts), 1),
                "gc_us_per_run": round(statistics.median(f["gc_us_per_run"] for f in facts), 1),
                "collections_per_1000_runs": [round(1000 * c / total, 1) for c in counts],
            }
    return out


def profile_report(
    measured: dict[str, Any], medians: dict[str, dict[int, float]], nodes: int
) -> dict[str, Any]:
    """Per run, by layer: where each arm's time goes at each level, and what changes."""
    profiles = measured["profiles"]
    gc = gc_report(measured)
    per_run: dict[str, dict[int, dict[str, Any]]] = {}
    for arm in PROFILED:
        per_run[arm] = {}
        for level in LEVELS:
            run_us = 1e6 / medians[arm][level]
            gc_us = gc[arm][str(level)]["gc_us_per_run"]
            per_run[arm][level] = profiling.breakdown(run_us, gc_us, [profiles[arm][level]])
    growth = {
        arm: profiling.difference(per_run[arm][1000]["us"], per_run[arm][100]["us"])
        for arm in PROFILED
    }
    extra = {
        level: profiling.difference(per_run["agentmesh"][level]["us"], per_run["raw"][level]["us"])
        for level in LEVELS
    }
    summary = [
        profiling.line(
            f"{arm} per run, 1000 vs 100 concurrent ({per_run[arm][1000]['measured_us']:.0f} vs "
            f"{per_run[arm][100]['measured_us']:.0f} us)",
            growth[arm],
        )
        for arm in PROFILED
    ] + [
        profiling.line(
            f"agentmesh over raw per run at {level} "
            f"({per_run['agentmesh'][level]['measured_us']:.0f} vs "
            f"{per_run['raw'][level]['measured_us']:.0f} us)",
            extra[level],
        )
        for level in LEVELS
    ]
    return {
        "method": profiling.__doc__,
        "groups": profiling.GROUPS | {"gc": "the garbage collector (gc.callbacks, timed runs)"},
        "profiler_call_ns": profiles["profiler_call_ns"],
        "summary": summary,
        "per_run_us": {arm: {str(n): per_run[arm][n]["us"] for n in LEVELS} for arm in PROFILED},
        "per_node_us": {
            arm: {
                str(n): {g: round(v / nodes, 1) for g, v in per_run[arm][n]["us"].items()}
                for n in LEVELS
            }
            for arm in PROFILED
        },
        "growth_1000_vs_100_us_per_run": growth,
        "agentmesh_over_raw_us_per_run": {str(n): extra[n] for n in LEVELS},
        "calls_per_run": {
            arm: {str(n): per_run[arm][n]["calls"] for n in LEVELS} for arm in PROFILED
        },
        "top_functions_us_per_run": {
            arm: {str(n): per_run[arm][n]["top"] for n in (100, 1000)} for arm in PROFILED
        },
    }


def report(measured: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Medians, ratios and the targets."""
    rounds: dict[str, dict[int, list[float]]] = measured["rounds"]
    medians = {a: {n: statistics.median(rounds[a][n]) for n in LEVELS} for a in ARMS}
    ratio = {n: round(medians["agentmesh"][n] / medians["raw"][n], 3) for n in LEVELS}
    growth = measured["memory"]["rss_growth_mb_per_1000_runs"]
    targets = {
        "scales": {
            "criterion": "agentmesh runs/s at 1000 concurrent >= at 100",
            "at_100": round(medians["agentmesh"][100], 1),
            "at_1000": round(medians["agentmesh"][1000], 1),
            "meets": medians["agentmesh"][1000] >= medians["agentmesh"][100],
        },
        "vs_raw": {
            "criterion": f"agentmesh runs/s >= {TARGET_RATIO}x raw LangGraph at every level",
            "ratio": {str(n): ratio[n] for n in LEVELS},
            "meets": all(ratio[n] >= TARGET_RATIO for n in LEVELS),
        },
        "memory": {
            "criterion": f"RSS growth <= {TARGET_RSS_MB} MB per 1,000 sequential runs",
            "growth_mb_per_1000": growth,
            "meets": max(growth) <= TARGET_RSS_MB,
        },
    }
    return {
        "benchmark": "run_concurrency",
        "mode": "quick" if args.quick else "full",
        "environment": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "agentmesh": version("agentmesh"),
            "langgraph": version("langgraph"),
        },
        "workload": {
            "graph": f"chain of {args.nodes} executors, one scripted model (simulated, 0 ms)",
            "agentmesh": "GraphRunner, default in-memory checkpointer, BudgetLimits(run_usd=1)",
            "runs_per_measurement": f"max(concurrency, {args.min_runs})",
            "rounds": args.rounds,
            "gc": "on",
        },
        "runs_per_s": {
            arm: {
                str(n): {
                    "median": round(medians[arm][n], 1),
                    "rounds": [round(x, 1) for x in rounds[arm][n]],
                }
                for n in LEVELS
            }
            for arm in ARMS
        },
        "ratio_to_raw": {str(n): ratio[n] for n in LEVELS},
        "raw_saver_vs_raw": {
            str(n): round(medians["raw_saver"][n] / medians["raw"][n], 3) for n in LEVELS
        },
        "gc": gc_report(measured),
        "profile": profile_report(measured, medians, args.nodes),
        "memory": measured["memory"],
        "left_behind": measured["left_behind"],
        "targets": targets,
        "meets_all": all(t["meets"] for t in targets.values()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one round, fewer runs")
    parser.add_argument("--nodes", type=int, default=3, help="executors in the chain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-runs", type=int, default=300, help="runs per measurement, at least")
    parser.add_argument("--memory-runs", type=int, default=1000, help="runs per memory block")
    parser.add_argument(
        "--profile-runs", type=int, default=300, help="profiled runs per arm and level, at least"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.min_runs, args.memory_runs, args.profile_runs = 1, 100, 300, 100
    return args


def main() -> None:
    """Measure and print one JSON object."""
    args = parse_args()
    measured = asyncio.run(measure(args))
    json.dump(report(measured, args), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
