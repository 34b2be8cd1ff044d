"""``agentmesh models``: list a catalog, call one model."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from agentmesh.cli._common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    add_models_option,
    emit_json,
    open_catalog,
)

if TYPE_CHECKING:
    from agentmesh.models import Catalog, Gateway, ModelRequest, ModelResponse, ModelSpec

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``models list`` and ``models call``."""
    group = sub.add_parser("models", help="inspect and call the models of a catalog")
    commands = group.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list the catalog's models")
    add_models_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    call = commands.add_parser("call", help="call one model once")
    add_models_option(call)
    call.add_argument("--model", required=True, metavar="ID", help="catalog id of the model")
    call.add_argument("--prompt", required=True, help="the user message")
    call.add_argument("--system", help="an optional system message")
    call.add_argument("--max-tokens", type=int, help="cap on output tokens")
    call.add_argument("--temperature", type=float, help="sampling temperature")
    call.add_argument("--timeout", type=float, help="total seconds for the call")
    call.add_argument("--stream", action="store_true", help="print the answer as it arrives")
    call.add_argument("--json", action="store_true", help="print a JSON object with usage and cost")
    call.set_defaults(handler=_call)


def _note(spec: ModelSpec) -> str:
    if spec.simulated:
        return f"SIMULATED (imitates {spec.imitates})" if spec.imitates else "SIMULATED"
    if spec.api_key_env and not os.environ.get(spec.api_key_env):
        return f"needs ${spec.api_key_env}"
    return ""


def _row(spec: ModelSpec) -> dict[str, Any]:
    data = spec.shown()
    data["capabilities"] = sorted(data["capabilities"])
    data["tags"] = sorted(data["tags"])
    data["simulated"] = spec.simulated
    data["key_present"] = bool(spec.api_key_env and os.environ.get(spec.api_key_env))
    return data


def _table(catalog: Catalog) -> None:
    from agentmesh._table import print_table  # rich, only when a table is drawn

    header = ("ID", "PROVIDER", "MODEL", "TIER", "$IN/1M", "$OUT/1M", "CONTEXT", "CAPS", "NOTE")
    print_table(
        header,
        (
            (
                s.id,
                s.provider.value,
                s.model,
                str(s.tier),
                f"{s.pricing.input:g}",
                f"{s.pricing.output:g}",
                str(s.context_window),
                ",".join(sorted(c.value for c in s.capabilities)) or "-",
                _note(s),
            )
            for s in catalog.specs
        ),
        wrap=("CAPS", "NOTE"),
    )


def _list(args: argparse.Namespace) -> int:
    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    if args.json:
        emit_json({"catalog": catalog.source, "models": [_row(s) for s in catalog.specs]})
    else:
        _table(catalog)
    return EXIT_OK


def _summary(response: ModelResponse) -> dict[str, Any]:
    return {
        "model": response.model_id,
        "provider": response.provider,
        "served_model": response.served_model,
        "text": response.text,
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
        "usage_estimated": response.usage.estimated,
        "cost_usd": round(response.cost_usd, 10),
        "latency_ms": round(response.latency_ms, 2),
        "ttft_ms": round(response.ttft_ms, 2),
        "finish_reason": response.finish_reason,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
            for c in response.tool_calls
        ],
        "simulated": response.simulated,
    }


async def _run(args: argparse.Namespace, gateway: Gateway, request: ModelRequest) -> ModelResponse:
    if not args.stream:
        return await gateway.invoke(args.model, request)
    final: ModelResponse | None = None
    async for event in gateway.stream(args.model, request):
        if event.delta and not args.json:
            print(event.delta, end="", flush=True)
        final = event.response or final
    if not args.json:
        print()
    assert final is not None, "a stream always ends with its response"
    return final


async def _call_async(args: argparse.Namespace, catalog: Catalog) -> int:
    from agentmesh.models import Gateway, ModelError, ModelRequest

    request = ModelRequest.of(
        args.prompt,
        system=args.system,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        timeout=args.timeout,
    )
    async with Gateway(catalog) as gateway:
        try:
            response = await _run(args, gateway, request)
        except ModelError as exc:
            if args.json:
                emit_json({"model": args.model, "error": {"type": exc.kind, "message": str(exc)}})
            else:
                print(f"agentmesh: {exc.kind}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        emit_json(_summary(response))
        return EXIT_OK
    if not args.stream:
        print(response.text)
    if response.simulated:
        spec = catalog[response.model_id]
        print(
            f"(simulated answer: scripted model {spec.id!r}, imitating {spec.imitates})",
            file=sys.stderr,
        )
    return EXIT_OK


def _call(args: argparse.Namespace) -> int:
    import asyncio

    from agentmesh.models import UnknownModel

    catalog = open_catalog(args.models)
    if catalog is None:
        return EXIT_CONFIG
    try:
        catalog[args.model]
    except UnknownModel as exc:
        if args.json:  # the same shape as a failed call, so scripts read one format
            emit_json(
                {"model": args.model, "error": {"type": "unknown_model", "message": str(exc)}}
            )
        else:
            print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_call_async(args, catalog))
