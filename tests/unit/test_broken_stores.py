"""Broken checkpoint stores and routing state: exit 2 before the run, or a failed run after.

Never a traceback: a corrupt SQLite file or a directory is refused when the
store is opened (before the first model call); a store or a Redis state that
fails mid-run ends the run as ``failed``, naming the store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from redis.exceptions import ConnectionError as RedisConnectionError

from agentmesh.cli import main
from agentmesh.graph import CheckpointError, Runtime, Workflow, open_checkpointer, run_graph
from agentmesh.routing import InMemoryRoutingState, Policy
from agentmesh.routing.state import ModelStats
from agentmesh.testing import scripted_catalog, scripted_model

ROOT = Path(__file__).resolve().parents[2]


def corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xa5" * 4096)
    return path


def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "x.db"
    path.write_bytes(b"\x00\x01garbage" * 600)
    return path


def folder(tmp_path: Path) -> Path:
    path = tmp_path / "runs.d"
    path.mkdir()
    return path


BAD_SQLITE = {
    "corrupt file": (corrupt, "not a usable SQLite database: file is not a database"),
    "not a database at all": (garbage, "not a usable SQLite database: file is not a database"),
    "a directory": (folder, "is a directory, not a database file"),
}


@pytest.mark.parametrize("case", sorted(BAD_SQLITE))
async def test_an_unusable_sqlite_store_is_refused_when_opened(tmp_path: Path, case: str) -> None:
    make, words = BAD_SQLITE[case]
    path = make(tmp_path)
    with pytest.raises(CheckpointError) as caught:
        async with open_checkpointer(f"sqlite:{path}"):
            pytest.fail("opened")
    assert str(caught.value) == f"checkpoint sqlite:{path}: {words}"


@pytest.mark.parametrize("case", sorted(BAD_SQLITE))
def test_run_exits_2_before_any_model_call(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    monkeypatch.chdir(ROOT)
    path = BAD_SQLITE[case][0](tmp_path)
    trace = tmp_path / "trace.jsonl"
    argv = ["run", "graphs/support_triage.yaml", "--models", "models/sim.yaml", "--input", "hi"]
    code = main([*argv, "--checkpoint", f"sqlite:{path}", "--trace", str(trace)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"agentmesh: checkpoint sqlite:{path}: ")
    assert "Traceback" not in err
    assert "chat " not in (trace.read_text() if trace.exists() else ""), "no model was called"


class FailingSaver(InMemorySaver):
    """An in-memory store whose disk goes bad after ``good`` checkpoints."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    async def aput(self, *args: Any, **kwargs: Any) -> Any:
        if self.good <= 0:
            raise sqlite3.OperationalError("disk I/O error")
        self.good -= 1
        return await super().aput(*args, **kwargs)

    async def aget_tuple(self, config: Any) -> Any:
        if self.good <= 0:
            raise sqlite3.OperationalError("disk I/O error")
        return await super().aget_tuple(config)


def two_steps() -> Workflow:
    wf = Workflow("two", policy=Policy(strategy="cheapest"))
    wf.executor("a", prompt="execute_step", inputs={"question": "$input", "step": "$input"})
    wf.executor("b", prompt="execute_step", inputs={"question": "$input", "step": "$a"})
    wf.edge("a", "b")
    return wf


async def test_a_checkpoint_store_failing_mid_run_fails_the_run_naming_the_store() -> None:
    catalog = scripted_catalog(scripted_model("m", reply="fine"))
    async with Runtime.open(catalog) as runtime:
        result = await run_graph(two_steps().spec(), runtime, "q", checkpointer=FailingSaver(2))
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "checkpoint_error"
    assert result.error["message"] == (
        "checkpoint store (FailingSaver) failed: OperationalError: disk I/O error"
    )


class FlakyRedisState(InMemoryRoutingState):
    """A shared state whose Redis connection drops after ``good`` observations."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    async def observe(self, *args: Any, **kwargs: Any) -> ModelStats:
        if self.good <= 0:
            raise RedisConnectionError("Connection closed by server.")
        self.good -= 1
        return await super().observe(*args, **kwargs)


async def test_a_redis_error_inside_a_run_is_a_failed_run_not_an_exception() -> None:
    catalog = scripted_catalog(scripted_model("m", reply="fine"))
    async with Runtime.open(catalog, state=FlakyRedisState(1)) as runtime:
        result = await run_graph(two_steps().spec(), runtime, "q")
    assert result.status == "failed"
    assert result.error == {
        "type": "state_error",
        "message": "routing state (FlakyRedisState) failed: ConnectionError: "
        "Connection closed by server.",
        "node": "b",
    }
    assert [s["node"] for s in result.steps] == ["a"], "what finished is kept"


async def test_resuming_from_a_failing_store_is_a_run_error_naming_it() -> None:
    from agentmesh.graph import RunError

    catalog = scripted_catalog(scripted_model("m", reply="fine"))
    async with Runtime.open(catalog) as runtime:
        with pytest.raises(RunError, match=r"cannot resume run 'r1': checkpoint store \(Failing"):
            await run_graph(
                two_steps().spec(),
                runtime,
                None,
                checkpointer=FailingSaver(0),
                run_id="r1",
                resume=True,
            )


class _DroppedScript:
    async def __call__(self, **_: Any) -> Any:
        raise RedisConnectionError("Connection closed by server.")


class _DroppedRedis:
    """A Redis client whose every script fails as a dropped connection does."""

    def register_script(self, _: str) -> _DroppedScript:
        return _DroppedScript()

    async def aclose(self) -> None:
        return None


def test_redis_failures_mid_call_are_state_errors_and_ask_reports_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import contextlib

    from agentmesh import routing
    from agentmesh.routing import RedisRoutingState, StateError

    state = RedisRoutingState(_DroppedRedis())  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def dropped(_: str) -> Any:
        yield state

    monkeypatch.setattr(routing, "open_state", dropped)
    catalog = tmp_path / "models.yaml"
    catalog.write_text("models:\n  - {id: m, provider: scripted, model: m}\n")
    code = main(
        ["ask", "--prompt", "hi", "--models", str(catalog), "--state", "redis://127.0.0.1:1"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "routing state (Redis) failed in snapshot: ConnectionError" in err
    assert "Traceback" not in err

    import asyncio

    with pytest.raises(StateError, match="failed in observe"):
        asyncio.run(state.observe("m", latency_ms=1.0, error=None))
