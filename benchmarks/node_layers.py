"""Where a workflow node's work goes, by layer: Python calls and profiled time per node (JSON).

Why
    ``node_instructions.py`` counts a node's CPU instructions exactly but cannot
    say which Python code ran them (callgrind sees the interpreter, not Python
    functions). This benchmark runs the same ``chain10`` workflow (10 executors
    in a line, a scripted zero-latency model, a ``GraphRunner`` with tracing
    off) under ``cProfile`` and sums, per node execution, the function calls and
    the profiled own-time of every function by the layer its file belongs to:
    each ``agentmesh`` layer (``graph``, ``resilience``, ``routing``, ``prompts``,
    ``models``, ``synthesis``, ``tracing``...), ``langgraph``, ``langchain_core``,
    ``pydantic``, ``jinja2``, ``opentelemetry``, the standard library and builtins.

    Call counts are deterministic (the same code makes the same calls);
    profiled times are inflated for small functions by the profiler itself, so
    read them as shares, not as costs. To see what a change costs, run it on
    both trees and compare: ``--src`` names the ``src`` folder to import
    agentmesh from (default: this checkout's), so an older checkout's code can be
    measured by this same script; it uses only the public ``Workflow`` /
    ``Runtime`` / ``GraphRunner`` API.

Run::

    .venv/bin/python benchmarks/node_layers.py                    # this checkout
    .venv/bin/python benchmarks/node_layers.py --src ../old/src   # another tree
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

NODES = 10
WARMUP = 5
QUESTION = "What is 2 + 3?"
REPO = Path(__file__).resolve().parents[1]

_THIRD_PARTY = ("langgraph", "langchain_core", "pydantic", "jinja2", "opentelemetry", "httpx")


def layer_of(filename: str) -> str:
    """The layer a profiled function's file belongs to."""
    if filename.startswith(("~", "<")):
        return "builtins"
    parts = Path(filename).parts
    if "agentmesh" in parts:
        rest = parts[parts.index("agentmesh") + 1 :]
        if len(rest) > 1:
            return f"agentmesh.{rest[0]}"
        return "agentmesh"
    for name in _THIRD_PARTY:
        if name in parts or any(p.startswith(name) for p in parts[-3:-1]):
            return name
    return "stdlib+other"


async def _chain(runs: int) -> tuple[pstats.Stats, int]:
    from agentmesh.graph import GraphRunner, Runtime, Workflow
    from agentmesh.routing import Policy
    from agentmesh.testing import scripted_catalog, scripted_model

    wf = Workflow("chain10", policy=Policy(strategy="cheapest"))
    for i in range(NODES):
        step = f"step {i}" if i == 0 else f"$n{i - 1}"
        wf.executor(f"n{i}", prompt="execute_step", inputs={"question": "$input", "step": step})
        if i:
            wf.edge(f"n{i - 1}", f"n{i}")
    catalog = scripted_catalog(scripted_model("m", reply="ok", latency_ms=0))
    async with Runtime.open(catalog, prompts=REPO / "prompts") as runtime:
        runner = GraphRunner(wf.spec(), runtime)
        for _ in range(WARMUP):
            await runner.run(QUESTION)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(runs):
            result = await runner.run(QUESTION)
        profile.disable()
        if result.status != "ok":
            raise SystemExit(f"run failed: {result.error}")
    return pstats.Stats(profile), runs * NODES


def report(stats: pstats.Stats, nodes: int) -> dict[str, Any]:
    """Calls and own-time per node execution, by layer, largest first."""
    calls: dict[str, int] = defaultdict(int)
    own: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, primitive_calls, tottime, _, _) in raw.items():
        layer = layer_of(filename)
        calls[layer] += primitive_calls
        own[layer] += tottime
    total_calls = sum(calls.values())
    total_own = sum(own.values())
    layers = sorted(calls, key=lambda k: -own[k])
    return {
        "benchmark": "node_layers",
        "shape": "chain10",
        "node_executions": nodes,
        "per_node": {
            "calls": round(total_calls / nodes, 1),
            "profiled_us": round(1e6 * total_own / nodes, 1),
        },
        "by_layer": {
            k: {
                "calls_per_node": round(calls[k] / nodes, 1),
                "profiled_us_per_node": round(1e6 * own[k] / nodes, 1),
                "time_share_pct": round(100 * own[k] / total_own, 1),
            }
            for k in layers
        },
        "simulated": "the model is agentmesh's scripted provider (zero latency)",
        "note": "cProfile inflates small functions: times are shares, call counts are exact",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="profiled runs (default 30)")
    parser.add_argument("--src", type=Path, default=REPO / "src", help="agentmesh's src folder")
    args = parser.parse_args()
    sys.path.insert(0, str(args.src.resolve()))
    import agentmesh

    stats, nodes = asyncio.run(_chain(args.runs))
    out = report(stats, nodes)
    out["agentmesh_from"] = str(Path(agentmesh.__file__).resolve().parent)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
