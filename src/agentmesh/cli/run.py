"""``agentmesh run | validate | graph | schema``: workflows from the command line.

- ``run GRAPH --models FILE --input TEXT [--json | --stream] [--trace FILE] [--budget USD]
  [--checkpoint URL] [--resume RUN_ID] [--state URL] [--cache URL] [--global-budget USD]``:
  progress on stderr, the answer on stdout (``--json``: the whole
  :class:`~agentmesh.graph.RunResult`; ``--stream``: the output node's tokens
  as they arrive).
- ``validate GRAPH [--models FILE] [--json]``: every compile-time check, no call made;
  catalog entries that will surprise (no pricing...) are warnings on stderr.
- ``graph GRAPH``: the graph as Mermaid (LangGraph's own drawing; no prompts needed).
- ``resume``: continue a run paused for a person (:mod:`agentmesh.cli.resume`).

Templates come from ``--prompts DIR``, else ``$AGENTMESH_PROMPTS``, else the
shipped ones (:func:`agentmesh.prompts.shipped_prompts`).
- ``schema``: the JSON Schema of the graph format, for editors.

Exit codes: 0 ok, 1 the run failed, 2 invalid graph, catalog or arguments,
3 the run is paused for a person (``interrupted``: its run id and what awaits,
``pending``, are printed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentmesh.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_cache_option,
    add_models_option,
    add_prompts_option,
    add_state_option,
    emit_json,
    open_catalog,
    open_prompts,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
    from rich.console import Console

    from agentmesh.cli._stream import TokenWriter
    from agentmesh.graph import LoadedGraph, RunResult, Runtime
    from agentmesh.models import Catalog
    from agentmesh.prompts import PromptLibrary
    from agentmesh.resilience import RateLimiter, ResponseCache
    from agentmesh.routing import BudgetLimits, RoutingState

__all__ = ["execute", "fail", "register", "report", "user_errors"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``run``, ``validate``, ``graph`` and ``schema``."""
    run = sub.add_parser("run", help="run a workflow graph (YAML)")
    run.add_argument("graph", metavar="GRAPH", help="graph file (graphs/*.yaml)")
    add_models_option(run)
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="TEXT", help="the run's input")
    source.add_argument("--resume", metavar="RUN_ID", help="continue a checkpointed run")
    run.add_argument("--json", action="store_true", help="print the run as JSON (steps included)")
    run.add_argument(
        "--stream",
        action="store_true",
        help="write the output node's tokens to stdout as they arrive (not with --json)",
    )
    run.add_argument("--trace", metavar="FILE", help="append the run's spans to FILE (JSONL)")
    run.add_argument(
        "--budget", metavar="USD", type=_usd, help="run budget, > 0 (default: the graph's)"
    )
    run.add_argument(
        "--checkpoint",
        metavar="URL",
        default="memory",
        help="memory (default), sqlite:PATH, or postgres://... (extra postgres)",
    )
    add_state_option(run)
    add_cache_option(run)
    run.add_argument(
        "--global-budget",
        metavar="USD",
        type=_usd,
        help="limit on everything spent through the routing state (all runs sharing it)",
    )
    run.add_argument("--run-id", metavar="ID", help="id of a new run (default: random)")
    run.add_argument(
        "--metrics-port",
        metavar="N",
        type=_port,
        help="serve Prometheus metrics on 127.0.0.1:N/metrics during the run (extra metrics)",
    )
    add_prompts_option(run)
    run.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (a failure is still reported)"
    )
    run.set_defaults(handler=_run)

    validate = sub.add_parser("validate", help="check a graph without calling any model")
    validate.add_argument("graph", metavar="GRAPH", help="graph file")
    add_models_option(validate, required=False, what="also check the catalog can serve it")
    add_prompts_option(validate)
    validate.add_argument("--json", action="store_true", help="print the verdict as JSON")
    validate.set_defaults(handler=_validate)

    graph = sub.add_parser("graph", help="print a graph as Mermaid")
    graph.add_argument("graph", metavar="GRAPH", help="graph file")
    # Drawing reads no template; --prompts is accepted (and ignored) for older scripts.
    graph.add_argument("--prompts", metavar="DIR", help=argparse.SUPPRESS)
    graph.set_defaults(handler=_mermaid)

    schema = sub.add_parser("schema", help="print the JSON Schema of the graph format")
    schema.set_defaults(handler=_schema)


