"""``agentmesh route``: ask the router for a decision and print it, explained."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agentmesh.cli import _names
from agentmesh.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    add_models_option,
    add_state_option,
    emit_json,
    open_catalog,
)

if TYPE_CHECKING:
    from agentmesh.models import Catalog
    from agentmesh.routing import Policy, RouteDecision, RouteRequest

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``route``."""
    parser = sub.add_parser("route", help="show which model the router picks, and why")
    add_models_option(parser)
    parser.add_argument("--strategy", choices=_names.STRATEGIES, help="overrides the policy's")
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="policy YAML (strategy, bounds, params; a resilience: block is checked, not used)",
    )
    parser.add_argument("--prompt", required=True, help="the prompt to route")
    parser.add_argument("--role", default="executor", help="the asking node's role")
    parser.add_argument("--task", help="task label (default: classified from the prompt)")
    parser.add_argument("--node", default="cli", help="the asking node's name")
    parser.add_argument(
        "--require",
        action="append",
        default=[],
        choices=_names.CAPABILITIES,
        help="a needed capability (repeatable)",
    )
    parser.add_argument("--max-output-tokens", type=int, default=1024)
    parser.add_argument("--escalation", type=int, default=0, help="escalation level")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    add_state_option(parser)
    parser.set_defaults(handler=_route)


def _policy(args: argparse.Namespace) -> Policy:
    from agentmesh.resilience import load_call_policy

    routing, _ = load_call_policy(args.policy, args.strategy)  # the resilience block is validated
    return routing


def _unknown_task(task: str | None, catalog: Catalog) -> str | None:
    """A warning when ``task`` is known neither to the catalog's priors nor to the classifier."""
    from agentmesh.routing.features import KEYWORDS

    if task is None:
        return None
    known = {t for s in catalog.specs for t in s.quality} - {"default"}
    known |= {*KEYWORDS, "general"}
    if task in known:
        return None
    return (
        f"agentmesh: warning: task {task!r} has no quality prior in {catalog.source} "
        f"and is not a classifier task (known: {', '.join(sorted(known))}); every model is "
        "ranked on its default quality unless the routing state has observed this task"
    )


def _show(decision: RouteDecision) -> str:
    lines = [
        f"chosen:    {decision.chosen}",
        f"strategy:  {decision.strategy}",
        f"reason:    {decision.reason}",
        f"task:      {decision.task or '-'}",
    ]
    if len(decision.selected) > 1:
        lines.append(f"selected:  {', '.join(decision.selected)}")
    lines.append(f"fallbacks: {', '.join(decision.fallbacks) or '-'}")
    lines.append("candidates:")
    lines += [f"  {c.model:<20} {c.score:>12.4f}  {c.note}" for c in decision.candidates]
    if decision.excluded:
        lines.append("excluded:")
        lines += [f"  {e.model:<20} [{e.by}] {e.why}" for e in decision.excluded]
    return "\n".join(lines)


async def _decide(
    catalog: Catalog, policy: Policy, request: RouteRequest, url: str
) -> RouteDecision:
    from agentmesh.routing import Router, open_state

    async with open_state(url) as state:
        return await Router(catalog, policy=policy, state=state).route(request)


def _route(args: argparse.Namespace) -> int:
    import asyncio

    from agentmesh.models import Capability
    from agentmesh.routing import NoRoute, PolicyError, Router, RouteRequest, StateError

    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    try:
        policy = _policy(args)
        Router(catalog, policy=policy)  # the policy fits the catalog
    except (PolicyError, ValueError) as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    warning = _unknown_task(args.task, catalog)
    if warning is not None:
        print(warning, file=sys.stderr)
    request = RouteRequest(
        node=args.node,
        role=args.role,
        task=args.task,
        prompt=args.prompt,
        max_output_tokens=args.max_output_tokens,
        capabilities=frozenset(Capability(c) for c in args.require),
        escalation=args.escalation,
    )
    try:
        decision = asyncio.run(_decide(catalog, policy, request, args.state))
    except StateError as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except NoRoute as exc:
        if args.json:
            emit_json(
                {
                    "error": {"type": type(exc).__name__, "message": str(exc)},
                    "excluded": [
                        {"model": e.model, "why": e.why, "by": e.by} for e in exc.excluded
                    ],
                }
            )
        else:
            print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        emit_json(decision.to_dict())
    else:
        print(_show(decision))
    return EXIT_OK
