"""The ``agentmesh`` command line.

Each command group lives in its own module exposing ``register(subparsers)``;
``register`` attaches the handler to its parser (``set_defaults(handler=...)``),
so dispatch is by the parsed object, never by comparing command names.

Start-up: building the parser imports every command module, so those import
only the standard library at the top and each handler imports what its
command needs (``agentmesh --help`` loads no LangGraph, LangChain, pydantic or
OpenTelemetry; ``tests/unit/test_cli_startup.py`` checks it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from agentmesh.cli import ask as ask_cmd
from agentmesh.cli import evaluate as evaluate_cmd
from agentmesh.cli import keys as keys_cmd
from agentmesh.cli import models as models_cmd
from agentmesh.cli import prompts as prompts_cmd
from agentmesh.cli import resume as resume_cmd
from agentmesh.cli import route as route_cmd
from agentmesh.cli import run as run_cmd
from agentmesh.cli import serve as serve_cmd
from agentmesh.cli import trace as trace_cmd

__all__ = ["build_parser", "main", "version"]

_GROUPS = (
    run_cmd,
    resume_cmd,
    models_cmd,
    route_cmd,
    ask_cmd,
    prompts_cmd,
    trace_cmd,
    evaluate_cmd,
    serve_cmd,
    keys_cmd,
)


def version() -> str:
    """The installed distribution's version (``unknown`` when agentmesh is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("agentmesh")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``, looked up only when asked (``importlib.metadata`` is slow to import)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        print(f"agentmesh {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="agentmesh",
        description="Workflows whose every node is routed to the right model.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Exit codes: 0 success, 1 the model call failed, 2 bad usage or configuration.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