def _usd(text: str) -> float:
    """A budget in USD: a number above 0 (as ``budget_usd`` in a graph file)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of USD") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be greater than 0 USD, got {text}")
    return value


def _port(text: str) -> int:
    """A TCP port: 1 to 65535."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {text!r}")
    return int(text)


def user_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """The errors of bad input or an unusable store (and ``more``): one line, exit 2."""
    from agentmesh.graph import CheckpointError, GraphError, RunError
    from agentmesh.prompts import PromptError
    from agentmesh.resilience import CacheError, LimiterError
    from agentmesh.routing import StateError

    return (
        GraphError,
        PromptError,
        CheckpointError,
        RunError,
        StateError,
        CacheError,
        LimiterError,
        *more,
    )


def fail(message: object) -> int:
    """Report ``message`` on stderr as agentmesh's one-line error; the exit code 2."""
    print(f"agentmesh: {message}", file=sys.stderr)
    return EXIT_CONFIG


_MARKS = {
    "ok": "[green]✓",
    "passed": "[green]✓",
    "approved": "[green]✓",
    "answered": "[green]✓",
    "rejected": "[yellow]↻",
}


class _Progress:
    """One line per finished step on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, step: dict[str, Any]) -> None:
        mark = _MARKS.get(step["status"], "[red]✗")
        branch = f"[{step['branch']}]" if step.get("branch") else ""
        level = f" level {step['escalation_level']}" if step.get("escalation_level") else ""
        route = step.get("route") or {}
        model = step.get("model") or "no model"
        why = f" — {route['reason']}" if route.get("reason") else ""
        turn = f" turn {step['iteration']}" if "iteration" in step else ""
        calls = [f"{c['tool']}{'' if c['ok'] else ' (failed)'}" for c in step.get("tool_calls", ())]
        tools = f" → {', '.join(calls)}" if calls else ""
        self.console.print(
            f"{mark} {step['node']}{branch}[/] {step['kind']}{turn} {step['status']}: "
            f"{model}{level} ${step['cost_usd']:.6f}{tools}{why}",
            highlight=False,
            markup=True,
            soft_wrap=True,
        )


def _runtime_for(loaded: LoadedGraph, runtime: Runtime) -> Runtime:
    tools = loaded.tools()
    import dataclasses

    return dataclasses.replace(runtime, tools={**runtime.tools, **tools}) if tools else runtime


@asynccontextmanager
async def _opened(
    loaded: LoadedGraph,
    catalog: Catalog,
    prompts: PromptLibrary,
    state: RoutingState | None = None,
    budgets: BudgetLimits | None = None,
    cache: ResponseCache | None = None,
    limiter: RateLimiter | None = None,
) -> AsyncIterator[Runtime]:
    from agentmesh.graph import Runtime

    async with Runtime.open(
        catalog, prompts=prompts, state=state, budgets=budgets, cache=cache, limiter=limiter
    ) as runtime:
        yield _runtime_for(loaded, runtime)


async def execute(
    args: argparse.Namespace,
    loaded: LoadedGraph,
    catalog: Catalog,
    prompts: PromptLibrary,
    tokens: TokenWriter | None = None,
    answer: Any = None,
) -> RunResult:
    """Open the run's stores, runtime and progress; run (or resume) the graph once."""
    from rich.console import Console

    from agentmesh.graph import open_checkpointer, run_graph
    from agentmesh.resilience import maybe_cache, maybe_limiter
    from agentmesh.routing import BudgetLimits, open_state

    progress = None if args.quiet else _Progress(Console(stderr=True))
    async with (
        open_checkpointer(args.checkpoint) as saver,
        open_state(args.state) as state,
        maybe_cache(args.cache) as cache,
        maybe_limiter(catalog.specs, args.state) as limiter,
        _opened(
            loaded,
            catalog,
            prompts,
            state,
            BudgetLimits(global_usd=args.global_budget),
            cache,
            limiter,
        ) as runtime,
    ):
        return await run_graph(
            loaded.spec,
            runtime,
            args.input,
            run_id=args.resume or args.run_id,
            budget_usd=args.budget,
            checkpointer=saver,
            resume=args.resume is not None,
            on_step=progress,
            on_token=tokens,
            locate=loaded.locate,
            answer=answer,
            origin=None if args.resume else _origin(args),
        )


