"""Gateway controls over the real local Redis: the shared response cache and rate limits.

Each test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_redis_state import REDIS_URL, require_redis, unique_prefix

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"


def _agentmesh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentmesh", *argv],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        timeout=120,
    )


def _delete(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


def test_two_processes_share_answers_through_a_redis_cache_with_a_ttl() -> None:
    require_redis()
    import redis

    prefix = unique_prefix("cache")
    url = f"{REDIS_URL}?prefix={prefix}&ttl=120"
    argv = ["ask", "--models", str(REPO / "models" / "sim.yaml"), "--prompt", "hello", "--json"]
    try:
        first = _agentmesh(*argv, "--cache", url)
        second = _agentmesh(*argv, "--cache", url)
        assert first.returncode == 0, first.stderr
        assert second.returncode == 0, second.stderr
        one, two = json.loads(first.stdout), json.loads(second.stdout)
        assert one["cached"] is False
        assert one["cost_usd"] > 0
        assert two["cached"] is True
        assert two["cost_usd"] == 0
        assert two["text"] == one["text"]
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            assert len(keys) == 1
            assert 0 < client.pttl(keys[0]) <= 120_000
        finally:
            client.close()
    finally:
        _delete(prefix)


def test_an_unreachable_redis_cache_is_a_clear_error() -> None:
    argv = ["ask", "--models", str(REPO / "models" / "sim.yaml"), "--prompt", "hi"]
    done = _agentmesh(*argv, "--cache", "redis://127.0.0.1:1/0")
    assert done.returncode == 2
    assert "cache redis://127.0.0.1:1/0: cannot reach Redis" in done.stderr
    assert "Traceback" not in done.stderr


WORKER = """
import asyncio, json, sys
from agentmesh.models import Gateway, ModelRequest, load_catalog
from agentmesh.resilience import Call, ResilientCaller, open_limiter
from agentmesh.routing import Router, RouteRequest, open_state

async def main(catalog_path, state_url, tag, n):
    catalog = load_catalog(catalog_path)
    async with open_state(state_url) as state, open_limiter(state_url) as limiter:
        async with Gateway(catalog) as gateway:
            caller = ResilientCaller(Router(catalog, state=state), gateway, limiter=limiter)

            async def one(i):
                prompt = f"call {tag}-{i}"
                call = Call(RouteRequest(prompt=prompt), ModelRequest.of(prompt, max_tokens=4))
                result = await caller.call(call)
                return [len(result.attempts), result.attempts[-1].waited_s]

            done = await asyncio.gather(*(one(i) for i in range(n)))
    print(json.dumps(done))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def test_four_processes_never_exceed_a_shared_rpm_and_lose_or_double_no_call(
    tmp_path: Path,
) -> None:
    """4 processes x 50 calls through one Redis limiter at ``rpm: 60``.

    The window is 2 s instead of 60 (``window_s: 2``; the same moving-window
    code, the same Redis script, only its length differs) so the test takes
    seconds: 200 calls at 60 per window need at least three full windows.
    """
    require_redis()
    from agentmesh.testing.fault_server import FaultPlan, FaultServer

    prefix = unique_prefix("limits")
    state = f"{REDIS_URL}?prefix={prefix}"
    window = 2.0
    with FaultServer() as server:
        server.plan("p", FaultPlan())
        catalog = tmp_path / "models.yaml"
        catalog.write_text(
            "models:\n"
            "  - id: limited\n    provider: openai\n    model: m\n"
            f"    base_url: {server.base_url('p')}\n"
            f"    limits: {{rpm: 60, window_s: {window:g}, max_wait: 60}}\n"
        )
        env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
        try:
            workers = [
                subprocess.Popen(
                    [sys.executable, "-c", WORKER, str(catalog), state, f"w{n}", "50"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                for n in range(4)
            ]
            outputs = [w.communicate(timeout=120) for w in workers]
        finally:
            _delete(prefix)
        for worker, (out, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err
            assert [attempts for attempts, _ in json.loads(out)] == [1] * 50
        log = list(server.log)
    bodies = sorted(json.loads(r.body)["messages"][-1]["content"] for r in log)
    assert bodies == sorted(f"call w{n}-{i}" for n in range(4) for i in range(50))
    arrivals = sorted(r.at for r in log)
    busiest = max(
        sum(1 for t in arrivals[i:] if t < start + window) for i, start in enumerate(arrivals)
    )

    assert busiest <= 60, busiest
    assert arrivals[-1] - arrivals[0] >= 3 * window * 0.9  # it was paced, not let through


async def test_token_and_concurrency_limits_are_shared_through_redis() -> None:
    require_redis()
    from agentmesh.resilience import open_limiter
    from agentmesh.testing import scripted_model

    prefix = unique_prefix("tpm")
    url = f"{REDIS_URL}?prefix={prefix}"
    spec = scripted_model("m", fields={"limits": {"tpm": 100, "concurrency": 1}})
    try:
        async with open_limiter(url) as one, open_limiter(url) as two:
            first = await one.acquire(spec, 60)
            assert first is not None
            assert await two.acquire(spec, 10) is None  # the one slot is held by the other
            await one.release(first)
            assert await two.acquire(spec, 60) is None  # 120 tokens would pass 100
            saturated = await two.saturated([spec], 60)
            assert saturated == {"m": "tpm 100 per 60 s reached"}
            assert await two.acquire(spec, 30) is not None
    finally:
        _delete(prefix)
