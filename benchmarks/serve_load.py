"""``agentmesh serve`` under load, side by side with LiteLLM's proxy, over one stub backend.

What is measured
    One loopback OpenAI-compatible stub (``_stub_server.py``, its own process)
    serves every model. Two gateways stand in front of it, each in its own
    process with one worker, configured alike: two deployments (``cheap`` and
    ``dear``, priced), ``cheap`` first with fallback to ``dear``, two retries,
    no database:

    * ``agentmesh``: ``agentmesh serve --models`` a catalog of two ``openai``
      entries on the stub; the client asks for model ``auto`` (the default
      ``cheapest`` policy: ``cheap``, falling back to ``dear``). Tracing and the
      Prometheus feed are on, as they always are in ``serve``.
    * ``litellm``: ``litellm --config`` (the ``bench`` extra) with the same two
      deployments and ``router_settings.fallbacks``; the client asks for ``cheap``.
    * ``direct``: the stub itself, the baseline the added latency is measured from.

    A load generator (this process: asyncio and aiohttp, a fresh session per round)
    keeps a fixed number of requests in flight (1, 16, 64, 256 by default) for
    ``--seconds`` after a warm-up, the arms alternating in rounds
    (``--rounds``); figures are medians over the rounds.

How to read the output (one JSON object on stdout)
    Per concurrency and arm: ``rps`` (answered requests/s), ``p50_ms`` /
    ``p99_ms`` latency, ``added_p50_ms`` / ``added_p99_ms`` over ``direct`` at
    the same concurrency, ``server_cpu_ms_per_request`` (the gateway process's
    user+system CPU over the round divided by requests; the stub and the load
    generator are not counted), ``errors`` (non-200 answers and transport errors).
    ``ratios``: agentmesh over LiteLLM for each figure (rps > 1 is better, the
    others < 1). The issue's targets at 64 concurrent: rps ratio >= 2, added p50
    ratio <= 0.5, zero errors. The machine is shared (two cores): the load
    generator competes with the servers, which caps every arm alike.

Run: ``flock /tmp/heavy.lock python benchmarks/serve_load.py [--seconds 5 --rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_stack import ARM_HEADER, LITELLM_ENV, POOL, STUB_MODEL, stub_catalog_text
from _stub_server import StubServer

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 16, 64, 256)
BODY_MESSAGES = [{"role": "user", "content": "Say ok."}]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _litellm_config(base_url: str) -> str:
    cheap, dear = POOL
    deployments = []
    for model in POOL:
        deployments.append(
            {
                "model_name": model.id,
                "litellm_params": {
                    "model": f"openai/{STUB_MODEL}",
                    "api_base": base_url,
                    "api_key": "unused",
                    "max_retries": 0,
                    "extra_headers": {ARM_HEADER: "litellm"},
                    "input_cost_per_token": model.input_per_m / 1e6,
                    "output_cost_per_token": model.output_per_m / 1e6,
                },
            }
        )
    config = {
        "model_list": deployments,
        "router_settings": {
            "fallbacks": [{cheap.id: [dear.id]}],
            "num_retries": 2,
            "allowed_fails": 4,
            "cooldown_time": 30,
        },
        "litellm_settings": {"telemetry": False, "drop_params": True},
        # no database, and no key checks on either side (agentmesh serves without --keys)
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }
    return json.dumps(config)  # JSON is YAML


@contextlib.contextmanager
def _process(command: Sequence[str], ready: str, env: dict[str, str], log: Path) -> Iterator[int]:
    """Start a server; yield its pid once ``ready`` answers 200."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(ready, timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (``/proc``)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for one in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def _load(
    session: aiohttp.ClientSession, url: str, model: str, concurrency: int, seconds: float
) -> tuple[list[float], int]:
    """Keep ``concurrency`` requests in flight for ``seconds``; latencies (ms) and errors."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    body = json.dumps({"model": model, "messages": BODY_MESSAGES, "max_tokens": 16})
    headers = {"content-type": "application/json"}

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _round(arm: dict[str, Any], concurrency: int, seconds: float) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await _load(session, arm["url"], arm["model"], concurrency, min(1.0, seconds))  # warm-up
        cpu_before = _cpu_s(arm["pid"]) if arm["pid"] else 0.0
        started = time.perf_counter()
        latencies, errors = await _load(session, arm["url"], arm["model"], concurrency, seconds)
        elapsed = time.perf_counter() - started
        cpu = (_cpu_s(arm["pid"]) - cpu_before) if arm["pid"] else 0.0
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": _pct(latencies, 0.5),
        "p99_ms": _pct(latencies, 0.99),
        "server_cpu_ms_per_request": 1000 * cpu / max(len(latencies), 1),
        "errors": float(errors),
        "requests": float(len(latencies)),
    }


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    keys = rounds[0].keys()
    out = {k: statistics.median(r[k] for r in rounds) for k in keys}
    out["errors"] = sum(r["errors"] for r in rounds)
    return out


async def _measure(arms: dict[str, dict[str, Any]], levels: Sequence[int], seconds: float,
                   rounds: int) -> list[dict[str, Any]]:  # fmt: skip
    results = []
    for concurrency in levels:
        per_arm: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
        order = list(arms)
        for number in range(rounds):
            for name in order if number % 2 == 0 else reversed(order):
                per_arm[name].append(await _round(arms[name], concurrency, seconds))
        level: dict[str, Any] = {"concurrency": concurrency}
        direct = _median(per_arm["direct"])
        for name, found in per_arm.items():
            figures = _median(found)
            if name != "direct":
                figures["added_p50_ms"] = figures["p50_ms"] - direct["p50_ms"]
                figures["added_p99_ms"] = figures["p99_ms"] - direct["p99_ms"]
            level[name] = {k: round(v, 3) for k, v in figures.items()}
        if "litellm" in level:
            a, b = level["agentmesh"], level["litellm"]
            level["ratios"] = {
                k: round(a[k] / b[k], 3) if b[k] else None
                for k in ("rps", "added_p50_ms", "added_p99_ms", "server_cpu_ms_per_request")
            }
        results.append(level)
        print(json.dumps(level), file=sys.stderr, flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per arm and level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="concurrencies")
    parser.add_argument("--no-litellm", action="store_true", help="agentmesh and direct only")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="serve-load-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **LITELLM_ENV}
    with StubServer(max_seconds=3600) as stub, contextlib.ExitStack() as stack:
        catalog = folder / "models.yaml"
        catalog.write_text(stub_catalog_text(stub.base_url, "agentmesh"))
        port = _free_port()
        agentmesh_pid = stack.enter_context(
            _process(
                [
                    sys.executable,
                    "-m",
                    "agentmesh",
                    "serve",
                    "--models",
                    str(catalog),
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                f"http://127.0.0.1:{port}/ready",
                env,
                folder / "agentmesh.log",
            )
        )
        arms: dict[str, dict[str, Any]] = {
            "direct": {"url": f"{stub.base_url}/chat/completions", "model": STUB_MODEL, "pid": 0},
            "agentmesh": {
                "url": f"http://127.0.0.1:{port}/v1/chat/completions",
                "model": "auto",
                "pid": agentmesh_pid,
            },
        }
        versions: dict[str, str] = {}
        if not args.no_litellm:
            config = folder / "litellm.yaml"
            config.write_text(_litellm_config(stub.base_url))
            lport = _free_port()
            litellm = Path(sys.executable).with_name("litellm")
            litellm_pid = stack.enter_context(
                _process(
                    [
                        str(litellm),
                        "--config",
                        str(config),
                        "--port",
                        str(lport),
                        "--host",
                        "127.0.0.1",
                        "--num_workers",
                        "1",
                    ],
                    f"http://127.0.0.1:{lport}/health/liveliness",
                    env,
                    folder / "litellm.log",
                )
            )
            arms["litellm"] = {
                "url": f"http://127.0.0.1:{lport}/v1/chat/completions",
                "model": POOL[0].id,
                "pid": litellm_pid,
            }
            from importlib.metadata import version

            versions["litellm"] = version("litellm")
        results = asyncio.run(_measure(arms, levels, args.seconds, args.rounds))
        stub_stats = stub.stats()
    print(
        json.dumps(
            {
                "benchmark": "serve_load",
                "seconds_per_round": args.seconds,
                "rounds": args.rounds,
                "cpus": os.cpu_count(),
                "versions": versions,
                "results": results,
                "stub": stub_stats,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
