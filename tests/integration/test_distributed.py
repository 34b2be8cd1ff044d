"""Many worker processes, one routing view: real Redis state, real PostgreSQL checkpoints.

(a) 8 processes x 50 concurrent runs share one global budget: the money spent
    never exceeds it (the bound is one in-flight call's worst case; atomic
    reservation makes it zero), and every reservation is settled.
(b) A breaker opened by one process is respected by another, already running
    process on its very next call.
(c) A run whose process is SIGKILLed mid-way resumes in another process from
    its PostgreSQL checkpoint without repeating finished model calls (and
    workers opening the checkpointer together all succeed).

Workers of (a) and (b) are separate processes forked from a forkserver (a
clean process that imported this module once); (c) runs the ``agentmesh`` CLI.
Each test uses its own Redis key prefix (and PostgreSQL schema) and removes
them afterwards.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from agentmesh.tracing import load_spans
from tests.integration.conftest import FOUR_STEPS, ROOT, SLOW_CATALOG, require
from tests.integration.test_redis_state import REDIS_URL, redis_problem, unique_prefix

POSTGRES_URLS = (
    [os.environ["AGENTMESH_TEST_POSTGRES"]]
    if os.environ.get("AGENTMESH_TEST_POSTGRES")
    else [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql://root@127.0.0.1:5432/test",
    ]
)
PROCESSES, RUNS_PER_PROCESS = 8, 50
GLOBAL_BUDGET_USD = 0.25
WORKER_TIMEOUT_S = 120.0

# (a): every call costs exactly its worst case -- the reply is longer than the node's
# output cap (so it is truncated to it), and the node reserves the prompt's tokens as
# the scripted model bills them (per-message overhead included) -- so any lost update
# or unguarded check would overspend.
BUDGET_CATALOG = """
models:
  - id: m
    provider: scripted
    model: m
    tier: 1
    pricing: {input: 10.0, output: 40.0}
    behavior: {reply: "%s", latency_ms: 15}
""" % ("lorem ipsum " * 40)

BUDGET_GRAPH = """
name: two_steps
nodes:
  n1:
    kind: executor
    prompt: execute_step
    inputs: {question: $input, step: "step 1"}
    max_output_tokens: 16
  n2:
    kind: executor
    prompt: execute_step
    inputs: {question: $input, step: "step 2"}
    max_output_tokens: 16
edges: [n1 -> n2]
"""

# (b): the same model ids in both processes; only the opener sees `primary` fail.
BREAKER_CATALOG = """
models:
  - id: primary
    provider: scripted
    model: primary
    tier: 1
    pricing: {input: 1.0, output: 1.0}
    behavior: {reply: "primary", down: %s}
  - id: backup
    provider: scripted
    model: backup
    tier: 1
    pricing: {input: 5.0, output: 5.0}
    behavior: {reply: "backup"}
"""


# --------------------------------------------------------------------------- helpers


def require_redis() -> None:
    problem = redis_problem()
    require(problem is None, problem or "")


def postgres_url() -> str:
    """A PostgreSQL URL that answers (skips, or fails in CI, when none does)."""
    try:
        import psycopg
    except ImportError:
        require(False, "the postgres extra is not installed (pip install 'agentmesh[postgres]')")
        raise
    problems = []
    for url in POSTGRES_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error as exc:
            problems.append(f"{url}: {str(exc).strip()}")
    require(False, "no PostgreSQL server answers (" + "; ".join(problems) + ")")
    raise AssertionError("unreachable")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A checkpoint URL whose tables live in a fresh schema, dropped afterwards."""
    import psycopg

    url = postgres_url()
    schema = f"agentmesh_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@asynccontextmanager
async def shared_state(prefix: str) -> AsyncIterator[Any]:
    """The test's own view of the workers' Redis state; its keys are deleted afterwards."""
    from agentmesh.routing import RedisRoutingState

    state = RedisRoutingState.from_url(REDIS_URL, prefix=prefix)
    try:
        yield state
    finally:
        await state.clear()
        await state.aclose()


# Workers are forked from a forkserver that has imported agentmesh once: eight
# processes importing LangGraph on two cores would otherwise take ~15 s to start.
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(
    [
        "tests.integration.test_distributed",
        "agentmesh.graph",
        "agentmesh.resilience",
        "agentmesh.routing.stores",
        "redis.asyncio",
    ]
)


