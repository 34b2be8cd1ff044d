"""Helpers shared by CLI commands: catalog option, output, exit codes.

Start-up: every command module is imported to build the parser, so modules of
this package import only the standard library at the top; what a command needs
(pydantic, LangChain, LangGraph, OpenTelemetry...) is imported by its handler.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentmesh.models import Catalog
    from agentmesh.prompts import PromptLibrary

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "MODELS_VARIABLE",
    "PROMPTS_VARIABLE",
    "add_models_option",
    "add_prompts_option",
    "add_cache_option",
    "add_state_option",
    "emit_json",
    "open_catalog",
    "open_prompts",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 3

MODELS_VARIABLE = "AGENTMESH_MODELS"
PROMPTS_VARIABLE = "AGENTMESH_PROMPTS"


def add_models_option(
    parser: argparse.ArgumentParser, *, required: bool = True, what: str = "model catalog YAML"
) -> None:
    """Add ``--models FILE`` (default: ``$AGENTMESH_MODELS``; optional when that is set).

    Args:
        parser: The command's parser.
        required: Whether the command needs a catalog (``validate`` does not).
        what: The start of the option's help.
    """
    default = os.environ.get(MODELS_VARIABLE) or None
    if default is not None:
        shown = f"default: ${MODELS_VARIABLE} = {default}"
    elif required:
        shown = f"required unless ${MODELS_VARIABLE} is set"
    else:
        shown = f"default: ${MODELS_VARIABLE}"
    parser.add_argument(
        "--models",
        metavar="FILE",
        default=default,
        required=required and default is None,
        help=f"{what} ({shown})",
    )


def add_prompts_option(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """Add ``--prompts DIR`` (default: ``$AGENTMESH_PROMPTS``, else the shipped templates)."""
    default = os.environ.get(PROMPTS_VARIABLE)
    shown = f"= {default}" if default else "when set, else the shipped templates"
    parser.add_argument(
        "--prompts",
        *aliases,
        dest="prompts",
        metavar="DIR",
        default=None,
        help=f"prompt templates folder (default: ${PROMPTS_VARIABLE} {shown})",
    )


def add_state_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--state URL`` (default: ``$AGENTMESH_STATE``, else ``memory``)."""
    parser.add_argument(
        "--state",
        metavar="URL",
        default=os.environ.get("AGENTMESH_STATE") or "memory",
        help="routing state (breakers, latencies, budgets, counters, quality): memory "
        "(default; this process only) or redis://HOST:PORT/DB shared by every process "
        "(extra redis; ?prefix=NAME: for a separate view); default: $AGENTMESH_STATE",
    )


def add_cache_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--cache URL`` (default: ``$AGENTMESH_CACHE``, else no response cache)."""
    parser.add_argument(
        "--cache",
        metavar="URL",
        default=os.environ.get("AGENTMESH_CACHE") or None,
        help="response cache: memory (this process) or redis://HOST:PORT/DB[?prefix=NAME&ttl=S] "
        "(shared, extra redis); temperature-0 calls are then cached unless a policy, node or "
        "catalog entry says cache: false; default: $AGENTMESH_CACHE, else none",
    )


def open_catalog(path: str) -> Catalog | None:
    """Load the catalog, printing the error and returning ``None`` when it is invalid."""
    from agentmesh.models import CatalogError, load_catalog

    try:
        return load_catalog(path)
    except CatalogError as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return None


def open_prompts(folder: str | None, option: str = "--prompts DIR") -> PromptLibrary:
    """The templates of ``folder``; a missing folder's error names the ``option`` that sets it.

    ``None`` (no option given) is ``$AGENTMESH_PROMPTS`` when set, else the
    shipped templates, so commands work outside a checkout.

    Raises:
        PromptError: The folder is missing, or a template in it is unusable.
    """
    from agentmesh.prompts import PromptError, PromptLibrary

    if folder is None:
        folder = os.environ.get(PROMPTS_VARIABLE) or None
        if folder is None:
            return PromptLibrary()
        option = f"${PROMPTS_VARIABLE}"
    if not os.path.isdir(folder):
        raise PromptError(
            f"prompts folder {folder!r} does not exist or is not a folder (set it with {option})"
        )
    return PromptLibrary(folder)


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False))
