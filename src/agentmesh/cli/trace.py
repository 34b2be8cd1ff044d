"""``agentmesh trace show|summary|export``: read a JSONL trace file (``--trace FILE``).

- ``show FILE [--run ID] [--json]``: each run as a tree, workflow -> node -> routing
  decision -> attempts (model, outcome, tokens, cost, latency).
- ``summary FILE [--run ID] [--json]``: routing distribution per node and
  model, fallback and escalation rates, cost and tokens per node and model,
  p50/p95 latency per model.
- ``export FILE --otlp-endpoint URL``: load the spans into any OTLP backend.
- ``report FILE [FILE...] -o report.html`` (or ``--compare A B``): one
  self-contained HTML page: per run a waterfall of nodes and attempts with each
  node's model, reason and passed-over candidates; across runs the routing
  distribution, rates, cost, latency, judge pass rates and budget burn-down.

Exit codes: 0 success, 1 the export failed, 2 unreadable file, bad line or unknown run.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agentmesh.cli._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, emit_json

if TYPE_CHECKING:
    from agentmesh.tracing import SpanRecord

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``trace`` and its commands."""
    parser = sub.add_parser("trace", help="show and summarize JSONL trace files")
    commands = parser.add_subparsers(dest="trace_command", metavar="COMMAND", required=True)

    show = commands.add_parser("show", help="each run as a tree of decisions and attempts")
    show.add_argument("file", metavar="FILE", help="JSONL trace file (--trace FILE)")
    show.add_argument("--run", metavar="ID", help="only this run id (or trace id prefix)")
    show.add_argument("--json", action="store_true", help="print the trees as JSON")
    show.set_defaults(handler=_show)

    summary = commands.add_parser("summary", help="routing, failures, cost and latency figures")
    summary.add_argument("file", metavar="FILE", help="JSONL trace file (--trace FILE)")
    summary.add_argument("--run", metavar="ID", help="only this run id (or trace id prefix)")
    summary.add_argument("--json", action="store_true", help="print the figures as JSON")
    summary.set_defaults(handler=_summary)

    export = commands.add_parser("export", help="send the spans to an OTLP/HTTP collector")
    export.add_argument("file", metavar="FILE", help="JSONL trace file (--trace FILE)")
    export.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        required=True,
        help="collector base URL (http://localhost:4318) or its /v1/traces URL",
    )
    export.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="HTTP header for the collector (repeatable)",
    )
    export.set_defaults(handler=_export)

    report = commands.add_parser("report", help="an HTML report of runs (works offline)")
    report.add_argument("files", nargs="*", metavar="FILE", help="JSONL trace files, pooled")
    report.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="two trace files side by side (say two catalogs or policies)",
    )
    report.add_argument("-o", "--output", metavar="HTML", required=True, help="the page to write")
    report.set_defaults(handler=_report)


def _load(args: argparse.Namespace) -> list[SpanRecord] | None:
    from agentmesh.tracing import TraceFileError, load_spans, select_run

    try:
        records = load_spans(args.file)
    except TraceFileError as exc:
        _unreadable(args, "trace_file_error", str(exc))
        return None
    run = getattr(args, "run", None)
    if run:
        records = select_run(records, run)
        if not records:
            _unreadable(args, "unknown_run", f"{args.file}: no run or trace {run!r}")
            return None
    return records


def _unreadable(args: argparse.Namespace, kind: str, message: str) -> None:
    print(f"agentmesh: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        emit_json({"file": args.file, "error": {"type": kind, "message": message}})


def _show(args: argparse.Namespace) -> int:
    from agentmesh.tracing import render_traces, traces

    records = _load(args)
    if records is None:
        return EXIT_CONFIG
    if args.json:
        emit_json({"file": args.file, "traces": [t.to_dict() for t in traces(records)]})
    elif records:
        print(render_traces(traces(records)))
    return EXIT_OK


def _summary(args: argparse.Namespace) -> int:
    from agentmesh.tracing import render_summary, summarize

    records = _load(args)
    if records is None:
        return EXIT_CONFIG
    figures = summarize(records)
    if args.json:
        emit_json(figures)
    else:
        print(render_summary(figures))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from agentmesh.tracing import ExportFailed, otlp_span_exporter, replay_to_otlp

    headers = {}
    for item in args.header:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"agentmesh: --header {item!r}: expected NAME=VALUE", file=sys.stderr)
            return EXIT_CONFIG
        headers[name.strip()] = value.strip()
    records = _load(args)
    if records is None:
        return EXIT_CONFIG
    try:
        exporter = otlp_span_exporter(args.otlp_endpoint, headers=headers)
    except ImportError as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        sent = replay_to_otlp(records, exporter)
    except ExportFailed as exc:
        print(f"agentmesh: {exc} ({args.otlp_endpoint})", file=sys.stderr)
        return EXIT_FAILED
    finally:
        exporter.shutdown()
    print(f"exported {sent} spans from {args.file} to {args.otlp_endpoint}", file=sys.stderr)
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agentmesh.tracing import TraceFileError, load_spans
    from agentmesh.tracing.report import build_report

    compare = args.compare is not None
    if compare and args.files:
        print("agentmesh: trace report: give FILE... or --compare A B, not both", file=sys.stderr)
        return EXIT_CONFIG
    files = list(args.compare or args.files)
    if not files:
        print("agentmesh: trace report: no trace file (FILE... or --compare A B)", file=sys.stderr)
        return EXIT_CONFIG
    try:
        sources = [(Path(f).name, load_spans(f)) for f in files]
    except TraceFileError as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    page = build_report(sources, compare=compare)
    try:
        Path(args.output).write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"agentmesh: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    runs = page.count('<details class="run"')
    print(f"wrote {args.output}: {runs} runs from {', '.join(files)}", file=sys.stderr)
    return EXIT_OK