class Worker:
    """One worker process, spoken to over a pipe."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    @classmethod
    def start(cls, role: str, config: dict[str, Any]) -> Worker:
        ours, theirs = CTX.Pipe()
        process = CTX.Process(target=_worker_main, args=(role, config, theirs), name=role)
        process.start()
        theirs.close()
        return cls(process, ours)

    async def read(self) -> Any:
        """The worker's next message (fails with its traceback if it died or stalled)."""
        if not await asyncio.to_thread(self.conn.poll, WORKER_TIMEOUT_S):
            self.process.kill()
            pytest.fail(f"worker {self.process.name} stalled")
        try:
            message = self.conn.recv()
        except EOFError:
            self.process.join(10)
            pytest.fail(f"worker {self.process.name} exited ({self.process.exitcode})")
        if isinstance(message, dict) and "crashed" in message:
            pytest.fail(f"worker {self.process.name} failed:\n{message['crashed']}")
        return message

    def send(self, message: Any) -> None:
        self.conn.send(message)

    async def finish(self) -> None:
        await asyncio.to_thread(self.process.join, WORKER_TIMEOUT_S)
        assert self.process.exitcode == 0, f"worker {self.process.name}: {self.process.exitcode}"
        self.conn.close()


# --------------------------------------------------------------------------- (a) budget


async def test_a_global_budget_shared_by_8_processes_is_never_overspent(tmp_path: Path) -> None:
    require_redis()
    (tmp_path / "models.yaml").write_text(BUDGET_CATALOG)
    (tmp_path / "graph.yaml").write_text(BUDGET_GRAPH)
    prefix = unique_prefix("budget")
    config = {
        "state": f"{REDIS_URL}?prefix={quote(prefix)}",
        "catalog": str(tmp_path / "models.yaml"),
        "graph": str(tmp_path / "graph.yaml"),
        "global_usd": GLOBAL_BUDGET_USD,
        "runs": RUNS_PER_PROCESS,
    }
    async with shared_state(prefix) as state:
        started = time.monotonic()
        workers = [Worker.start("budget", {**config, "name": f"w{i}"}) for i in range(PROCESSES)]
        for worker in workers:  # every process is up and compiled before any run starts
            assert await worker.read() == "ready"
        ready = time.monotonic()
        for worker in workers:
            worker.send("go")
        reports = [await worker.read() for worker in workers]
        finished = time.monotonic()
        for worker in workers:
            await worker.finish()
        spent = (await state.snapshot([], budget_keys=["global"])).spent["global"]

    runs = [run for report in reports for run in report["runs"]]
    assert len(runs) == PROCESSES * RUNS_PER_PROCESS
    refused = [r for r in runs if r["status"] == "failed"]
    assert {r["error"] for r in refused} <= {"budget_exceeded"}, refused[:3]
    worst = max(report["max_reserved_usd"] for report in reports)
    least = min(r["min_reserved_usd"] for r in reports if r["min_reserved_usd"] is not None)
    dearest = max(report["max_call_usd"] for report in reports)
    reported = sum(r["cost_usd"] for r in runs)
    calls = sum(r["calls"] for r in runs)
    figures = {
        "global_budget_usd": GLOBAL_BUDGET_USD,
        "spent_in_redis_usd": spent,
        "sum_of_run_costs_usd": reported,
        "overshoot_usd": max(spent, reported) - GLOBAL_BUDGET_USD,
        "bound_one_worst_case_usd": worst,
        "calls": calls,
        "runs_ok": len(runs) - len(refused),
        "runs_refused": len(refused),
        "refused_reservations": sum(report["refusals"] for report in reports),
        "max_call_cost_usd": dearest,
        "startup_s": round(ready - started, 2),
        "runs_s": round(finished - ready, 2),
    }
    print("\nbudget figures:", json.dumps(figures))
    # Each call cost at most what was reserved for it: reservations are true worst cases.
    assert dearest <= least * (1 + 1e-12), figures
    # The demand really exceeded the budget, and the budget was used to within one call.
    assert refused, "the budget must run out for the test to mean anything"
    assert spent > GLOBAL_BUDGET_USD - worst, figures
    # Never beyond the budget: the bound is one worst case; atomic reservation gives 0.
    assert figures["overshoot_usd"] <= 1e-9, figures
    assert spent <= GLOBAL_BUDGET_USD + 1e-9, figures
    assert reported <= GLOBAL_BUDGET_USD + 1e-9, figures
    # Every reservation was settled to the actual cost: Redis holds exactly what runs report.
    assert spent == pytest.approx(reported, abs=1e-9), figures


