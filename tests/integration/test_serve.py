"""``agentmesh serve`` under a real uvicorn on a free loopback port, called by real clients.

The unmodified ``openai`` SDK (sync, async, streaming, JSON schema), LangChain's
``ChatOpenAI`` and raw HTTP against the scripted catalog; a client that leaves
mid-stream; a scrape of ``/metrics``; and the server in front of a real
llama.cpp server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentmesh.models.tokens import estimate_tokens
from tests.integration.conftest import ROOT, free_port, require, serving

pytestmark = pytest.mark.integration

SIM = str(ROOT / "models" / "sim.yaml")

SLOW_STREAM = """
models:
  - id: slow
    provider: scripted
    model: slow
    tier: 1
    pricing: {input: 1.0, output: 2.0}
    capabilities: [json, streaming]
    behavior:
      reply: "{prompt} {prompt} {prompt} {prompt} {prompt} {prompt} {prompt} {prompt}"
      ms_per_output_token: 25
"""
"""A model that streams ~200 tokens over ~5 s: long enough to leave in the middle."""


def _serve(*args: str, log: Path) -> Iterator[str]:
    require(
        importlib.util.find_spec("uvicorn") is not None
        and importlib.util.find_spec("starlette") is not None,
        "the server extra is not installed (pip install 'agentmesh[server]')",
    )
    port = free_port()
    command = [sys.executable, "-m", "agentmesh", "serve", "--port", str(port), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    with serving(process, f"{base}/ready", log, "agentmesh serve"):
        yield base
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("serve")
    slow = folder / "slow.yaml"
    slow.write_text(SLOW_STREAM)
    yield from _serve("--models", SIM, "--graphs", str(ROOT / "graphs"), log=folder / "log")


def _agentmesh(*args: str) -> str:
    """Run the CLI in a new process; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "agentmesh", *args], env=env, capture_output=True, check=True
    )
    return done.stdout.decode()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """A server of the slow model with keys; yields its URL, the keys URL and one key."""
    folder = tmp_path_factory.mktemp("serve-slow")
    slow = folder / "slow.yaml"
    slow.write_text(SLOW_STREAM)
    keys = f"sqlite:{folder / 'keys.db'}"
    key = _agentmesh("keys", "create", "--keys", keys, "--budget", "1").strip()
    for base in _serve("--models", str(slow), "--keys", keys, log=folder / "log"):
        yield base, keys, key


def _metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


HELLO = [{"role": "user", "content": "Hello there"}]


def test_openai_sdk_sync_stream_and_json_schema(server: str) -> None:
    import openai

    sdk = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.headers["x-agentmesh-model"] == "sim-nano"
    assert raw.parse().choices[0].message.content == (
        "[simulated sim-nano] Short answer to: Hello there"
    )
    chunks = list(
        sdk.chat.completions.create(
            model="sim-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[simulated sim-mini] A concise answer to: Hello there"
    assert chunks[-1].usage is not None
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
        "additionalProperties": False,
    }
    shaped = sdk.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Plan a trip."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "trip", "schema": schema, "strict": True},
        },
    )
    assert set(json.loads(shaped.choices[0].message.content or "")) == {"city", "days"}