def _origin(args: argparse.Namespace) -> dict[str, str | None]:
    """What ``agentmesh resume`` reloads: the graph file, the catalog and the prompts folder."""
    return {
        "graph": str(Path(args.graph).resolve()),
        "models": str(Path(args.models).resolve()),
        "prompts": str(Path(args.prompts).resolve()) if args.prompts else None,
    }


def _token_writer(args: argparse.Namespace, loaded: LoadedGraph) -> TokenWriter | None:
    """``--stream``: the writer of the output node's tokens, else ``None``."""
    if not args.stream:
        return None
    from agentmesh.cli._stream import TokenWriter

    node = loaded.spec.output_node
    kind = loaded.spec.nodes[node].kind
    if kind != "executor" and not args.quiet:
        print(
            f"# --stream: {kind} nodes do not stream; {node}'s answer comes at the end",
            file=sys.stderr,
        )
    return TokenWriter(node, sys.stdout)


def report(args: argparse.Namespace, result: RunResult, streamed: TokenWriter | None = None) -> int:
    """Print the run (answer, or JSON, or what it awaits); the exit code of its status."""
    from agentmesh.routing.stores import redacted

    if streamed is not None:
        streamed.close()
    if args.json:
        emit_json(result.to_dict())
    elif result.status == "ok" and not (streamed is not None and streamed.wrote):
        print(result.output or "")
    elif result.status == "interrupted":
        _print_pending(result)
    notes = [f"run {result.run_id}: {result.status}, ${result.cost_usd:.6f}"]
    if result.error is not None:
        error = result.error
        notes.append(f"failed at node {error['node']}: {error['type']}: {error['message']}")
    if result.simulated:
        notes.append("simulated answers (scripted models)")
    shared = f" --state {redacted(args.state)}" if args.state != "memory" else ""
    where = redacted(args.checkpoint)
    if result.status == "interrupted":
        notes.append(
            f"answer with: agentmesh resume {result.run_id} --checkpoint {where}{shared} "
            "--approve | --reject [--feedback TEXT] | --value JSON"
        )
    elif result.status == "failed" and args.checkpoint != "memory":  # a finished run has no rest
        notes.append(f"resume with: --checkpoint {where}{shared} --resume {result.run_id}")
    if not args.quiet:
        print("\n".join(f"# {n}" for n in notes), file=sys.stderr)
    elif result.status != "ok":  # --quiet silences progress, never the failure
        print(f"agentmesh: run {result.run_id}: {result.status}", file=sys.stderr)
        if result.error is not None:
            print(f"agentmesh: {notes[1]}", file=sys.stderr)
    return _EXIT[result.status]


_EXIT = {"ok": EXIT_OK, "failed": EXIT_FAILED, "interrupted": EXIT_INTERRUPTED}


def _print_pending(result: RunResult) -> None:
    """What a paused run awaits, on stdout: the run id, then each node and its payload."""
    print(f"run {result.run_id} is waiting for a person")
    for waiting in result.pending:
        print(f"pending: node {waiting['node']!r}")
        print(json.dumps(waiting["payload"], indent=2, ensure_ascii=False))


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from agentmesh import tracing
    from agentmesh.graph import load_graph

    if args.stream and args.json:
        return fail("--stream writes tokens to stdout, --json a JSON document: choose one")
    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    try:
        loaded = load_graph(args.graph)
        _durable_for_pauses(loaded, args.checkpoint)
        prompts = open_prompts(args.prompts)
        tokens = _token_writer(args, loaded)
        if args.trace or args.metrics_port:
            if args.trace:
                Path(args.trace).parent.mkdir(parents=True, exist_ok=True)
            with ExitStack() as stack:
                processors = _metrics_endpoint(args, stack)
                stack.enter_context(tracing.configure(jsonl=args.trace, processors=processors))
                result = asyncio.run(execute(args, loaded, catalog, prompts, tokens))
            if args.trace and not args.quiet:
                print(
                    f"# trace appended to {args.trace} (agentmesh trace show {args.trace})",
                    file=sys.stderr,
                )
        else:
            result = asyncio.run(execute(args, loaded, catalog, prompts, tokens))
    except user_errors(OSError) as exc:
        return fail(exc)
    return report(args, result, tokens)


