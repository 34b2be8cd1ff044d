"""Real stores that are unreachable or go away mid-run: exit 2 before, a failed run after.

PostgreSQL on 127.0.0.1:5432 (or ``AGENTMESH_TEST_POSTGRES``); Redis on
127.0.0.1:6379 (or ``AGENTMESH_TEST_REDIS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from agentmesh.cli import main
from agentmesh.graph import Runtime, Workflow, open_checkpointer, run_graph
from agentmesh.routing import Policy
from agentmesh.testing import scripted_catalog, scripted_model
from tests.integration.conftest import free_port
from tests.integration.test_distributed import pg_schema, postgres_url  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_an_unreachable_postgres_exits_2_before_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.chdir(ROOT)
    url = f"postgresql://agentmesh:planted-pg-Passw0rd@127.0.0.1:{free_port()}/test"
    argv = ["run", "graphs/support_triage.yaml", "--models", "models/sim.yaml", "--input", "x"]
    code = main([*argv, "--checkpoint", url])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"agentmesh: checkpoint postgresql://***@127.0.0.1:{url.split(':')[3]}")
    assert "cannot use PostgreSQL" in err
    assert "planted-pg-Passw0rd" not in err
    assert "Traceback" not in err


def chain(n: int) -> Workflow:
    wf = Workflow("chain", policy=Policy(strategy="cheapest"))
    for i in range(1, n + 1):
        step = "$input" if i == 1 else f"$n{i - 1}"
        wf.executor(f"n{i}", prompt="execute_step", inputs={"question": "$input", "step": step})
        if i > 1:
            wf.edge(f"n{i - 1}", f"n{i}")
    return wf


async def test_postgres_going_away_mid_run_fails_the_run_naming_the_store(
    pg_schema: str,  # noqa: F811 (the fixture)
) -> None:
    import psycopg

    catalog = scripted_catalog(scripted_model("m", reply="fine"))
    async with open_checkpointer(pg_schema) as saver, Runtime.open(catalog) as runtime:
        backend = cast(Any, saver).conn.info.backend_pid  # an AsyncPostgresSaver

        def kill_after_first(step: dict[str, Any]) -> None:
            if step["node"] == "n1":  # the server drops the store's connection
                with psycopg.connect(postgres_url(), autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (backend,))

        result = await run_graph(
            chain(3).spec(), runtime, "q", checkpointer=saver, on_step=kill_after_first
        )
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "checkpoint_error"
    assert result.error["message"].startswith("checkpoint store (AsyncPostgresSaver) failed: ")


RUNS = 1000


async def test_a_thousand_concurrent_runs_on_redis_state_all_finish() -> None:
    import asyncio

    from agentmesh.routing import open_state
    from tests.integration.test_redis_state import REDIS_URL, require_redis, unique_prefix

    require_redis()
    catalog = scripted_catalog(scripted_model("m", reply="fine"))
    spec = chain(2).spec()
    prefix = unique_prefix("load")
    async with (
        open_state(f"{REDIS_URL}?prefix={prefix}&max_connections=32") as state,
        Runtime.open(catalog, state=state) as runtime,
    ):
        try:
            results = await asyncio.gather(
                *(run_graph(spec, runtime, f"q{i}", run_id=f"r{i}") for i in range(RUNS)),
                return_exceptions=True,
            )
        finally:
            await state.clear()  # type: ignore[attr-defined]
    raised = [r for r in results if isinstance(r, BaseException)]
    assert not raised, f"{len(raised)} of {RUNS} runs raised, e.g. {raised[0]!r}"
    statuses = [r.status for r in results if not isinstance(r, BaseException)]
    errors = {str(r.error)[:300] for r in results if not isinstance(r, BaseException) and r.error}
    assert statuses == ["ok"] * RUNS, errors


async def _pg_rows(url: str) -> str:
    import psycopg

    text: list[str] = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for table in ("checkpoints", "checkpoint_writes", "checkpoint_blobs"):
            cursor = await conn.execute(f"SELECT * FROM {table}")
            for row in await cursor.fetchall():
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else None
                    text.append(raw.decode("utf-8", "replace") if raw else str(value))
    return "\n".join(text)


def test_credentials_never_reach_postgres_checkpoints(
    pg_schema: str,  # noqa: F811 (the fixture)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A fallback's step keeps the failed attempt's message: it is stored masked."""
    import asyncio

    import httpx

    from agentmesh.models import _http as http_module
    from agentmesh.testing import openai_completion
    from tests.unit.test_secrets_urls import PLANTED, catalog

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "refused.example.test":
            told = f"url={request.url} headers={dict(request.headers)}"
            raise httpx.ConnectError(f"cannot connect: {told}", request=request)
        return openai_completion("fine")

    monkeypatch.setenv("PLANTED_URL", "http://planted-env-user:planted-env-Passw0rd@ok.test/v1")
    monkeypatch.setattr(
        http_module,  # what each event loop's pooled client is built by
        "default_http_client",
        lambda: httpx.AsyncClient(transport=httpx.MockTransport(answer)),
    )
    graph = tmp_path / "one.yaml"
    graph.write_text(
        "name: one\nnodes:\n  a: {kind: executor, prompt: execute_step, "
        "inputs: {question: $input, step: $input}}\n"
    )
    prompts = str(ROOT / "prompts")
    argv = ["run", str(graph), "--models", str(catalog(tmp_path)), "--prompts", prompts]
    code = main([*argv, "--input", "q", "--checkpoint", pg_schema, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "***@refused.example.test" in out, "the failed attempt is in the step, masked"
    stored = asyncio.run(_pg_rows(pg_schema))
    assert "refused.example.test" in stored, "the failed attempt was checkpointed"
    for value in PLANTED:
        assert value not in stored, f"{value!r} is in the checkpoint"
