"""Per-node CPU instructions of a workflow, tracing off and on, against raw LangGraph (JSON out).

Why instructions
    ``node_overhead.py`` times runs; on this shared 2-core machine its ratios move by
    tens of percent from round to round. Valgrind's callgrind counts the
    instructions a process executes instead: the same count for the same work,
    whatever else the machine is doing. Instructions are not seconds (a cache
    miss costs more than an add), but for pure-Python work of the same kind
    their ratio is a steady stand-in for the time ratio, and it splits tracing's
    cost into its parts.

What is measured
    The ``chain10`` shape of ``node_overhead.py`` (10 executors in a line, the
    same scripted zero-latency model), one child process per variant and run
    count, each under ``valgrind --tool=callgrind --instr-atstart=no``: the child
    builds everything and warms up uncounted, switches counting on
    (``callgrind_control -i on``), makes ``N`` runs (with tracing, then flushes
    the exporter so the export work is counted), and switches it off. Each
    variant runs at two run counts; per node =
    ``(I(high) - I(low)) / (high - low) / 10``: start-up and warm-up cancel out.

    ``raw``: the raw LangGraph graph (``node_overhead.raw_graph``, no checkpointer).
    ``off``: a ``GraphRunner`` (in-memory checkpointer, workflow span), no tracing.
    ``spans``: the same with an SDK tracer provider and no exporter: spans are
    made, attributes validated and ended, nothing is written.
    ``on``: the same with ``configure(jsonl=FILE)``: what ``--trace FILE`` does.
    ``sdk_span``: one bare OpenTelemetry SDK span (``start_span(name).end()``, no
    attributes, no processor): the floor of any span, per span, not per node.

How to read the output
    ``per_node_instructions``: the figures above (``sdk_span`` per span).
    ``ratio_to_raw``: ``off``/``on`` per node against ``raw``.
    ``tracing``: ``added_pct`` = on vs off; ``parts_pct`` splits it into span
    making (``spans - off``) and JSONL export (``on - spans``), and
    ``sdk_floor_pct`` is what ``spans_per_node`` bare SDK spans alone would add to
    ``off``: no tracing built on the SDK that makes those spans can cost less.

Run::

    .venv/bin/python benchmarks/node_instructions.py              # ~4 min on 2 cores
    .venv/bin/python benchmarks/node_instructions.py --runs 2,4   # smoke run

Needs ``valgrind`` (Debian package); without it, prints a JSON ``skipped`` reason.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _peer_stack as peer
from node_overhead import MODEL, PROMPTS, agentmesh_runners, catalog, raw_runners

SHAPE = "chain10"
NODES = 10
VARIANTS = ("raw", "off", "spans", "on", "sdk_span", "sdk_node")
WARMUP = 5
SDK_SPANS_PER_UNIT = 100  # bare spans per "run" of the sdk_span variant
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
# The attributes of one executor node's spans, as a traced run writes them (sdk_node).
_NODE_START = {
    "agentmesh.node.name": "n2",
    "agentmesh.node.kind": "executor",
    "agentmesh.run.id": "0123456789ab",
    "agentmesh.escalation.level": 0,
    "agentmesh.node.branch": "",
}
_NODE_END = {"agentmesh.cost_usd": 0.0, "agentmesh.node.models": "m"}
_ROUTE = {
    "agentmesh.node.name": "n2",
    "agentmesh.node.role": "executor",
    "agentmesh.route.strategy": "cheapest",
    "agentmesh.run.id": "0123456789ab",
    "agentmesh.route.chosen": "m",
    "agentmesh.route.reason": "cheapest capable: m ($0.000000 worst case)",
    "agentmesh.route.candidates": ("m",),
    "agentmesh.route.candidates.scores": (-0.0,),
    "agentmesh.route.candidates.notes": ("$0.000000 worst case",),
    "agentmesh.route.fallbacks": (),
    "agentmesh.route.decision_id": "b7275c88-1",
}
_CHAT_START = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "scripted",
    "gen_ai.request.model": "m",
    "agentmesh.model_id": "m",
    "agentmesh.attempt": 1,
    "agentmesh.node.name": "n2",
    "agentmesh.route.decision_id": "b7275c88-1",
    "agentmesh.run.id": "0123456789ab",
    "agentmesh.prompt.template": "execute_step",
    "agentmesh.prompt.variant": "execute_step.j2",
    "agentmesh.prompt.hash": "2399a451e97a5b41",
}
_CHAT_END = {
    "gen_ai.request.max_tokens": 512,
    "gen_ai.response.model": "scripted:m",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 1,
    "gen_ai.response.finish_reasons": ("stop",),
    "agentmesh.cost_usd": 0.0,
    "agentmesh.simulated": True,
    "agentmesh.usage.estimated": True,
}


def _counting(on: bool) -> None:
    """Switch callgrind's counting for this process on or off."""
    flag = "on" if on else "off"
    subprocess.run(
        ["callgrind_control", "-i", flag, str(os.getpid())], check=True, capture_output=True
    )


async def _runs(variant: str, runs: int, trace_file: str) -> int:
    """The child: warm up uncounted, count ``runs`` runs; returns node executions per run."""
    from agentmesh import tracing
    from agentmesh.graph import Runtime
    from agentmesh.models import Gateway

    if variant == "raw":
        async with Gateway(catalog()) as gateway:
            runner = raw_runners(peer.gateway_ask(gateway, MODEL))[SHAPE, "plain"]
            for _ in range(WARMUP):
                await runner.call()
            _counting(True)
            for _ in range(runs):
                await runner.call()
            _counting(False)
        return NODES
    handle = None
    if variant == "spans":
        handle = tracing.configure()
    elif variant == "on":
        handle = tracing.configure(jsonl=trace_file)
    try:
        async with Runtime.open(catalog(), prompts=PROMPTS) as runtime:
            runner = agentmesh_runners(runtime)[SHAPE, "runner"]
            for _ in range(WARMUP):
                executed = await runner.call()
            if handle is not None:
                handle.force_flush()
            _counting(True)
            for _ in range(runs):
                executed = await runner.call()
            if handle is not None:
                handle.force_flush()
            _counting(False)
    finally:
        if handle is not None:
            handle.shutdown()
    return executed


