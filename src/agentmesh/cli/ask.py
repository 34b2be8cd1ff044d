"""``agentmesh ask``: one routed call with the whole stack (routing, retries, fallbacks)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agentmesh.cli import _names
from agentmesh.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    add_cache_option,
    add_models_option,
    add_state_option,
    emit_json,
    open_catalog,
)

if TYPE_CHECKING:
    from agentmesh.models import Catalog
    from agentmesh.resilience import RateLimiter, ResiliencePolicy, ResponseCache
    from agentmesh.routing import Policy, Router

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``ask``."""
    parser = sub.add_parser("ask", help="one routed, resilient model call")
    add_models_option(parser)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--strategy", choices=_names.STRATEGIES, help="routing strategy")
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
    add_cache_option(parser)
    parser.set_defaults(handler=_ask)


async def _run(
    args: argparse.Namespace, catalog: Catalog, routing: Policy, res: ResiliencePolicy
) -> int:
    from agentmesh.resilience import CacheError, LimiterError, maybe_cache, maybe_limiter
    from agentmesh.routing import Router, StateError, open_state

    try:
        async with (
            open_state(args.state) as state,
            maybe_cache(args.cache) as cache,
            maybe_limiter(catalog.specs, args.state) as limiter,
        ):
            router = Router(catalog, policy=routing, state=state)
            return await _call(args, catalog, res, router, cache, limiter)
    except (StateError, CacheError, LimiterError) as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG


async def _call(
    args: argparse.Namespace,
    catalog: Catalog,
    res: ResiliencePolicy,
    router: Router,
    cache: ResponseCache | None,
    limiter: RateLimiter | None,
) -> int:
    from agentmesh.models import Gateway, ModelRequest
    from agentmesh.resilience import Call, CallFailed, ResilientCaller
    from agentmesh.routing import RouteRequest

    request = RouteRequest(
        node="ask",
        role="executor",
        task=args.task,
        prompt=args.prompt,
        max_output_tokens=args.max_tokens,
    )
    call = ModelRequest.of(args.prompt, system=args.system, max_tokens=args.max_tokens)
    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(router, gateway, res, cache=cache, limiter=limiter)
        try:
            result = await caller.call(Call(request, call))
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
    if result.cached:
        notes.append("served from the response cache ($0)")
    if result.response.simulated:
        notes.append("simulated answer (scripted model)")
    print("\n".join(f"# {n}" for n in notes), file=sys.stderr)
    return EXIT_OK


def _ask(args: argparse.Namespace) -> int:
    import asyncio

    from agentmesh import tracing
    from agentmesh.resilience import load_call_policy
    from agentmesh.routing import PolicyError, Router

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
