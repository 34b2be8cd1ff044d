"""`open_state(url)`: the routing-state registry and URL parsing (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.routing import (
    STATE_STORES,
    BreakerState,
    InMemoryRoutingState,
    RedisRoutingState,
    StateError,
    open_state,
)
from agentmesh.routing.redis_state import decode_breaker, encode_breaker
from agentmesh.routing.stores import redacted, redis_options

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("url", ["memory", "memory:", "memory://", "MEMORY"])
async def test_memory_is_an_in_process_state(url: str) -> None:
    async with open_state(url) as state:
        assert isinstance(state, InMemoryRoutingState)
        assert await state.reserve([("global", 1.0)], 0.5) is None


async def test_the_default_is_memory() -> None:
    async with open_state() as state:
        assert isinstance(state, InMemoryRoutingState)


async def test_memory_takes_no_location() -> None:
    with pytest.raises(StateError, match="memory takes no location"):
        async with open_state("memory:/tmp/x"):
            pass


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(StateError, match="unknown kind 'etcd'") as caught:
        open_state("etcd://127.0.0.1:2379")
    assert "memory, redis:, rediss:, unix:" in str(caught.value)


def test_the_registry_is_by_scheme_and_read_only() -> None:
    assert set(STATE_STORES) == {"memory", "redis", "rediss", "unix"}
    with pytest.raises(TypeError):
        STATE_STORES["etcd"] = STATE_STORES["redis"]  # type: ignore[index]


def test_redis_urls_split_state_options_from_client_options() -> None:
    target, options = redis_options(
        "redis://:pw@10.0.0.5:6380/3?prefix=staging:&socket_timeout=2"
        "&run_ttl_s=3600&stats_ttl_s=none&counter_ttl_s=60&window=50&ewma_alpha=0.5"
    )
    assert target == "redis://:pw@10.0.0.5:6380/3?socket_timeout=2"
    assert options == {
        "prefix": "staging:",
        "run_ttl_s": 3600.0,
        "stats_ttl_s": None,
        "counter_ttl_s": 60.0,
        "window": 50,
        "ewma_alpha": 0.5,
    }
    assert redis_options("redis://h/0") == ("redis://h/0", {})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("prefix=", "prefix='': must not be empty"),
        ("window=0", "window='0': must be at least 1"),
        ("window=many", "window='many'"),
        ("ewma_alpha=2", "ewma_alpha='2': must be in"),
        ("run_ttl_s=-5", "run_ttl_s='-5': must be positive"),
    ],
)
def test_bad_state_options_are_named(query: str, message: str) -> None:
    with pytest.raises(StateError, match=message.replace("(", r"\(")) as caught:
        redis_options(f"redis://:hunter2@h/0?{query}")
    assert "hunter2" not in str(caught.value)


def test_passwords_are_redacted_in_messages() -> None:
    assert redacted("redis://user:hunter2@h:1/0") == "redis://user:***@h:1/0"
    assert redacted("redis://h:1/0") == "redis://h:1/0"
    assert redacted("redis://[::1") == "redis:<unparsable>"


def test_a_state_from_a_url_connects_lazily_with_the_parsed_options() -> None:
    target, options = redis_options("redis://10.9.8.7:6390/4?prefix=p:&socket_timeout=2.5")
    state = RedisRoutingState.from_url(target, **options)  # no connection is opened here
    assert state.prefix == "p:"
    kwargs = state.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("10.9.8.7", 6390, 4)
    assert kwargs["socket_timeout"] == 2.5


def test_redis_state_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="ewma_alpha"):
        RedisRoutingState.from_url("redis://h/0", ewma_alpha=0)
    with pytest.raises(ValueError, match="window"):
        RedisRoutingState.from_url("redis://h/0", window=0)


@pytest.mark.parametrize(
    "breaker",
    [
        BreakerState("open", until=1_700_000_030.25, reason="5 consecutive failures, last timeout"),
        BreakerState("half_open", until=12.0, reason="a|b|c", probes=3),
        BreakerState("half_open", until=-0.0, reason="", probes=0),
    ],
)
def test_breakers_encode_canonically_and_round_trip(breaker: BreakerState) -> None:
    assert decode_breaker(encode_breaker(breaker)) == breaker
    same = BreakerState(breaker.state, until=breaker.until + 0.0, reason=breaker.reason,
                        probes=breaker.probes)  # fmt: skip
    assert encode_breaker(same) == encode_breaker(breaker)


def test_the_default_closed_breaker_is_never_stored() -> None:
    assert encode_breaker(BreakerState()) == ""
    assert decode_breaker("") == BreakerState()
    assert encode_breaker(BreakerState("closed", reason="x")) != ""
    with pytest.raises(ValueError, match="unknown state"):
        decode_breaker("shut|0.0|0|x")


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return done.stdout.strip()


def test_importing_routing_does_not_import_redis() -> None:
    code = "import agentmesh.routing, agentmesh.cli, sys; print('redis' in sys.modules)"
    assert _python(code) == "False"


def test_without_the_redis_extra_memory_works_and_redis_names_the_extra() -> None:
    code = """