async def _budget_worker(config: dict[str, Any], conn: Connection) -> None:
    from agentmesh.graph import GraphRunner, Runtime, load_graph
    from agentmesh.models import load_catalog
    from agentmesh.routing import BudgetLimits, open_state

    loaded = load_graph(config["graph"])
    async with (
        open_state(config["state"]) as state,
        Runtime.open(
            load_catalog(config["catalog"]),
            prompts=ROOT / "prompts",
            state=state,
            budgets=BudgetLimits(global_usd=config["global_usd"]),
        ) as runtime,
    ):
        reserved: list[float] = []
        refusals = 0
        reserve = state.reserve

        async def recording(limits: Any, amount: float, **lease: Any) -> str | None:
            nonlocal refusals
            refused = await reserve(limits, amount, **lease)
            if refused is None:
                reserved.append(amount)
            refusals += refused is not None
            return refused

        state.reserve = recording  # type: ignore[method-assign]
        runner = GraphRunner(loaded.spec, runtime, locate=loaded.locate)
        conn.send("ready")
        await asyncio.to_thread(conn.recv)
        results = await asyncio.gather(
            *(
                # one input for every run: every call then has the same worst case
                runner.run("question", run_id=f"{config['name']}-{i}")
                for i in range(config["runs"])
            )
        )
    conn.send(
        {
            "runs": [
                {
                    "status": r.status,
                    "cost_usd": r.cost_usd,
                    "error": r.error["type"] if r.error else None,
                    "calls": sum(1 for s in r.steps for a in s["attempts"] if a["model"]),
                }
                for r in results
            ],
            "max_reserved_usd": max(reserved, default=0.0),
            "min_reserved_usd": min(reserved, default=None),
            "max_call_usd": max(
                (a["cost_usd"] for r in results for s in r.steps for a in s["attempts"]),
                default=0.0,
            ),
            "refusals": refusals,
        }
    )


# --------------------------------------------------------------------------- (b) breakers


async def test_a_breaker_opened_by_one_process_is_respected_by_another_on_its_next_call(
    tmp_path: Path,
) -> None:
    require_redis()
    for name, down in (("healthy", "false"), ("failing", "true")):
        (tmp_path / f"{name}.yaml").write_text(BREAKER_CATALOG % down)
    prefix = unique_prefix("breaker")
    state_url = f"{REDIS_URL}?prefix={quote(prefix)}"
    async with shared_state(prefix) as state:
        observer = Worker.start(
            "observe", {"state": state_url, "catalog": str(tmp_path / "healthy.yaml")}
        )
        before = await observer.read()
        assert before["model"] == "primary", "the cheaper model serves while it is healthy"
        assert before["attempted"] == ["primary"]

        opener = Worker.start(
            "open", {"state": state_url, "catalog": str(tmp_path / "failing.yaml")}
        )
        opened = await opener.read()
        await opener.finish()
        assert opened["breaker"]["state"] == "open", opened
        assert opened["calls"] == 2, "threshold 2: the second failure opens it"
        stored = (await state.snapshot(["primary"])).breakers["primary"]
        assert stored.state == "open"

        observer.send("go")  # the observer's very next call
        after = await observer.read()
        await observer.finish()
    assert after["model"] == "backup", after
    assert after["attempted"] == ["backup"], "the open breaker is not even tried"
    assert {"model": "primary", "by": "health"} in [
        {"model": e["model"], "by": e["by"]} for e in after["excluded"]
    ], after
    assert any("circuit open" in e["why"] for e in after["excluded"]), after


def _caller(catalog: Any, state: Any, gateway: Any) -> Any:
    from agentmesh.resilience import ResiliencePolicy, ResilientCaller
    from agentmesh.resilience.policy import BreakerPolicy, RetryPolicy
    from agentmesh.routing import Policy, Router

    policy = ResiliencePolicy(
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(failure_threshold=2, cooldown_s=600, window_s=600),
    )
    return ResilientCaller(Router(catalog, state=state, policy=Policy(strategy="cheapest")),
                           gateway, policy)  # fmt: skip


async def _one_call(caller: Any, n: int) -> Any:
    from agentmesh.models import ModelRequest
    from agentmesh.resilience import Call
    from agentmesh.routing import RouteRequest

    request = RouteRequest(node="ask", role="executor", prompt=f"hello {n}", max_output_tokens=8)
    return await caller.call(Call(request, ModelRequest.of(f"hello {n}", max_tokens=8)))


def _call_report(result: Any) -> dict[str, Any]:
    return {
        "model": result.model,
        "attempted": [a.model for a in result.attempts],
        "excluded": [
            {"model": e.model, "by": e.by, "why": e.why} for e in result.decision.excluded
        ],
    }


async def _observe_worker(config: dict[str, Any], conn: Connection) -> None:
    from agentmesh.models import Gateway, load_catalog
    from agentmesh.routing import open_state

    catalog = load_catalog(config["catalog"])
    async with open_state(config["state"]) as state, Gateway(catalog) as gateway:
        caller = _caller(catalog, state, gateway)
        conn.send(_call_report(await _one_call(caller, 1)))
        await asyncio.to_thread(conn.recv)
        conn.send(_call_report(await _one_call(caller, 2)))


