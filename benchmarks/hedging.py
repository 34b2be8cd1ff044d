"""Delayed hedged requests against a slow tail: p50/p99 latency and cost, with and without.

What is measured
    Two catalog entries, ``primary`` (tier 1, chosen by ``cheapest``) and
    ``backup`` (tier 2, the same price), are endpoints of agentmesh's loopback
    ``FaultServer`` in ``slow`` mode: a seeded share of each endpoint's requests
    is answered after ``--slow-s`` seconds (3 s), the others at once. Each arm
    sends ``--requests`` calls (600) through ``ResilientCaller.call`` on fresh
    endpoints (same plans, same seeds), open loop: one call starts every
    ``1 / --rate`` seconds (100 per second) whatever the others do, so both arms
    meet the same offered load (a closed loop of N workers would give the
    hedged arm, whose workers are not parked on slow answers, more load):

    * ``unhedged``: ``Policy(strategy="cheapest")``.
    * ``hedged``: the same plus ``hedge: {after_ms: --after-ms (200), max_extra: 1}``:
      a call without an answer after 200 ms races ``backup``; the first answer
      wins and the other request is cancelled (its connection closed).

    The main scenario (top-level ``unhedged`` / ``hedged``): a slow tail on
    the primary (``--tail`` 10%) and a smaller independent one on the backup
    (``--backup-tail`` 2%). ``scenarios.same_tail_on_both`` repeats the arms
    with the primary's tail on both endpoints: then about tail² (1%) of the
    calls meet two slow answers, so the hedged p99 sits on that edge.

How to read the output (one JSON object on stdout)
    Per arm: ``p50_ms``, ``p99_ms`` (nearest rank, every call, client side,
    ``time.perf_counter``), ``cost_usd`` (what the caller charged: every
    winner's answer plus each cancelled loser's prompt, at the catalog's
    prices), ``calls`` (requests the server received), ``hedges`` (calls that
    started an extra request), ``abandoned`` (requests the server found closed
    by the client when their delay ended: cancelled losers), ``failures``.
    ``ratios`` are hedged / unhedged of the same run; ``target`` is the
    issue's: p99 <= 0.4x at cost <= 1.15x.

Run: ``python benchmarks/hedging.py`` (about 40 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from agentmesh.models import Catalog, Gateway, ModelRequest, ModelSpec
from agentmesh.resilience import Call, CallFailed, ResilientCaller
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing.fault_server import FaultPlan, FaultServer
from agentmesh.tracing.summary import percentile


def _catalog(server: FaultServer, prefix: str) -> Catalog:
    def spec(name: str, tier: int) -> ModelSpec:
        return ModelSpec.model_validate(
            {
                "id": name,
                "provider": "openai",
                "model": name,
                "base_url": server.base_url(f"{prefix}-{name}"),
                "tier": tier,
                "pricing": {"input": 1.0, "output": 4.0},
                "timeout_s": 30,
            }
        )

    return Catalog([spec("primary", 1), spec("backup", 2)], source="<hedging benchmark>")


async def _arm(
    server: FaultServer,
    prefix: str,
    tails: tuple[float, float],
    policy: Policy,
    args: argparse.Namespace,
) -> dict[str, Any]:
    for name, tail, seed in (("primary", tails[0], 1), ("backup", tails[1], 2)):
        plan = FaultPlan(mode="slow", delay_s=args.slow_s, fail_rate=tail, seed=seed)
        server.plan(f"{prefix}-{name}", plan)
    catalog = _catalog(server, prefix)
    latencies: list[float] = []
    cost = 0.0
    hedges = failures = 0
    loop = asyncio.get_running_loop()
    async with Gateway(catalog) as gateway:
        caller = ResilientCaller(Router(catalog, policy=policy), gateway)

        async def one(i: int) -> None:
            nonlocal cost, hedges, failures
            prompt = f"request {i}: say ok"
            call = Call(
                RouteRequest(prompt=prompt, max_output_tokens=4),
                ModelRequest.of(prompt, max_tokens=4),
                routing=policy,
            )
            started = time.perf_counter()
            try:
                result = await caller.call(call)
            except CallFailed as failed:
                failures += 1
                cost += failed.spend.cost_usd
            else:
                cost += result.cost_usd
                hedges += any(a.reason.startswith("hedge") for a in result.attempts)
            latencies.append((time.perf_counter() - started) * 1000)

        start = loop.time()
        calls = []
        for i in range(args.requests):
            await asyncio.sleep(max(0.0, start + i / args.rate - loop.time()))
            calls.append(asyncio.create_task(one(i)))
        await asyncio.gather(*calls)
    await asyncio.sleep(args.slow_s + 0.5)  # cut requests' handlers wake up and count themselves
    names = [f"{prefix}-primary", f"{prefix}-backup"]
    return {
        "p50_ms": round(percentile(latencies, 50) or 0.0, 2),
        "p99_ms": round(percentile(latencies, 99) or 0.0, 2),
        "cost_usd": round(cost, 9),
        "calls": sum(server.requests[n] for n in names),
        "hedges": hedges,
        "abandoned": sum(server.abandoned[n] for n in names),
        "failures": failures,
    }


def _ratios(unhedged: dict[str, Any], hedged: dict[str, Any]) -> dict[str, float]:
    return {
        "p50": round(hedged["p50_ms"] / unhedged["p50_ms"], 4),
        "p99": round(hedged["p99_ms"] / unhedged["p99_ms"], 4),
        "cost": round(hedged["cost_usd"] / unhedged["cost_usd"], 4),
    }


async def _scenario(
    server: FaultServer, tag: str, tails: tuple[float, float], args: argparse.Namespace
) -> dict[str, Any]:
    plain = Policy(strategy="cheapest")
    hedge = {"after_ms": args.after_ms, "max_extra": 1}
    hedged_policy = Policy.from_mapping({"strategy": "cheapest", "hedge": hedge})
    unhedged = await _arm(server, f"{tag}-u", tails, plain, args)
    hedged = await _arm(server, f"{tag}-h", tails, hedged_policy, args)
    return {"unhedged": unhedged, "hedged": hedged, "ratios": _ratios(unhedged, hedged)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Both scenarios, each arm on fresh endpoints of one fault server."""
    with FaultServer() as server:
        main_run = await _scenario(server, "main", (args.tail, args.backup_tail), args)
        both = await _scenario(server, "both", (args.tail, args.tail), args)
    ratios = main_run["ratios"]
    return {
        **main_run,
        "target": {
            "p99_ratio_max": 0.4,
            "cost_ratio_max": 1.15,
            "met": ratios["p99"] <= 0.4 and ratios["cost"] <= 1.15,
        },
        "scenarios": {"same_tail_on_both": both},
        "settings": {
            "requests": args.requests,
            "rate_per_s": args.rate,
            "slow_s": args.slow_s,
            "tail": args.tail,
            "backup_tail": args.backup_tail,
            "after_ms": args.after_ms,
            "max_extra": 1,
            "server": "agentmesh.testing.FaultServer on 127.0.0.1 (a thread of this process)",
        },
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--rate", type=float, default=100.0, help="calls started per second")
    parser.add_argument("--slow-s", type=float, default=3.0)
    parser.add_argument("--tail", type=float, default=0.10)
    parser.add_argument("--backup-tail", type=float, default=0.02)
    parser.add_argument("--after-ms", type=float, default=200.0)
    return parser


if __name__ == "__main__":
    json.dump(asyncio.run(main(_parser().parse_args())), sys.stdout, indent=2)
    sys.stdout.write("\n")