import asyncio, sys
sys.modules["redis"] = None  # as if the extra were not installed
from agentmesh.routing import StateError, open_state

async def main():
    async with open_state("memory"):
        pass
    try:
        async with open_state("redis://127.0.0.1:6379/0"):
            pass
    except StateError as exc:
        print(exc)

asyncio.run(main())
"""
    assert _python(code) == "redis state needs the extra: pip install 'agentmesh[redis]'"


def _catalog(tmp_path: Path) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(
        "models:\n  - id: m\n    provider: scripted\n    model: m\n"
        "    pricing: {input: 1, output: 2}\n    behavior: {reply: ok}\n"
    )
    return str(path)


@pytest.mark.parametrize("command", ["route", "ask"])
def test_cli_rejects_an_unknown_state(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([command, "--models", _catalog(tmp_path), "--prompt", "hi", "--state", "etcd://x"])
    assert code == 2
    assert "unknown kind 'etcd'" in capsys.readouterr().err


def test_cli_state_defaults_to_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTMESH_STATE", "etcd://from-env")
    assert main(["route", "--models", _catalog(tmp_path), "--prompt", "hi"]) == 2
    assert "etcd" in capsys.readouterr().err
    monkeypatch.setenv("AGENTMESH_STATE", "memory")
    assert main(["route", "--models", _catalog(tmp_path), "--prompt", "hi", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chosen"] == "m"


def test_run_global_budget_limits_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    graph = tmp_path / "g.yaml"
    graph.write_text(
        "name: one\nnodes:\n  n1:\n    kind: executor\n    prompt: execute_step\n"
        '    inputs: {question: $input, step: "s"}\n'
    )
    common = ["run", str(graph), "--models", _catalog(tmp_path), "--input", "q", "--json"]
    assert main([*common, "--state", "memory", "--global-budget", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ok"
    assert main([*common, "--global-budget", "0.000001"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["error"]["type"] == "budget_exceeded"
    assert main([*common, "--state", "memory:somewhere"]) == 2
    assert "memory takes no location" in capsys.readouterr().err


def test_run_s_resume_hint_names_the_state_and_checkpoint_without_passwords(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from agentmesh.cli import run as run_cmd
    from agentmesh.graph import RunResult

    error = {"node": "n1", "type": "unavailable", "message": "down"}
    result = RunResult("r1", "g", "failed", None, error, 0.0, {"input": 0, "output": 0})
    args = argparse.Namespace(
        json=False,
        quiet=False,
        checkpoint="postgres://me:pw@127.0.0.1/test",
        state="redis://:s3cret@127.0.0.1:6379/0",
    )
    assert run_cmd.report(args, result) == 1
    err = capsys.readouterr().err
    assert "--checkpoint postgres://me:***@127.0.0.1/test" in err
    assert "--state redis://:***@127.0.0.1:6379/0 --resume r1" in err
    assert "pw@" not in err
    assert "s3cret" not in err


def test_a_finished_run_gets_no_resume_hint(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from agentmesh.cli import run as run_cmd
    from agentmesh.graph import RunResult

    result = RunResult("r1", "g", "ok", "out", None, 0.0, {"input": 0, "output": 0})
    args = argparse.Namespace(json=False, quiet=False, checkpoint="sqlite:///r.db", state="memory")
    assert run_cmd.report(args, result) == 0
    captured = capsys.readouterr()
    assert captured.out == "out\n"
    assert "run r1: ok" in captured.err
    assert "resume" not in captured.err, "nothing is left to resume of a run that ended ok"


def test_a_state_from_a_url_shares_one_blocking_pool_of_bounded_size() -> None:
    from redis.asyncio import BlockingConnectionPool

    from agentmesh.routing.redis_state import DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_TIMEOUT_S

    default = RedisRoutingState.from_url("redis://10.9.8.7:6390/4")
    pool = default.client.connection_pool
    assert isinstance(pool, BlockingConnectionPool), "waits for a connection, never raises"
    assert (pool.max_connections, pool.timeout) == (DEFAULT_MAX_CONNECTIONS, DEFAULT_POOL_TIMEOUT_S)
    target, options = redis_options("redis://h/0?max_connections=8&pool_timeout_s=none")
    assert options == {"max_connections": 8, "pool_timeout_s": None}
    sized = RedisRoutingState.from_url(target, **options).client.connection_pool
    assert (sized.max_connections, sized.timeout) == (8, None)  # type: ignore[attr-defined]
    with pytest.raises(StateError, match="max_connections='0': must be at least 1"):
        redis_options("redis://h/0?max_connections=0")
    with pytest.raises(ValueError, match="max_connections"):
        RedisRoutingState.from_url("redis://h/0", max_connections=0)
