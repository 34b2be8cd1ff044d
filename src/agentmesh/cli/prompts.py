"""``agentmesh prompts``: list the templates of a folder, render one for a model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentmesh.cli._common import (
    EXIT_CONFIG,
    EXIT_OK,
    add_models_option,
    add_prompts_option,
    emit_json,
    open_catalog,
    open_prompts,
)

if TYPE_CHECKING:
    from agentmesh.prompts import PromptError, PromptLibrary, PromptTemplate, RenderedPrompt

__all__ = ["register"]

_ROLE_NAMES: Mapping[str, str] = {"system": "system", "human": "user", "ai": "assistant"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``prompts list`` and ``prompts render``."""
    group = sub.add_parser("prompts", help="list and render prompt templates")
    commands = group.add_subparsers(dest="prompts_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list the templates, their variants and inputs")
    add_prompts_option(listing, "--dir")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    render = commands.add_parser("render", help="render a template for one model of a catalog")
    render.add_argument("name", metavar="NAME", help="template name (e.g. plan)")
    add_prompts_option(render, "--dir")
    add_models_option(render)
    render.add_argument("--model", required=True, metavar="ID", help="catalog id of the model")
    render.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input value (repeatable); list and dict inputs take JSON",
    )
    render.add_argument(
        "--example",
        action="store_true",
        help="start from the template's example inputs (--var values override them)",
    )
    render.add_argument("--json", action="store_true", help="print a JSON object")
    render.set_defaults(handler=_render)


def _fail(error: PromptError, as_json: bool) -> int:
    print(f"agentmesh: {error}", file=sys.stderr)
    if as_json:
        emit_json({"error": error.to_dict()})
    return EXIT_CONFIG


def _inputs_text(template: PromptTemplate) -> str:
    parts = []
    for name, spec in template.inputs.items():
        shown = f"{name}:{spec.type}"
        parts.append(shown if spec.required else f"{shown}?")
    return ", ".join(parts) or "-"


def _variants_text(template: PromptTemplate) -> str:
    generic = template.generic.front_matter.format
    return ", ".join(
        key if v.front_matter.format == generic else f"{key} ({v.front_matter.format})"
        for key, v in template.variants.items()
    )


def _template_row(template: PromptTemplate) -> dict[str, Any]:
    front = template.generic.front_matter
    return {
        "name": template.name,
        "description": template.description,
        "format": front.format,
        "inputs": {n: s.model_dump(mode="json") for n, s in template.inputs.items()},
        "output_schema": front.output_schema,
        "variants": [
            {
                "file": v.file,
                "key": v.key,
                "format": v.front_matter.format,
                "hash": v.hash,
            }
            for v in template.all_variants
        ],
    }


def _table(library: PromptLibrary) -> None:
    from agentmesh._table import print_table  # rich, only when a table is drawn

    header = ("NAME", "FORMAT", "VARIANTS", "INPUTS", "DESCRIPTION")
    print_table(
        header,
        (
            (
                t.name,
                t.generic.front_matter.format,
                _variants_text(t) or "-",
                _inputs_text(t),
                t.description,
            )
            for t in library.templates
        ),
        wrap=("VARIANTS", "INPUTS", "DESCRIPTION"),
    )


def _list(args: argparse.Namespace) -> int:
    from agentmesh.prompts import PromptError

    try:
        library = open_prompts(args.prompts)
    except PromptError as exc:
        return _fail(exc, args.json)
    if args.json:
        emit_json(
            {"dir": str(library.folder), "templates": [_template_row(t) for t in library.templates]}
        )
    else:
        _table(library)
    return EXIT_OK


def _parse_vars(pairs: Sequence[str], template: str) -> dict[str, str]:
    from agentmesh.prompts import PromptError

    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise PromptError(f"--var expects KEY=VALUE (got {pair!r})", template=template)
        if key in values:
            raise PromptError(f"--var {key} is given twice", template=template, variable=key)
        values[key] = value
    return values


def _summary(rendered: RenderedPrompt, reason: str) -> dict[str, Any]:
    return {
        "template": rendered.template,
        "variant": rendered.variant,
        "matched": rendered.matched,
        "reason": reason,
        "hash": rendered.hash,
        "format": rendered.format,
        "model": rendered.model_id,
        "messages": [
            {"role": _ROLE_NAMES.get(m.type, m.type), "content": m.content}
            for m in rendered.messages
        ],
        "completion": rendered.completion,
        "stop": list(rendered.stop),
    }


def _print_human(summary: Mapping[str, Any]) -> None:
    print(f"template  {summary['template']}")
    print(f"variant   {summary['variant']} ({summary['reason']})")
    print(f"hash      {summary['hash']}")
    print(f"format    {summary['format']}")
    print(f"model     {summary['model']}")
    if summary["completion"] is not None:
        print(f"\n--- completion ---\n{summary['completion']}")
        return
    for message in summary["messages"]:
        print(f"\n--- {message['role']} ---\n{message['content']}")


def _render(args: argparse.Namespace) -> int:
    from agentmesh.models import UnknownModel
    from agentmesh.prompts import PromptError

    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    try:
        spec = catalog[args.model]
    except UnknownModel as exc:
        return _fail(PromptError(str(exc), template=args.name), args.json)
    try:
        library = open_prompts(args.prompts)
        values = _parse_vars(args.var, args.name)
        inputs = {**library.template(args.name).example, **values} if args.example else values
        rendered = library.render(args.name, spec, inputs)
        reason = library.resolve(args.name, spec).reason
    except PromptError as exc:
        return _fail(exc, args.json)
    summary = _summary(rendered, reason)
    if args.json:
        emit_json(summary)
    else:
        _print_human(summary)
    return EXIT_OK
