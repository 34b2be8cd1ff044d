"""A workflow run exported over OTLP/HTTP shows up in Arize Phoenix, read back through its API.

Phoenix (extra ``phoenix``) is started once per session on loopback, storing in
SQLite in a temporary folder, on free ports; a run of
``graphs/research_report.yaml`` on the simulated pool is exported to it with
the OTLP/HTTP span exporter, and Phoenix's REST API must then return the run's
agent span per node execution, the models, tokens, cost and route reasons, and
the judge's ``gen_ai.evaluation.result`` events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh import tracing
from agentmesh.graph import Runtime, load_graph, run_graph
from agentmesh.models import load_catalog
from agentmesh.prompts import PromptLibrary

from .conftest import ROOT, free_port, require

pytestmark = pytest.mark.integration

STARTUP_S = 180.0
"""Phoenix runs its SQLite migrations on start: ~30 s on a loaded two-core machine."""
QUESTION = "Should a 12-person company move its file storage to the cloud?"


def _phoenix_command() -> list[str]:
    script = Path(sys.executable).parent / "phoenix"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "phoenix.server.main", "serve"]


@pytest.fixture(scope="session")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Phoenix server on 127.0.0.1 (started here, stopped after the session)."""
    try:  # the distribution, not an import: importing phoenix loads its whole server
        metadata.distribution("arize-phoenix")
        installed = True
    except metadata.PackageNotFoundError:
        installed = False
    require(installed, "Arize Phoenix is not installed (pip install 'agentmesh[phoenix]')")
    home = tmp_path_factory.mktemp("phoenix")
    port = free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(home),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{home / 'phoenix.db'}",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        _phoenix_command(), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if server.poll() is not None:
                tail = (home / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"phoenix serve exited with {server.returncode}:\n{tail}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"phoenix serve did not answer on {url} within {STARTUP_S:.0f} s")
            time.sleep(0.25)  # polling a starting server, not waiting out a race
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _spans_of(url: str, trace_id: str, expected: int) -> list[dict[str, Any]]:
    """The spans of ``trace_id`` in Phoenix's default project, once all ``expected`` arrived."""
    deadline = time.monotonic() + 30
    while True:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            reply = httpx.get(f"{url}/v1/projects/default/spans", params=params, timeout=10)
            reply.raise_for_status()
            page = reply.json()
            found += [s for s in page["data"] if s["context"]["trace_id"] == trace_id]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.2)  # Phoenix inserts spans from a queue: poll until they are in


async def test_a_run_exported_over_otlp_reads_back_from_phoenix(phoenix: str) -> None:
    loaded = load_graph(ROOT / "graphs/research_report.yaml")
    catalog = load_catalog(ROOT / "models/sim.yaml")
    otlp = tracing.otlp_span_exporter(phoenix)
    local = InMemorySpanExporter()  # what the run produced: Phoenix must have all of it
    with tracing.configure(exporters=[otlp, local], batch=False):
        async with Runtime.open(catalog, prompts=PromptLibrary()) as runtime:
            result = await run_graph(loaded.spec, runtime, QUESTION, locate=loaded.locate)
    assert result.status == "ok", result.error
    exported = local.get_finished_spans()
    (root,) = [s for s in exported if s.name == "invoke_workflow research_report"]
    trace_id = f"{root.context.trace_id:032x}"
    ours = [s for s in exported if s.context.trace_id == root.context.trace_id]

    spans = _spans_of(phoenix, trace_id, len(ours))
    assert len(spans) == len(ours)
    by_op: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_op.setdefault(span["attributes"].get("gen_ai.operation.name", "route"), []).append(span)
    (workflow,) = by_op["invoke_workflow"]
    assert workflow["attributes"]["gen_ai.conversation.id"] == result.run_id

    # one agent span per node execution, named after the node
    agents = by_op["invoke_agent"]
    executions = [s for s in result.steps if s["kind"] != "judge"]
    judge_spans = [a for a in agents if a["attributes"]["agentmesh.node.kind"] == "judge"]
    assert len(agents) - len(judge_spans) == len(executions)
    assert {a["attributes"]["gen_ai.agent.name"] for a in agents} == {
        "plan",
        "research",
        "check",
        "report",
    }
    assert all(a["name"] == f"invoke_agent {a['attributes']['gen_ai.agent.name']}" for a in agents)

    # models, tokens and cost of every call, and the total matches the run's
    chats = by_op["chat"]
    assert {c["attributes"]["agentmesh.model_id"] for c in chats} == {
        s["model"] for s in result.steps if s["model"]
    }
    assert all(c["attributes"]["gen_ai.usage.input_tokens"] > 0 for c in chats)
    assert all(c["attributes"]["gen_ai.usage.output_tokens"] > 0 for c in chats)
    cost = sum(c["attributes"]["agentmesh.cost_usd"] for c in chats)
    assert cost == pytest.approx(result.cost_usd)

    # every routing decision's chosen model and reason
    routes = [s for s in by_op["route"] if s["name"].startswith("route ")]
    assert len(routes) == len(chats)  # the simulated pool serves every first attempt
    assert all(r["attributes"]["agentmesh.route.reason"] for r in routes)
    assert {r["attributes"]["agentmesh.route.chosen"] for r in routes} == {
        c["attributes"]["agentmesh.model_id"] for c in chats
    }

    # the judge's verdicts as evaluation events
    events = [
        e for j in judge_spans for e in j["events"] if e["name"] == "gen_ai.evaluation.result"
    ]
    verdicts = [s["verdict"] for s in result.steps if s["kind"] == "judge"]
    assert len(events) == len(verdicts) > 0
    assert sorted(e["attributes"]["gen_ai.evaluation.score.label"] for e in events) == sorted(
        "pass" if v["passed"] else "fail" for v in verdicts
    )
    assert all(e["attributes"]["agentmesh.evaluation.node"] == "research" for e in events)
