"""Redis commands and server time per ``route()`` at 10 / 100 / 1000 models, and the slowlog.

What is measured
    A private ``redis-server`` (started by this script on a free loopback port, no
    persistence, ``slowlog-log-slower-than 1000`` microseconds, stopped at the end)
    holds a ``RedisRoutingState`` over the synthetic catalogs of
    ``routing_overhead.py`` (``_routing_fixtures.py``), every model with 5 observed
    latencies. For each size and each of ``cheapest``, ``round_robin`` and
    ``least_latency``, ``--routes`` decisions are made after ``CONFIG RESETSTAT``
    and ``SLOWLOG RESET``; then ``INFO commandstats`` gives the commands the server
    ran (scripts count as one call each, the Redis commands inside them too) and
    their server time, and ``SLOWLOG GET`` every command over 1 ms.

    ``cheapest`` and ``round_robin`` read no model statistics (``needs_stats`` is
    False): their snapshot script reads the breakers, the round-robin counter and
    the budgets, whatever the catalog's size. ``least_latency`` needs every
    candidate's statistics: the state keeps them in the process and its script
    reads only those written since its previous snapshot (none here: nothing is
    observed between the timed routes). ``least_latency_busy`` is the same with
    another process (a second state on the same keys) recording one observation
    before every route, so every snapshot reads one changed model; its
    ``server_us_per_route`` and slowlog are the snapshot script's alone (timed
    through a slowlog of every command), ``observe_us_per_route`` the
    observation's, ``commands_per_route`` both. ``first_snapshot``: a process's
    first snapshot (20 fresh states, one ``least_latency`` read each), which
    reads every model's statistics (``HGETALL`` beside the script, in one
    ``MULTI``), per snapshot: every command's server time, and the script's.
    ``cheapest_slo`` is ``cheapest`` under a latency SLO (the filter reads every
    model's p95) in the same busy setting. ``least_latency_cached`` is
    ``least_latency`` on a state with ``stats_cache_s=0.5`` (statistics reused
    for half a second, other processes' observations at most 0.5 s stale); its
    decisions are spaced 10 ms apart (100 a second), so one in 50 reads
    statistics. ``targets`` leaves out the first snapshot and the cached one.

How to read the output (one JSON object on stdout)
    ``sizes[N][strategy]``: ``commands_per_route`` (by command and in total),
    ``server_us_per_route`` (the sum of the commands' server time per route,
    inner commands of a script included in the script's own time), and
    ``slowlog``: entries over 1 ms and the longest, in microseconds. ``targets``:
    no script over 1 ms in the slowlog at 1000 models, and the server time per
    route at 1000 models within 2x of that at 10, for every measurement.

Run::

    .venv/bin/python benchmarks/redis_route_cost.py             # ~30 s
    .venv/bin/python benchmarks/redis_route_cost.py --routes 50 # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, cast

from _routing_fixtures import PROMPT, agentmesh_catalog, synthetic_models
from agentmesh.routing import Policy, RedisRoutingState, Router, RouteRequest

SIZES = (10, 100, 1000)
STRATEGIES = ("cheapest", "round_robin", "least_latency")
BUSY = {"least_latency_busy": "least_latency", "cheapest_slo": "cheapest"}
SLO_MS = 1000.0
FULL = "first_snapshot"
FULL_READS = 20
SLOW_US = 1000
CACHE_S = 0.5
CACHED = "least_latency_cached"
SPACING_S = 0.01


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(folder: str) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server on loopback: no persistence, slowlog from 1 ms."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH (Debian package redis-server)")
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
            "--slowlog-log-slower-than",
            str(SLOW_US),
            "--slowlog-max-len",
            "10000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("redis-server did not start within 10 s")


def command_stats(info: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from ``INFO commandstats``."""
    out: dict[str, tuple[int, int]] = {}
    for key, value in info.items():
        if key.startswith("cmdstat_") and not key.startswith(("cmdstat_config", "cmdstat_slowlog")):
            out[key.removeprefix("cmdstat_")] = (int(value["calls"]), int(value["usec"]))
    return out


