"""The peer arms of benchmarks/node_overhead.py: stub reply rules, the pool, the report."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def _importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the benchmarks import their _helpers


def module(name: str) -> ModuleType:
    return importlib.import_module(name)


def content(response: bytes) -> str:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert f"content-length: {len(body)}".encode() in head
    text: str = json.loads(body)["choices"][0]["message"]["content"]
    return text


def test_the_first_matching_reply_rule_answers_and_others_get_ok() -> None:
    stub = module("_stub_server")
    rules = stub.completion_responses([("Question:", '{"steps": ["a"]}'), ("Step", "second")])
    planner = json.dumps({"messages": [{"role": "user", "content": "Question: why? Step"}]})
    executor = json.dumps({"messages": [{"role": "user", "content": "Step to carry out: x"}]})
    other = json.dumps({"messages": [{"role": "user", "content": "question: lower case"}]})
    assert content(stub.answer(planner.encode(), rules)) == '{"steps": ["a"]}'
    assert content(stub.answer(executor.encode(), rules)) == "second"
    assert content(stub.answer(other.encode(), rules)) == "ok"
    assert stub.answer(other.encode(), ()) == stub.answer(other.encode(), rules)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        (b"127.0.0.1", True),
        (None, True),
        ("10.0.0.1", False),
        ("raw.githubusercontent.com", False),
        ("8.8.8.8", False),
        (12, False),
    ],
)
def test_only_loopback_hosts_pass_the_network_guard(host: object, local: bool) -> None:
    assert module("_peer_stack")._is_loopback(host) is local


def test_the_pool_is_two_openai_entries_on_the_stub_priced_as_litellm_is() -> None:
    stack = module("_peer_stack")
    catalog = stack.stub_catalog("http://127.0.0.1:1/v1", "arm-x")
    assert [s.id for s in catalog.specs] == ["cheap", "dear"]
    for spec, model in zip(catalog.specs, stack.POOL, strict=True):
        assert spec.provider.value == "openai"
        assert spec.base_url == "http://127.0.0.1:1/v1"
        assert spec.headers == {stack.ARM_HEADER: "arm-x"}
        assert spec.pricing.input == model.input_per_m
        deployment = stack._deployment("http://127.0.0.1:1/v1", "arm-x", model.id, model)
        params = deployment["litellm_params"]
        assert params["api_base"] == spec.base_url
        assert params["input_cost_per_token"] == pytest.approx(spec.pricing.input / 1e6)
        assert params["output_cost_per_token"] == pytest.approx(spec.pricing.output / 1e6)


def result(us_per_node: dict[str, float], nodes: int = 10, executed: int = 100) -> dict[str, Any]:
    """A child's result whose every run of chain10 took ``us_per_node * nodes``."""
    times = {"chain10": {mode: [int(us * nodes * 1000)] * 3 for mode, us in us_per_node.items()}}
    return {"times_ns": times, "cpu_ns": times, "node_executions": executed, "network": {}}


def test_the_peer_report_puts_the_arms_side_by_side_with_the_target_ratio() -> None:
    arms = module("_peer_arms")
    round_ = {
        "peer_raw": result({"httpx": 100.0, "gateway": 110.0}),
        "peer_litellm": result({"router": 400.0, "latency": 500.0}) | {"litellm": "1.0"},
        "peer_litellm_otel": result({"router": 600.0}) | {"spans_written": 200},
        "peer_agentmesh_off": result({"runner": 150.0, "runner_latency": 160.0}),
        "peer_agentmesh_on": result({"runner": 250.0}) | {"spans_written": 300},
    }
    stats = {"requests": {"peer_raw": 100, "peer_litellm": 120}}
    report = arms.peer_report([round_, round_], {"chain10": 10}, stats)
    shape = report["shapes"]["chain10"]
    assert shape["per_node_us"]["litellm"] == 400.0
    assert shape["ratios"]["agentmesh_off / litellm"] == 0.375
    assert shape["ratios"]["agentmesh_off / raw_httpx"] == 1.5
    assert shape["ratios"]["agentmesh_on / litellm_otel"] == pytest.approx(0.417)
    assert report["target"]["meets"] is True
    assert report["litellm"] == "1.0"
    assert report["stub_requests"]["peer_litellm"]["requests_per_node"] == 0.6
    assert (
        report["tracing"]["peer_agentmesh_on"]["spans_per_node"] == 3.0
    )  # 2 rounds x 300 spans / 200 nodes
    row = report["table"][1].split()
    assert row == ["chain10", "100.0", "400.0", "600.0", "150.0", "250.0", "0.375x", "1.500x"]


def test_the_target_fails_when_agentmesh_is_over_half_litellm_or_litellm_did_not_run() -> None:
    arms = module("_peer_arms")
    slow = {
        "peer_litellm": result({"router": 200.0}),
        "peer_agentmesh_off": result({"runner": 150.0}),
    }
    assert arms.peer_report([slow], {"chain10": 10}, {})["target"]["meets"] is False
    skipped = {"peer_litellm": {"skipped": "litellm is not installed"}}
    skipped |= {"peer_agentmesh_off": result({"runner": 150.0})}
    report = arms.peer_report([skipped], {"chain10": 10}, {})
    assert report["target"]["meets"] is False
    assert report["litellm"] == "litellm is not installed"
