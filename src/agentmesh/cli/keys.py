"""``agentmesh keys create | list | revoke``: the virtual keys of ``agentmesh serve``.

- ``keys create [--name N] [--budget USD] [--models PATTERNS] [--rpm N] [--expires WHEN]``
  prints the key once (only its hash is stored);
- ``keys list [--json]``: every key with its limits and spending (never a secret);
- ``keys revoke ID``: the key is refused from its next request on.

``--keys URL`` (default ``$AGENTMESH_KEYS``, else ``sqlite:.agentmesh/keys.db``)
names the store, the same one ``serve --keys`` reads.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agentmesh.cli._common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, emit_json

if TYPE_CHECKING:
    from agentmesh.server.keys import KeyStore

__all__ = ["DEFAULT_KEYS", "register"]

DEFAULT_KEYS = "sqlite:.agentmesh/keys.db"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def _usd(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of USD") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be at least 0 USD, got {text}")
    return value


def _rpm(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"requests per minute is a whole number >= 1, got {text!r}"
        )
    return int(text)


def _expires(text: str) -> float:
    """``30d``, ``12h``, ``45m``, ``90s`` from now, or an ISO date/time (UTC unless it says)."""
    found = _DURATION.fullmatch(text.strip())
    if found:
        return time.time() + float(found[1]) * _UNITS[found[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--expires {text!r}: expected a duration (30d, 12h, 45m) or an ISO date"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keys",
        metavar="URL",
        default=os.environ.get("AGENTMESH_KEYS") or DEFAULT_KEYS,
        help=f"key store: sqlite:PATH or postgresql://... (default $AGENTMESH_KEYS, else "
        f"{DEFAULT_KEYS})",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Attach ``keys``."""
    keys = sub.add_parser("keys", help="virtual keys of agentmesh serve")
    what = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = what.add_parser("create", help="make a key (printed once)")
    _add_store(create)
    create.add_argument("--name", default="", help="a label for people")
    create.add_argument("--budget", metavar="USD", type=_usd, help="total spend allowed")
    create.add_argument(
        "--models",
        metavar="PATTERNS",
        help="comma-separated model patterns allowed (sim-*,auto,graph:*); default all",
    )
    create.add_argument("--rpm", type=_rpm, help="requests per minute allowed")
    create.add_argument(
        "--expires", type=_expires, metavar="WHEN", help="30d, 12h... or an ISO date"
    )
    create.add_argument("--json", action="store_true", help="print the key and record as JSON")
    create.set_defaults(handler=_create)
    listing = what.add_parser("list", help="every key and its spending (no secrets)")
    _add_store(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    revoke = what.add_parser("revoke", help="refuse a key from now on")
    _add_store(revoke)
    revoke.add_argument("key_id", metavar="ID", help="the key's id (keys list)")
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    from agentmesh.server.keys import KeySpec

    models = tuple(p.strip() for p in (args.models or "").split(",") if p.strip())
    spec = KeySpec(args.name, args.budget, models, args.rpm, args.expires)

    async def work(store: KeyStore) -> int:
        key, record = await store.create(spec)
        if args.json:
            emit_json({"key": key, **record.to_dict()})
        else:
            print(key)
            print(f"# key {record.id}: shown once, stored hashed in {args.keys}", file=sys.stderr)
        return EXIT_OK

    return _with_store(args.keys, work)


def _list(args: argparse.Namespace) -> int:
    async def work(store: KeyStore) -> int:
        records = await store.list()
        if args.json:
            emit_json([r.to_dict() for r in records])
            return EXIT_OK
        from agentmesh._table import print_table

        rows = [
            [
                r.id,
                r.spec.name,
                "revoked" if r.revoked_at else "active",
                "-" if r.spec.budget_usd is None else f"{r.spec.budget_usd:.6f}",
                f"{r.spent_usd:.6f}",
                ",".join(r.spec.models) or "*",
                "-" if r.spec.rpm is None else str(r.spec.rpm),
            ]
            for r in records
        ]
        print_table(["ID", "NAME", "STATE", "BUDGET", "SPENT", "MODELS", "RPM"], rows)
        return EXIT_OK

    return _with_store(args.keys, work)


def _revoke(args: argparse.Namespace) -> int:
    async def work(store: KeyStore) -> int:
        if await store.revoke(args.key_id):
            print(f"# key {args.key_id} revoked", file=sys.stderr)
            return EXIT_OK
        print(f"agentmesh: no active key {args.key_id!r}", file=sys.stderr)
        return EXIT_FAILED

    return _with_store(args.keys, work)


def _with_store(url: str, work: Callable[[KeyStore], Awaitable[int]]) -> int:
    import asyncio
    import sqlite3

    from agentmesh.server.keys import KeyStoreError, open_key_store

    async def run() -> int:
        store = open_key_store(url)
        try:
            return await work(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(run())
    except (KeyStoreError, sqlite3.Error, OSError) as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return EXIT_CONFIG