def _durable_for_pauses(loaded: LoadedGraph, checkpoint: str) -> None:
    """A graph that pauses for a person needs a checkpoint the answer can resume from.

    Raises:
        GraphError: It pauses and the checkpoint is ``memory`` (gone when this process ends).
    """
    from agentmesh.graph import GraphError
    from agentmesh.graph.pause import needs_checkpointer, pausing_nodes

    pausing = pausing_nodes(loaded.spec)
    if pausing and checkpoint == "memory":
        problem = needs_checkpointer(pausing)
        raise GraphError(loaded.spec.name, [f"{loaded.locate(pausing[0])}{problem}"])


def _metrics_endpoint(args: argparse.Namespace, stack: ExitStack) -> list[SpanProcessor]:
    """Start ``--metrics-port``'s endpoint (closed with ``stack``); its span feed."""
    if args.metrics_port is None:
        return []
    from agentmesh.tracing.prometheus import Metrics

    metrics = Metrics()
    try:
        endpoint = metrics.serve(args.metrics_port)
    except OSError as exc:
        raise OSError(f"--metrics-port {args.metrics_port}: {exc.strerror or exc}") from None
    stack.callback(endpoint.close)
    if not args.quiet:
        print(f"# metrics on http://127.0.0.1:{endpoint.port}/metrics", file=sys.stderr)
    return [metrics.span_processor()]


def _error_json(exc: Exception) -> dict[str, Any]:
    """The error as `{"type": "graph_error", "message", "problems"}` (+ a prompt error's fields)."""
    kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
    problems = list(getattr(exc, "problems", None) or [str(exc)])
    error: dict[str, Any] = {"type": kind, "message": str(exc), "problems": problems}
    to_dict = getattr(exc, "to_dict", None)
    return {**error, **to_dict()} if callable(to_dict) else error


def _validate(args: argparse.Namespace) -> int:
    from agentmesh.graph import GraphError, check_graph, load_graph
    from agentmesh.models import CatalogError, load_catalog
    from agentmesh.models.lint import catalog_warnings
    from agentmesh.prompts import PromptError

    try:
        loaded = load_graph(args.graph)
        if args.models is not None:
            catalog = load_catalog(args.models)
            for warning in catalog_warnings(catalog):  # worth knowing; not a failure
                print(f"agentmesh: warning: {warning}", file=sys.stderr)
            check_graph(
                loaded.spec,
                catalog,
                open_prompts(args.prompts),
                loaded.tools(),
                locate=loaded.locate,
            )
    except (GraphError, PromptError, CatalogError) as exc:
        if args.json:
            emit_json({"graph": args.graph, "valid": False, "error": _error_json(exc)})
        return fail(exc)
    spec = loaded.spec
    if args.json:
        emit_json(
            {
                "graph": args.graph,
                "valid": True,
                "name": spec.name,
                "nodes": list(spec.nodes),
                "checked_against": args.models,
            }
        )
        return EXIT_OK
    checked = f"checked against {args.models}" if args.models else "structure only (no --models)"
    print(f"{args.graph}: ok — {spec.name}: {len(spec.nodes)} nodes, {checked}")
    return EXIT_OK


async def _drawing(loaded: LoadedGraph) -> str:
    # Compiling needs a runtime, but drawing calls no model and renders no template:
    # an empty prompts folder will do, so a graph draws without any prompts.
    import tempfile

    from agentmesh.graph import Runtime, compile_graph
    from agentmesh.models import Catalog, ModelSpec, Provider
    from agentmesh.prompts import PromptLibrary

    nobody = Catalog([ModelSpec(id="drawing", provider=Provider.SCRIPTED, model="drawing")])
    with tempfile.TemporaryDirectory(prefix="agentmesh-graph-") as empty:
        async with Runtime.open(nobody, prompts=PromptLibrary(empty)) as runtime:
            graph = compile_graph(loaded.spec, _runtime_for(loaded, runtime), check=False)
            return graph.get_graph().draw_mermaid()


def _mermaid(args: argparse.Namespace) -> int:
    import asyncio

    from agentmesh.graph import GraphError, load_graph

    try:
        loaded = load_graph(args.graph)
        print(asyncio.run(_drawing(loaded)))
    except GraphError as exc:
        return fail(exc)
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from agentmesh.graph import graph_schema

    print(json.dumps(graph_schema(), indent=2))
    return EXIT_OK