def _sdk_spans(runs: int) -> None:
    """The child of ``sdk_span``: bare SDK spans, no attributes, no processor."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("floor")
    for _ in range(WARMUP * SDK_SPANS_PER_UNIT):
        tracer.start_span("chat m").end()
    _counting(True)
    for _ in range(runs * SDK_SPANS_PER_UNIT):
        tracer.start_span("chat m").end()
    _counting(False)


def _node_spans(tracer: Any) -> None:
    """One node's spans as agentmesh's trace has them, made directly with the SDK."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    node = tracer.start_span("node n2", attributes=_NODE_START)
    inside = trace.set_span_in_context(node)
    route = tracer.start_span("route n2", context=inside, attributes=_ROUTE)
    route.end()
    chat = tracer.start_span("chat m", context=inside, kind=SpanKind.CLIENT, attributes=_CHAT_START)
    chat.set_attributes(_CHAT_END)
    chat.end()
    node.set_attributes(_NODE_END)
    node.end()


def _sdk_nodes(runs: int, trace_file: str) -> None:
    """The child of ``sdk_node``: a node's three spans with their attributes, to JSONL."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from agentmesh.tracing.jsonl import JsonlSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(JsonlSpanExporter(trace_file)))
    tracer = provider.get_tracer("floor")
    for _ in range(WARMUP * NODES):
        _node_spans(tracer)
    provider.force_flush()
    _counting(True)
    for _ in range(runs * NODES):
        _node_spans(tracer)
    provider.force_flush()
    _counting(False)
    provider.shutdown()


def count(variant: str, runs: int) -> tuple[int, int]:
    """Instructions counted in one child process, and the spans it wrote (``on`` only)."""
    with tempfile.TemporaryDirectory(prefix="agentmesh-instr-") as folder:
        log = Path(folder, "valgrind.log")
        trace_file = str(Path(folder, "trace.jsonl"))
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={Path(folder, 'callgrind.out')}",
            f"--log-file={log}",
            sys.executable,
            __file__,
            "--child",
            variant,
            "--child-runs",
            str(runs),
            "--trace-file",
            trace_file,
        ]
        out = subprocess.run(command, capture_output=True, text=True, check=False)
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        found = _COLLECTED.search(text)
        if out.returncode or found is None:
            raise SystemExit(f"{variant} x{runs} failed:\n{out.stderr}\n{text[-2000:]}")
        spans = 0
        if os.path.exists(trace_file):
            with open(trace_file, "rb") as lines:
                spans = sum(1 for _ in lines)
        return int(found[1]), spans


def report(low: int, high: int) -> dict[str, Any]:
    """Count every variant at ``low`` and ``high`` runs; the JSON report."""
    per_unit: dict[str, float] = {}
    spans_written = 0
    for variant in VARIANTS:
        a, _ = count(variant, low)
        b, spans = count(variant, high)
        units = (high - low) * (SDK_SPANS_PER_UNIT if variant == "sdk_span" else NODES)
        per_unit[variant] = (b - a) / units
        if variant == "on":
            spans_written = spans
    raw, off, spans, on = (per_unit[v] for v in ("raw", "off", "spans", "on"))
    runs_with_trace = WARMUP + high
    spans_per_node = spans_written / (runs_with_trace * NODES)
    floor = per_unit["sdk_span"] * spans_per_node
    direct = per_unit["sdk_node"]
    return {
        "benchmark": "node_instructions",
        "shape": SHAPE,
        "runs": {"low": low, "high": high},
        "per_node_instructions": {k: round(v) for k, v in per_unit.items()},
        "ratio_to_raw": {"off": round(off / raw, 3), "on": round(on / raw, 3)},
        "tracing": {
            "added_pct": round(100 * (on / off - 1), 1),
            "parts_pct": {
                "spans": round(100 * (spans - off) / off, 1),
                "jsonl_export": round(100 * (on - spans) / off, 1),
            },
            "spans_per_node": round(spans_per_node, 2),
            "sdk_floor_pct": round(100 * floor / off, 1),
            "sdk_direct_pct": round(100 * direct / off, 1),
        },
        "targets": {
            "node_overhead_on_ratio_max": 1.25,
            "tracing_added_pct_max": 15,
            "note": "instructions, not time: node_overhead.py and tracing_overhead.py "
            "time the same work",
        },
        "environment": {
            "python": platform.python_version(),
            "valgrind": subprocess.run(
                ["valgrind", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
        },
        "simulated": "the model is agentmesh's scripted provider (zero latency)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="5,15", help="low,high run counts (default 5,15)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--child-runs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--trace-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "sdk_span":
        _sdk_spans(args.child_runs)
        return
    if args.child == "sdk_node":
        _sdk_nodes(args.child_runs, args.trace_file)
        return
    if args.child:
        asyncio.run(_runs(args.child, args.child_runs, args.trace_file))
        return
    missing = [t for t in ("valgrind", "callgrind_control") if shutil.which(t) is None]
    if missing:
        print(json.dumps({"benchmark": "node_instructions", "skipped": f"not found: {missing}"}))
        return
    low, high = (int(x) for x in args.runs.split(","))
    if not 0 <= low < high:
        parser.error("--runs needs low < high")
    print(json.dumps(report(low, high), indent=2))


if __name__ == "__main__":
    main()