async def test_openai_sdk_async_and_langchain(server: str) -> None:
    import openai
    from langchain_openai import ChatOpenAI

    sdk = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    stream = await sdk.chat.completions.create(model="sim-4o", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "[simulated sim-4o] A careful, complete answer to: Hello there"
    chat = ChatOpenAI(model="graph:support_triage", base_url=f"{server}/v1", api_key="unused")  # type: ignore[arg-type]
    answer = await chat.ainvoke("I was charged twice for order A-1042.")
    assert json.loads(str(answer.content))["fields"]["order_id"] == "A-1042"


def test_raw_http_sse_and_errors(server: str) -> None:
    body = {"model": "sim-haiku", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{server}/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    last = json.loads(lines[-2][len("data: ") :])
    assert last["agentmesh"]["model"] == "sim-haiku"
    assert last["choices"][0]["finish_reason"] == "stop"
    bad = httpx.post(f"{server}/v1/chat/completions", content=b"{", timeout=5)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_json"
    huge = httpx.post(f"{server}/v1/chat/completions", content=b"x" * (5 * 1024 * 1024))
    assert huge.status_code == 413


def test_unsampled_traceparent_is_still_counted_in_metrics(server: str) -> None:
    before = _metric(server, "agentmesh_model_calls_total", model="sim-opus")
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"  # sampled flag off
    response = httpx.post(
        f"{server}/v1/chat/completions",
        json={"model": "sim-opus", "messages": HELLO},
        headers={"traceparent": parent},
    )
    assert response.status_code == 200
    assert response.headers["x-agentmesh-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert _metric(server, "agentmesh_model_calls_total", model="sim-opus") == before + 1


def test_a_client_leaving_mid_stream_cancels_the_upstream_call(
    slow_server: tuple[str, str, str],
) -> None:
    base, keys, key = slow_server
    body = {
        "model": "slow",
        "messages": [{"role": "user", "content": "count " * 20}],
        "stream": True,
    }
    started = time.monotonic()
    auth = {"authorization": f"Bearer {key}"}
    url = f"{base}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=auth) as response:
        lines = response.iter_lines()
        seen = [next(lines) for _ in range(6)]  # role chunk + a few deltas, then leave
    assert any('"content": "count' in line for line in seen)
    deadline = time.monotonic() + 10
    while _metric(base, "agentmesh_model_calls_total", outcome="cancelled") < 1:
        assert time.monotonic() < deadline, "the upstream call was not cancelled"
        time.sleep(0.05)
    held = _metric(base, "agentmesh_model_call_duration_seconds_sum", model="slow")
    assert held < 3.0  # the whole answer takes ~5 s: it stopped when the client left
    assert time.monotonic() - started < 5.0
    assert _metric(base, "agentmesh_server_requests_total", status="499") == 1
    (record,) = json.loads(_agentmesh("keys", "list", "--keys", keys, "--json"))
    whole = 1.0 * 30 / 1e6 + 2.0 * 200 / 1e6  # about what the complete answer would cost
    assert 0 < record["spent_usd"] < whole  # charged for what was generated, not nothing
    assert record["held_usd"] == 0
    # The routing side charged the cut call too (its chat span's cost, which the
    # router's budgets settle): the prompt and the words streamed. The key was
    # charged for the words the client was sent: they agree within the few
    # words in flight when the client left.
    routed = _metric(base, "agentmesh_model_cost_usd_total", model="slow")
    per_word = 2.0 * estimate_tokens("count ") / 1e6
    assert routed > 0
    assert abs(routed - record["spent_usd"]) <= 3 * per_word, (routed, record["spent_usd"])


@pytest.fixture(scope="module")
def llama_catalog(llama_server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve-llama") / "llama.yaml"
    path.write_text(
        "models:\n"
        "  - id: gemma-server\n    provider: openai\n    model: gemma\n"
        f"    base_url: {llama_server}\n    tier: 1\n    context_window: 1024\n"
        "    max_output_tokens: 64\n    capabilities: [streaming]\n"
    )
    return path


def test_in_front_of_a_real_llama_cpp_server(llama_catalog: Path, tmp_path: Path) -> None:
    import openai

    for base in _serve("--models", str(llama_catalog), log=tmp_path / "log"):
        sdk = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        asked = [{"role": "user", "content": "The capital of France is"}]
        raw = sdk.chat.completions.with_raw_response.create(
            model="gemma-server", messages=asked, max_tokens=16
        )
        assert raw.headers["x-agentmesh-model"] == "gemma-server"
        completion = raw.parse()
        assert completion.usage is not None
        assert completion.usage.completion_tokens > 0
        assert "x-agentmesh-simulated" not in raw.headers
        chunks = list(
            sdk.chat.completions.create(
                model="gemma-server", messages=asked, max_tokens=16, stream=True
            )
        )
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        assert _metric(base, "agentmesh_model_calls_total", model="gemma-server", outcome="ok") == 2


def test_run_metrics_port_is_scraped_during_a_run(tmp_path: Path) -> None:
    from tests.integration.conftest import FOUR_STEPS, SLOW_CATALOG

    (tmp_path / "slow.yaml").write_text(SLOW_CATALOG)
    (tmp_path / "four.yaml").write_text(FOUR_STEPS)
    port = free_port()
    command = [
        sys.executable, "-m", "agentmesh", "run", str(tmp_path / "four.yaml"),
        "--models", str(tmp_path / "slow.yaml"), "--input", "go", "--quiet",
        "--metrics-port", str(port),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    seen: list[float] = []
    try:
        while process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                seen.append(_metric(base, "agentmesh_model_calls_total", model="slow"))
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.05)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    assert seen, "the metrics endpoint never answered during the run"
    assert 0 < max(seen) <= 4  # calls were counted while the four-step run went on


def _key_store_url(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:{folder / 'keys.db'}"
    from tests.integration.test_distributed import postgres_url

    url = postgres_url()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # a clean table for this test
        for table in ("agentmesh_keys", "agentmesh_key_holds", "agentmesh_key_minutes"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    return url


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_key_budget_holds_across_two_server_processes(store: str, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.integration.test_distributed import require_redis

    require_redis()
    keys = _key_store_url(store, tmp_path)
    state = f"redis://127.0.0.1:6379/0?prefix=serve-{os.getpid()}-{store}:"
    budget = 0.0002
    key = _agentmesh("keys", "create", "--keys", keys, "--budget", str(budget)).strip()
    common = ("--models", SIM, "--state", state, "--keys", keys)
    with contextlib.ExitStack() as stack:
        bases = [
            stack.enter_context(contextlib.contextmanager(_serve)(*common, log=tmp_path / f"{n}"))
            for n in ("a", "b")
        ]

        def ask(n: int) -> tuple[int, float]:
            response = httpx.post(
                f"{bases[n % 2]}/v1/chat/completions",
                json={"model": "auto", "messages": HELLO, "max_tokens": 32},
                headers={"authorization": f"Bearer {key}"},
                timeout=30,
            )
            return response.status_code, float(response.headers.get("x-agentmesh-cost-usd", 0))

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(120)))
    statuses = [s for s, _ in answers]
    assert set(statuses) == {200, 429}  # served until the budget ran out, then refused
    spent = sum(c for s, c in answers if s == 200)
    (record,) = json.loads(_agentmesh("keys", "list", "--keys", keys, "--json"))
    assert record["spent_usd"] == pytest.approx(spent)
    assert spent <= budget  # both processes together never overspent the key
    assert record["held_usd"] == 0


def test_workers_share_the_state_and_the_keys(tmp_path: Path) -> None:
    from tests.integration.test_distributed import require_redis

    require_redis()
    keys = f"sqlite:{tmp_path / 'keys.db'}"
    key = _agentmesh("keys", "create", "--keys", keys).strip()
    state = f"redis://127.0.0.1:6379/0?prefix=serve-workers-{os.getpid()}:"
    args = ("--models", SIM, "--state", state, "--keys", keys, "--workers", "2")
    for base in _serve(*args, log=tmp_path / "log"):
        auth = {"authorization": f"Bearer {key}"}
        answers = [
            httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "sim-mini", "messages": HELLO},
                headers=auth,
                timeout=30,
            )
            for _ in range(6)
        ]
        assert [a.status_code for a in answers] == [200] * 6
    (record,) = json.loads(_agentmesh("keys", "list", "--keys", keys, "--json"))
    assert record["spent_usd"] == pytest.approx(
        sum(float(a.headers["x-agentmesh-cost-usd"]) for a in answers)
    )


def test_slow_and_vanishing_clients_never_get_a_500(server: str) -> None:
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(server)
    body = json.dumps({"model": "auto", "messages": HELLO}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {address.hostname}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head)
        for byte in body:  # the body one byte per write
            sock.sendall(bytes([byte]))
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 200"), answer[:200]
    before = _metric(server, "agentmesh_server_requests_total", status="499")
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])  # half a body, then gone
    deadline = time.monotonic() + 10
    while _metric(server, "agentmesh_server_requests_total", status="499") < before + 1:
        assert time.monotonic() < deadline, "the vanished client was not counted"
        time.sleep(0.05)
    assert httpx.get(f"{server}/health").status_code == 200
    assert _metric(server, "agentmesh_server_requests_total", status="500") == 0


def test_upstream_faults_through_the_servers_http_pool(tmp_path: Path) -> None:
    """Real HTTP faults through the server's aiohttp-backed pool keep their kinds and statuses."""
    from agentmesh.testing.fault_server import FaultPlan, FaultServer

    plans = {
        "limited": FaultPlan(mode="rate_limit", retry_after=90),
        "dropped": FaultPlan(mode="drop"),
        "broken": FaultPlan(mode="malformed"),
        "flaky": FaultPlan(mode="error", status=503, fail_first=1, fail_rate=0.0),
        "slow": FaultPlan(mode="slow", delay_s=5),
    }
    with FaultServer() as faults:
        models, policies = ["models:"], ["policies:"]
        for name, plan in plans.items():
            faults.plan(name, plan)
            models.append(
                f"  - {{id: {name}, provider: openai, model: m, base_url: "
                f"'{faults.base_url(name)}', tier: 1, timeout_s: 1, tags: [{name}]}}"
            )
            retry = "{retry: {max_attempts: 2, base_s: 0}}"
            policies.append(  # one model each, two attempts: no fallback hides the fault
                f"  {name}: {{allow_tags: [{name}], resilience: {retry}}}"
            )
        (tmp_path / "m.yaml").write_text("\n".join(models) + "\n")
        (tmp_path / "p.yaml").write_text("\n".join(policies) + "\n")
        args = ("--models", str(tmp_path / "m.yaml"), "--policies", str(tmp_path / "p.yaml"))
        for base in _serve(*args, log=tmp_path / "log"):

            def ask(name: str, base: str = base) -> httpx.Response:
                body = {"model": f"route:{name}", "messages": HELLO}
                return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)

            limited = ask("limited")
            assert limited.status_code == 429
            assert limited.headers["retry-after"] == "90"
            assert ask("slow").status_code == 504
            broken = ask("broken")
            assert broken.status_code == 502
            assert broken.json()["error"]["code"] == "malformed_response"
            dropped = ask("dropped")
            assert dropped.status_code == 502
            assert dropped.json()["error"]["code"] == "unavailable"
            flaky = ask("flaky")
            assert flaky.status_code == 200, flaky.text  # the 503 retried, then served
            assert flaky.headers["x-agentmesh-attempts"] == "2"
