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