def script_sha(entry: dict[str, Any]) -> str | None:
    """The script a slowlog entry ran (``EVALSHA``), else ``None``."""
    words = entry["command"].split()
    text = [w.decode() if isinstance(w, bytes) else str(w) for w in words[:2]]
    return text[1] if text[0].lower() == "evalsha" and len(text) > 1 else None


def summary(
    stats: dict[str, tuple[int, int]], slow: list[dict[str, Any]], routes: int, script_us: float
) -> dict[str, Any]:
    """One measurement's figures per route."""
    scripts = [e for e in slow if script_sha(e) is not None]
    return {
        "commands_per_route": {c: round(n / routes, 2) for c, (n, _) in stats.items()}
        | {"total": round(sum(n for n, _ in stats.values()) / routes, 2)},
        "server_us_per_route": round(script_us / routes, 1),
        "slowlog": {
            "over_1ms": len(slow),
            "scripts_over_1ms": len(scripts),
            "longest_us": max((int(e["duration"]) for e in slow), default=0),
        },
    }


async def measure_busy(
    router: Router, writer: RedisRoutingState, ids: Sequence[str], routes: int
) -> dict[str, dict[str, Any]]:
    """``BUSY``: each route preceded by one observation from another process (``writer``).

    Every command is logged (slowlog threshold 0) to time the snapshot script
    apart from the observation script.
    """
    client: Any = writer.client
    snapshot_sha = cast(Any, router.state)._snapshot._script.sha
    request = RouteRequest(prompt=PROMPT, node="bench")
    out: dict[str, Any] = {}
    for name, strategy in BUSY.items():
        slo = SLO_MS if name == "cheapest_slo" else None
        policy = Policy(strategy=strategy, latency_slo_ms=slo)
        for _ in range(5):
            await router.route(request, policy)
        await client.config_resetstat()
        await client.config_set("slowlog-log-slower-than", 0)
        await client.slowlog_reset()
        for turn in range(routes):
            model = ids[turn % len(ids)]
            await writer.observe(model, latency_ms=300.0 + turn % 7, error=None)
            await router.route(request, policy)
        everything = await client.slowlog_get(10000)
        await client.config_set("slowlog-log-slower-than", SLOW_US)
        stats = command_stats(await client.info("commandstats"))
        snapshots = [e for e in everything if script_sha(e) == snapshot_sha]
        others = [e for e in everything if script_sha(e) not in (None, snapshot_sha)]
        slow = [e for e in snapshots if int(e["duration"]) > SLOW_US]
        row = summary(stats, slow, routes, sum(int(e["duration"]) for e in snapshots))
        row["observe_us_per_route"] = round(sum(int(e["duration"]) for e in others) / routes, 1)
        row["snapshots_timed"] = len(snapshots)
        out[name] = row
    out[FULL] = await measure_full_reads(writer, ids, snapshot_sha)
    return out


async def measure_full_reads(writer: RedisRoutingState, ids: Sequence[str], sha: str) -> Any:
    """``FULL``: the first snapshot of a process (it reads every model's statistics).

    What a process pays once, and every process after an expiry removed a model.
    """
    client: Any = writer.client
    url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    await client.config_resetstat()
    await client.config_set("slowlog-log-slower-than", 0)
    await client.slowlog_reset()
    for _ in range(FULL_READS):
        fresh = RedisRoutingState.from_url(url, prefix=writer.prefix)
        try:
            await fresh.snapshot(ids)
        finally:
            await fresh.aclose()
    everything = await client.slowlog_get(10000)
    await client.config_set("slowlog-log-slower-than", SLOW_US)
    stats = command_stats(await client.info("commandstats"))
    ran = [e for e in everything if not str(e["command"]).lower().startswith(("config", "slowlog"))]
    slow = [e for e in ran if int(e["duration"]) > SLOW_US]
    row = summary(stats, slow, FULL_READS, sum(int(e["duration"]) for e in ran))
    row["script_us_per_snapshot"] = round(
        sum(int(e["duration"]) for e in ran if script_sha(e) == sha) / FULL_READS, 1
    )
    return row


