"""``agentmesh ask``: one routed call with the whole stack (routing, retries, fallbacks)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from agentmesh import tracing
from agentmesh.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    add_models_option,
    add_state_option,
    emit_json,
    open_catalog,
)
from agentmesh.models import Catalog, Gateway, ModelRequest
from agentmesh.resilience import CallFailed, ResiliencePolicy, ResilientCaller
from agentmesh.routing import (
    STRATEGIES,
    Policy,
    PolicyError,
    Router,
    RouteRequest,
    StateError,
    open_state,
)
from agentmesh.routing.policy import read_policy_file

__all__ = ["load_call_policy", "register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``ask``."""
    parser = sub.add_parser("ask", help="one routed, resilient model call")
    add_models_option(parser)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--strategy", choices=sorted(STRATEGIES), help="routing strategy")
    how.add_argument(
        "--policy",
        metavar="FILE",
        help="policy YAML: routing keys plus an optional resilience: block",
    )
    parser.add_argument("--prompt", required=True, help="the user message")
    parser.add_argument("--system", help="an optional system message")
    parser.add_argument("--task", help="task label (default: classified when needed)")
    parser.add_argument("--max-tokens", type=int, default=512, help="cap on output tokens")
    parser.add_argument("--json", action="store_true", help="print a JSON object with attempts")
    parser.add_argument("--trace", metavar="FILE", help="append the call's spans to FILE (JSONL)")
    add_state_option(parser)
    parser.set_defaults(handler=_ask)


def load_call_policy(path: str | None, strategy: str | None) -> tuple[Policy, ResiliencePolicy]:
    """The routing policy and resilience policy of a policy file (or a bare strategy).

    Raises:
        PolicyError: The file is unreadable or invalid, naming the file and field.
    """
    if path is None:
        return Policy(strategy=strategy or "cheapest"), ResiliencePolicy()
    data: Any = read_policy_file(path)
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a policy is a mapping (strategy: ..., resilience: ...)")
    resilience = data.pop("resilience", None) or {}
    if not isinstance(resilience, dict):
        raise PolicyError(f"{path}: resilience: must be a mapping")
    try:
        res = ResiliencePolicy.from_mapping(resilience, source=f"{path} resilience")
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    return Policy.from_mapping(data, source=path), res


async def _run(
    args: argparse.Namespace, catalog: Catalog, routing: Policy, res: ResiliencePolicy
) -> int:
    try:
        async with open_state(args.state) as state:
            return await _call(
                args, catalog, routing, res, Router(catalog, policy=routing, state=state)
            )
    except StateError as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG


async def _call(
    args: argparse.Namespace,
    catalog: Catalog,
    routing: Policy,
    res: ResiliencePolicy,
    router: Router,
) -> int:
    request = RouteRequest(
        node="ask",
        role="executor",
        task=args.task,
        prompt=args.prompt,
        max_output_tokens=args.max_tokens,
    )
    call = ModelRequest.of(args.prompt, system=args.system, max_tokens=args.max_tokens)
    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(router, gateway, res)
        try:
            result = await caller.call(request, call)
        except CallFailed as failure:
            attempts = [a.to_dict() for a in failure.attempts]
            if args.json:
                emit_json(
                    {
                        "error": {"type": failure.kind, "message": str(failure.error)},
                        "attempts": attempts,
                    }
                )
            else:
                print(f"agentmesh: {failure.kind}: {failure}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        emit_json(result.to_dict())
        return EXIT_OK
    print(result.response.text)
    tried = " -> ".join(f"{a.model}:{a.error_type or a.outcome}" for a in result.attempts)
    notes = [f"served by {result.model} ({result.decision.reason})", f"attempts: {tried}"]
    if result.degraded:
        notes.append(f"DEGRADED: {result.degraded_reason}")
    if result.response.simulated:
        notes.append("simulated answer (scripted model)")
    print("\n".join(f"# {n}" for n in notes), file=sys.stderr)
    return EXIT_OK


def _ask(args: argparse.Namespace) -> int:
    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    try:
        routing, res = load_call_policy(args.policy, args.strategy)
        Router(catalog, policy=routing)
    except (PolicyError, ValueError) as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not args.trace:
        return asyncio.run(_run(args, catalog, routing, res))
    Path(args.trace).parent.mkdir(parents=True, exist_ok=True)
    with tracing.configure(jsonl=args.trace), tracing.span("agentmesh ask"):
        code = asyncio.run(_run(args, catalog, routing, res))
    print(f"# trace appended to {args.trace} (agentmesh trace show {args.trace})", file=sys.stderr)
    return code
