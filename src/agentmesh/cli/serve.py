"""``agentmesh serve``: the routing service as an OpenAI-compatible HTTP server (extra ``server``).

Everything the server needs (catalog, policies, graphs, prompts, the state
store) is opened once before binding, so a bad file or an unreachable store
is exit code 2 with the file and field named, never a traceback from a worker.
Binds loopback by default; a non-loopback address needs virtual keys
(``--keys``), and several workers need a shared ``--state``.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from agentmesh.cli._common import (
    EXIT_CONFIG,
    EXIT_OK,
    add_models_option,
    add_prompts_option,
    add_state_option,
)

if TYPE_CHECKING:
    from agentmesh.server import ServeConfig

__all__ = ["register"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``serve``."""
    parser = sub.add_parser(
        "serve", help="serve the routing service as an OpenAI-compatible API (extra server)"
    )
    add_models_option(parser)
    parser.add_argument(
        "--policies",
        metavar="FILE",
        help="named policies (model 'route:<name>'; 'default:' is model 'auto')",
    )
    parser.add_argument("--graphs", metavar="DIR", help="workflows served as 'graph:<name>'")
    add_state_option(parser)
    add_prompts_option(parser)
    parser.add_argument(
        "--keys",
        metavar="URL",
        help="virtual keys store (sqlite:PATH or postgresql://...); required off loopback",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=_port, default=4000, help="port (default 4000)")
    parser.add_argument(
        "--workers", type=_positive, default=1, help="worker processes (need a shared --state)"
    )
    parser.add_argument(
        "--global-budget", metavar="USD", type=float, help="limit on everything spent"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive,
        default=4 * 1024 * 1024,
        help="largest request body (413 above; default 4 MiB)",
    )
    parser.add_argument("--trace", metavar="FILE", help="append every span to FILE (JSONL)")
    parser.add_argument("--otlp", metavar="URL", help="export spans over OTLP/HTTP to URL")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="server log level (default info)",
    )
    parser.set_defaults(handler=_serve)


def _config(args: argparse.Namespace) -> ServeConfig:
    from agentmesh.server import ServeConfig

    return ServeConfig(
        models=args.models,
        policies=args.policies,
        graphs=args.graphs,
        state=args.state,
        prompts=args.prompts,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_body_bytes=args.max_body_bytes,
        global_budget_usd=args.global_budget,
        trace=args.trace,
        otlp_endpoint=args.otlp,
        keys=args.keys,
    )


def _refusal(args: argparse.Namespace, config: ServeConfig) -> str | None:
    if not config.loopback and not args.keys:
        return (
            f"refusing to bind {config.host}: off loopback every client must present a "
            "virtual key (--keys URL); bind 127.0.0.1 to serve this machine only"
        )
    if config.workers > 1 and config.state == "memory":
        return (
            f"--workers {config.workers} needs a shared --state (redis://...): with "
            "memory each worker would keep its own budgets and breakers"
        )
    return None


async def _check(config: ServeConfig) -> None:
    from agentmesh.server import open_service

    async with open_service(config):
        return


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    try:
        import uvicorn

        from agentmesh.server import create_app
        from agentmesh.server.service import CONFIG_VARIABLE
    except ImportError as exc:
        print(
            f"agentmesh: serve needs the 'server' extra (pip install 'agentmesh[server]'): {exc}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from agentmesh.graph import GraphError
    from agentmesh.models import CatalogError
    from agentmesh.prompts import PromptError
    from agentmesh.routing import PolicyError, StateError
    from agentmesh.server.keys import KeyStoreError

    config = _config(args)
    refusal = _refusal(args, config)
    if refusal is not None:
        print(f"agentmesh: {refusal}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        asyncio.run(_check(config))
    except (
        CatalogError,
        PolicyError,
        GraphError,
        PromptError,
        StateError,
        KeyStoreError,
        OSError,
    ) as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from agentmesh.routing.stores import redacted

    print(
        f"# agentmesh serve on http://{config.host}:{config.port}/v1 "
        f"({config.workers} worker{'s' if config.workers > 1 else ''}, "
        f"state {redacted(config.state)})",
        file=sys.stderr,
    )
    if config.workers == 1:
        uvicorn.run(
            create_app(config),
            host=config.host,
            port=config.port,
            log_level=args.log_level,
            access_log=args.log_level == "debug",
        )
        return EXIT_OK
    import os

    os.environ[CONFIG_VARIABLE] = config.to_json()
    uvicorn.run(
        "agentmesh.server.app:app_from_environment",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
    )
    return EXIT_OK