async def _open_worker(config: dict[str, Any], conn: Connection) -> None:
    from agentmesh.models import Gateway, load_catalog
    from agentmesh.routing import open_state

    catalog = load_catalog(config["catalog"])
    async with open_state(config["state"]) as state, Gateway(catalog) as gateway:
        caller = _caller(catalog, state, gateway)
        for calls in range(1, 11):
            await _one_call(caller, calls)  # primary fails, backup answers
            breaker = (await state.snapshot(["primary"])).breakers.get("primary")
            if breaker is not None:
                conn.send({"calls": calls, "breaker": {"state": breaker.state}})
                return
        conn.send({"calls": calls, "breaker": {"state": "closed"}})


# --------------------------------------------------------------------------- (c) kill/resume


def _agentmesh(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentmesh", *args]


async def test_a_sigkilled_run_resumes_in_another_process_from_postgres(
    tmp_path: Path, pg_schema: str
) -> None:
    require_redis()
    catalog, graph = tmp_path / "models.yaml", tmp_path / "graph.yaml"
    catalog.write_text(SLOW_CATALOG)
    graph.write_text(FOUR_STEPS)
    prefix = unique_prefix("resume")
    run_id = f"kill-{uuid.uuid4().hex[:8]}"
    common = [
        "--models", str(catalog),
        "--checkpoint", pg_schema,
        "--state", f"{REDIS_URL}?prefix={quote(prefix)}",
        "--budget", "1",
    ]  # fmt: skip
    async with shared_state(prefix) as state:
        first = await asyncio.create_subprocess_exec(
            *_agentmesh("run", str(graph), *common, "--run-id", run_id, "--input", "q"),
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert first.stderr is not None
        seen: list[str] = []
        try:
            async with asyncio.timeout(60):
                while line := (await first.stderr.readline()).decode():
                    seen.append(line)  # progress: one line per finished step
                    if line.startswith("✓ n2 "):
                        first.send_signal(signal.SIGKILL)
                        break
        finally:
            if first.returncode is None:
                first.kill()
            await first.wait()
        assert first.returncode == -signal.SIGKILL, seen
        calls_before = (await state.snapshot(["slow"])).stats["slow"].calls
        assert calls_before in (2, 3), "n1 and n2 were recorded (n3 maybe) before the kill"

        trace = tmp_path / "resume.jsonl"
        second = await asyncio.create_subprocess_exec(
            *_agentmesh("run", str(graph), *common, "--resume", run_id, "--json", "--trace",
                        str(trace)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )  # fmt: skip
        out, err = await asyncio.wait_for(second.communicate(), 120)
        assert second.returncode == 0, err.decode()
        calls_after = (await state.snapshot(["slow"])).stats["slow"].calls

    result = json.loads(out)
    assert result["status"] == "ok"
    assert result["resumed"] is True
    assert [s["node"] for s in result["steps"]] == ["n1", "n2", "n3", "n4"]
    called = [
        s.attributes.get("agentmesh.node.name")
        for s in load_spans(trace)
        if s.name.startswith("chat ")
    ]
    assert "n1" not in called, f"n1 finished before the kill and must not be called again: {called}"
    assert called[-2:] == ["n3", "n4"]
    assert len(called) <= 3, "at most the step running at the kill (n2's checkpoint) is redone"
    # Both processes recorded their calls in the one shared view.
    assert calls_after == calls_before + len(called)
    assert calls_after <= 5
    _assert_checkpointed_in(pg_schema, run_id)


async def test_workers_starting_together_all_open_postgres_checkpoints(pg_schema: str) -> None:
    """The first-time table setup is serialized: no worker fails on duplicate tables."""
    from agentmesh.graph import open_checkpointer

    async def open_one() -> str:
        async with open_checkpointer(pg_schema) as saver:
            return type(saver).__name__

    opened = await asyncio.gather(*(open_one() for _ in range(8)), return_exceptions=True)
    assert opened == ["AsyncPostgresSaver"] * 8, opened


def _assert_checkpointed_in(url: str, run_id: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (run_id,)
        ).fetchone()
    assert row is not None
    assert row[0] >= 4, "every step of the run was checkpointed in this test's schema"


# --------------------------------------------------------------------------- worker entry

WORKERS = {"budget": _budget_worker, "observe": _observe_worker, "open": _open_worker}


def _worker_main(role: str, config: dict[str, Any], conn: Connection) -> None:
    """A worker process's body; a crash is reported over the pipe with its traceback."""
    try:
        asyncio.run(WORKERS[role](config, conn))
    except BaseException:
        conn.send({"crashed": traceback.format_exc()})
        raise
    finally:
        conn.close()
