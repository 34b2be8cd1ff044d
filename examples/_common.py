"""Shared by the examples: command-line options, running a graph, printing its steps.

Not an example itself. Every example runs on ``models/sim.yaml`` (simulated,
and labelled so), ``models/local.yaml`` (the embedded Gemma model, in-process)
or ``models/cloud.yaml`` (when API keys are set), chosen with ``--models``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentmesh import tracing
from agentmesh.graph import GraphSpec, RunResult, Runtime, run_graph
from agentmesh.models import load_catalog

ROOT = Path(__file__).resolve().parent.parent
"""The repository: graphs/, prompts/ and models/ are found from here."""


def options(description: str, default_input: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """``--models``, ``--input`` and ``--trace``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--models",
        default=str(ROOT / "models/sim.yaml"),
        help="catalog: models/sim.yaml (simulated, default), models/local.yaml, models/cloud.yaml",
    )
    parser.add_argument("--input", default=default_input, help="the run's input")
    parser.add_argument("--trace", metavar="FILE", help="append the run's spans to FILE (JSONL)")
    return parser.parse_args(argv)


async def run(spec: GraphSpec, args: argparse.Namespace, **runtime: Any) -> RunResult:
    """Run ``spec`` on ``args.input`` with the catalog of ``args.models``."""
    catalog = load_catalog(args.models)
    async with Runtime.open(catalog, prompts=ROOT / "prompts", **runtime) as opened:
        return await run_graph(spec, opened, args.input)


def traced(args: argparse.Namespace) -> Any:
    """A tracing context: the JSONL file of ``--trace``, or nothing."""
    if args.trace:
        return tracing.configure(jsonl=args.trace)
    return contextlib.nullcontext()


def report(result: RunResult) -> None:
    """Each step (node, model, escalation, cost, why), then the totals."""
    print(f"  {'STEP':<14} {'KIND':<8} {'STATUS':<17} {'MODEL':<11} {'LEVEL':<5} {'COST':>10}  WHY")
    for step in result.steps:
        branch = f"[{step['branch']}]" if step.get("branch") else ""
        route = step.get("route") or {}
        print(
            f"  {step['node'] + branch:<14} {step['kind']:<8} {step['status']:<17} "
            f"{step['model'] or '-':<11} {step['escalation_level']:<5} "
            f"${step['cost_usd']:>9.6f}  {route.get('reason', '')}"
        )
    label = " (SIMULATED: scripted models)" if result.simulated else ""
    print(
        f"run {result.run_id}: {result.status}, ${result.cost_usd:.6f}, "
        f"tokens {result.tokens['input']}/{result.tokens['output']}{label}"
    )
    if result.error:
        print(f"error at {result.error['node']}: {result.error['type']}: {result.error['message']}")