async def measure(
    state: RedisRoutingState,
    cached: RedisRoutingState,
    writer: RedisRoutingState,
    size: int,
    routes: int,
) -> dict[str, Any]:
    """Every strategy's commands, server time and slowlog at ``size`` models.

    ``cached`` is a state over the same keys with ``stats_cache_s=CACHE_S``,
    measured with ``least_latency`` as ``least_latency_cached``; ``writer``
    another process's state over the same keys (``BUSY``).
    """
    models = synthetic_models(size)
    for model in models:
        for latency in model.latencies_ms:
            await state.observe(model.spec.id, latency_ms=latency, error=None)
    catalog = agentmesh_catalog(models)
    routers = {"plain": Router(catalog, state=state), "cached": Router(catalog, state=cached)}
    request = RouteRequest(prompt=PROMPT, node="bench")
    client: Any = state.client
    out: dict[str, Any] = {}
    for name in (*STRATEGIES, CACHED):
        policy = Policy(strategy="least_latency" if name == CACHED else name)
        router = routers["cached" if name == CACHED else "plain"]
        for _ in range(5):
            await router.route(request, policy)
        await client.config_resetstat()
        await client.slowlog_reset()
        for _ in range(routes):
            await router.route(request, policy)
            if name == CACHED:  # 100 decisions/s: the cache expires every 50 decisions
                await asyncio.sleep(SPACING_S)
        stats = command_stats(await client.info("commandstats"))
        slow = await client.slowlog_get(10000)
        script_us = sum(us for c, (_, us) in stats.items() if c in ("evalsha", "eval"))
        out[name] = summary(stats, slow, routes, script_us)
    ids = [m.spec.id for m in models]
    return out | await measure_busy(routers["plain"], writer, ids, routes)


async def state_info(port: int) -> dict[str, Any]:
    """The server's ``INFO server`` section."""
    from redis.asyncio import Redis

    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", decode_responses=True)
    try:
        info: dict[str, Any] = await client.info("server")
        return info
    finally:
        await client.aclose()


async def run(routes: int, sizes: Sequence[int]) -> dict[str, Any]:
    """Start the server, measure every size, stop the server."""
    with tempfile.TemporaryDirectory(prefix="agentmesh-redis-") as folder:
        server, port = start_server(folder)
        try:
            results: dict[str, Any] = {}
            for size in sizes:
                url, prefix = f"redis://127.0.0.1:{port}/0", f"bench:{uuid.uuid4().hex[:8]}:"
                state = RedisRoutingState.from_url(url, prefix=prefix)
                cached = RedisRoutingState.from_url(url, prefix=prefix, stats_cache_s=CACHE_S)
                writer = RedisRoutingState.from_url(url, prefix=prefix)
                try:
                    results[str(size)] = await measure(state, cached, writer, size, routes)
                finally:
                    await state.aclose()
                    await cached.aclose()
                    await writer.aclose()
            redis_version = (await state_info(port))["redis_version"]
        finally:
            server.terminate()
            server.wait(timeout=10)
    small, large = str(min(sizes)), str(max(sizes))
    flat = {
        name: {
            "server_us": [
                results[small][name]["server_us_per_route"],
                results[large][name]["server_us_per_route"],
            ],
            "scripts_over_1ms_at_largest": results[large][name]["slowlog"]["scripts_over_1ms"],
        }
        for name in (*STRATEGIES, *BUSY)
    }
    meets = all(
        row["scripts_over_1ms_at_largest"] == 0 and row["server_us"][1] <= 2 * row["server_us"][0]
        for row in flat.values()
    )
    return {
        "benchmark": "redis_route_cost",
        "redis": redis_version,
        "redis_py": version("redis"),
        "routes_per_measurement": routes,
        "sizes": results,
        "targets": {
            "criterion": "every measurement but the cached one: no script over 1 ms in the "
            f"slowlog at the largest size, server time per route at {large} models <= 2x "
            f"that at {small}",
            "per_strategy": flat,
            "meets": meets,
        },
    }


def main() -> None:
    """Parse the options, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--routes", type=int, default=200, help="timed routes per measurement")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    json.dump(asyncio.run(run(args.routes, sizes)), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
