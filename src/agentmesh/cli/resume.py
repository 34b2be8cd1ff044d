"""``agentmesh resume``: answer a run a node paused for a person, and continue it.

``resume RUN_ID --checkpoint URL (--approve | --reject [--feedback TEXT] |
--value JSON) [--json]``: the graph file, catalog and prompts are the ones the
run started with (kept in its checkpoint as ``origin``; ``--graph`` and
``--models`` override them). Exit codes as ``agentmesh run``: 0 ok, 1 failed,
2 invalid input (no such run, a run that awaits no answer, an answer the node
does not take), 3 paused again.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from typing import Any

from agentmesh.cli._common import (
    EXIT_CONFIG,
    add_cache_option,
    add_prompts_option,
    add_state_option,
    open_catalog,
    open_prompts,
)
from agentmesh.cli.run import execute, fail, report, user_errors

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``resume``."""
    resume = sub.add_parser("resume", help="answer a paused run (interrupted) and continue it")
    resume.add_argument("resume", metavar="RUN_ID", help="the paused run's id")
    resume.add_argument(
        "--checkpoint",
        metavar="URL",
        required=True,
        help="where the run is: sqlite:PATH or postgres://...",
    )
    answer = resume.add_mutually_exclusive_group(required=True)
    answer.add_argument("--approve", action="store_true", help="approve what the node shows")
    answer.add_argument("--reject", action="store_true", help="reject it (see --feedback)")
    answer.add_argument("--value", metavar="JSON", help="answer with a JSON value")
    resume.add_argument("--feedback", metavar="TEXT", help="with --reject: what to change")
    resume.add_argument("--json", action="store_true", help="print the run as JSON")
    resume.add_argument("--trace", metavar="FILE", help="append the run's spans to FILE (JSONL)")
    resume.add_argument(
        "--models", metavar="FILE", help="catalog (default: the one the run started with)"
    )
    resume.add_argument(
        "--graph", metavar="FILE", help="graph file (default: the one the run started with)"
    )
    add_state_option(resume)
    add_cache_option(resume)
    add_prompts_option(resume)
    resume.add_argument("--quiet", action="store_true", help="no progress on stderr")
    resume.set_defaults(
        handler=_resume, input=None, run_id=None, budget=None, global_budget=None, stream=False
    )


def _answer(args: argparse.Namespace) -> Any:
    """The resume value of ``--approve``, ``--reject [--feedback]`` or ``--value JSON``.

    Raises:
        ValueError: ``--value`` is not JSON, or ``--feedback`` comes without ``--reject``.
    """
    from agentmesh._jsontext import loads
    from agentmesh.graph.pause import approve, reject, value

    if args.feedback is not None and not args.reject:
        raise ValueError("--feedback goes with --reject")
    if args.approve:
        return approve()
    if args.reject:
        return reject(args.feedback)
    try:
        return value(loads(args.value))
    except ValueError as exc:
        raise ValueError(f"--value: not JSON: {exc}") from None


async def _started(url: str, run_id: str) -> dict[str, Any]:
    """The ``origin`` the run kept in its checkpoint (graph, catalog, prompts)."""
    from agentmesh.graph import RunError, open_checkpointer

    async with open_checkpointer(url) as saver:
        found = await saver.aget_tuple({"configurable": {"thread_id": run_id, "checkpoint_ns": ""}})
    if found is None:
        raise RunError(f"no run {run_id!r} in {url}: nothing to resume")
    origin = found.checkpoint["channel_values"].get("origin")
    if not isinstance(origin, dict):
        raise RunError(
            f"run {run_id!r} did not record its graph and catalog: "
            "give --graph FILE and --models FILE"
        )
    return origin


def _resume(args: argparse.Namespace) -> int:
    import asyncio

    from agentmesh import tracing
    from agentmesh.graph import CheckpointError, RunError, load_graph
    from agentmesh.routing.stores import redacted

    try:
        answer = _answer(args)
        origin = (
            {}
            if args.graph and args.models
            else asyncio.run(_started(args.checkpoint, args.resume))
        )
    except (ValueError, CheckpointError, RunError) as exc:
        return fail(exc)
    args.graph = args.graph or origin.get("graph")
    args.models = args.models or origin.get("models")
    args.prompts = args.prompts or origin.get("prompts")
    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    try:
        loaded = load_graph(args.graph)
        prompts = open_prompts(args.prompts)
        with tracing.configure(jsonl=args.trace) if args.trace else nullcontext():
            result = asyncio.run(execute(args, loaded, catalog, prompts, answer=answer))
    except user_errors() as exc:
        return fail(str(exc).replace(args.checkpoint, redacted(args.checkpoint)))
    return report(args, result)
