"""``agentmesh trace show|summary|export`` answer: which model, why, at what cost, what failed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agentmesh import tracing
from agentmesh.cli import main
from agentmesh.models import Gateway, ModelError, ModelRequest
from agentmesh.routing import Policy, Router, RouteRequest
from agentmesh.testing import scripted_catalog, scripted_model


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _step(
    router: Router, gateway: Gateway, node: str, run_id: str, *, escalation: int = 0
) -> None:
    """One node: a decision, then its models in order until one answers."""
    with tracing.node_span(node, "executor"):
        decision = await router.route(
            RouteRequest(node=node, prompt=f"do {node}", run_id=run_id, escalation=escalation),
            Policy(strategy="cheapest"),
        )
        previous = None
        for attempt, model in enumerate((decision.chosen, *decision.fallbacks), start=1):
            attrs = tracing.attempt_attributes(
                attempt=attempt,
                fallback=previous is not None,
                fallback_from=previous,
                escalation=escalation,
                node=node,
                decision_id=decision.decision_id,
                run_id=run_id,
            )
            try:
                await gateway.invoke(model, ModelRequest.of(f"do {node}"), attributes=attrs)
                return
            except ModelError as error:
                tracing.record_fallback(model, decision.fallbacks[0], error.kind, node=node)
                previous = model


@pytest.fixture
async def trace_file(tmp_path: Path) -> Path:
    """Two runs of a two-node workflow; ``cheap`` is rate limited on its first call."""
    cat = scripted_catalog(
        scripted_model(
            "cheap",
            fail_first=1,
            fail_with="rate_limit",
            fields={"pricing": {"input": 1, "output": 2}},
        ),
        scripted_model("strong", tier=2, fields={"pricing": {"input": 10, "output": 20}}),
    )
    router = Router(cat)
    path = tmp_path / "trace.jsonl"
    with tracing.configure(jsonl=path):
        async with Gateway(cat) as gateway:
            for run_id in ("r1", "r2"):
                with tracing.workflow_span("research", run_id=run_id):
                    await _step(router, gateway, "plan", run_id)
                    await _step(router, gateway, "answer", run_id, escalation=1)
    return path


async def test_show_renders_each_run_as_a_tree(
    capsys: pytest.CaptureFixture[str], trace_file: Path
) -> None:
    code, out, _ = run(capsys, "trace", "show", str(trace_file), "--run", "r1")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("trace ")
    assert "run r1" in lines[0]
    assert "3 calls (1 failed)" in lines[0]
    text = "\n".join(lines)
    assert "└─ workflow research  run r1" in text
    assert "node plan (executor)" in text
    assert "route plan: cheap by cheapest  (2 candidates)" in text
    assert "why: cheapest capable: cheap" in text
    assert "attempt 1 cheap" in text
    assert "ERROR rate_limited: cheap: simulated rate_limit (HTTP 429)" in text
    assert (
        "* fallback fallback.from=cheap, fallback.to=strong, fallback.reason=rate_limited" in text
    )
    fallback = next(line for line in lines if "attempt 2 strong" in line)
    assert "[fallback]" in fallback
    assert " ok " in fallback
    assert "tokens " in fallback
    assert "$0.0" in fallback
    assert "route answer: strong by cheapest [escalation 1]  (1 candidates, 1 excluded)" in text
    route_at = next(i for i, line in enumerate(lines) if "route plan:" in line)
    attempt_at = next(i for i, line in enumerate(lines) if "attempt 1 cheap" in line)
    assert attempt_at > route_at
    assert len(lines[attempt_at]) - len(lines[attempt_at].lstrip("│ ├└─")) > len(
        lines[route_at]
    ) - len(lines[route_at].lstrip("│ ├└─")), "attempts are drawn under their decision"
    assert "run r2" not in text


async def test_show_without_run_prints_every_trace(
    capsys: pytest.CaptureFixture[str], trace_file: Path
) -> None:
    _, out, _ = run(capsys, "trace", "show", str(trace_file))
    assert out.count("\ntrace ") + out.startswith("trace ") == 2


async def test_show_json_is_each_run_s_tree_of_spans(
    capsys: pytest.CaptureFixture[str], trace_file: Path
) -> None:
    code, out, err = run(capsys, "trace", "show", str(trace_file), "--run", "r1", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["file"] == str(trace_file)
    (trace,) = data["traces"]
    assert trace["run_id"] == "r1"
    assert len(trace["trace_id"]) == 32
    (workflow,) = trace["spans"]
    assert (workflow["type"], workflow["attributes"]["agentmesh.run.id"]) == ("workflow", "r1")
    plan, answer = workflow["children"]
    assert (plan["type"], plan["node"], answer["node"]) == ("node", "plan", "answer")
    route, first, second = plan["children"]
    assert route["type"] == "route"
    assert route["attributes"]["agentmesh.route.chosen"] == "cheap"
    assert (first["type"], first["model"], first["status"]) == ("chat", "cheap", "ERROR")
    assert first["error"] == "cheap: simulated rate_limit (HTTP 429)"
    assert (first["decision"], second["decision"]) == (route["span_id"], route["span_id"])
    assert (second["model"], second["status"], second["error"]) == ("strong", "UNSET", None)
    assert [e["name"] for e in plan["events"]] == ["agentmesh.fallback"]
    assert plan["events"][0]["attributes"]["agentmesh.fallback.to"] == "strong"
    assert all(s["duration_ms"] >= 0 for s in (workflow, plan, route, first, second))


async def test_show_and_summary_json_report_an_unknown_run_as_json(
    capsys: pytest.CaptureFixture[str], trace_file: Path
) -> None:
    for command in ("show", "summary"):
        code, out, err = run(capsys, "trace", command, str(trace_file), "--run", "x", "--json")
        assert code == 2
        assert json.loads(out)["error"] == {
            "type": "unknown_run",
            "message": f"{trace_file}: no run or trace 'x'",
        }
        assert "no run or trace 'x'" in err


async def test_summary_json_has_the_operator_figures(
    capsys: pytest.CaptureFixture[str], trace_file: Path
) -> None:
    code, out, _ = run(capsys, "trace", "summary", str(trace_file), "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["traces"], data["runs"]) == (2, 2)
    plan, answer = data["nodes"]["plan"], data["nodes"]["answer"]
    assert plan["decisions"] == 2
    assert plan["routing"] == {"cheap": {"decisions": 2, "share": 1.0}}
    assert (plan["calls"], plan["errors"], plan["fallbacks"]) == (3, 1, 1)
    assert plan["fallback_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert plan["escalation_rate"] == 0.0
    assert answer["escalation_rate"] == 1.0
    assert plan["models"]["cheap"]["error_types"] == {"rate_limited": 1}
    cheap, strong = data["models"]["cheap"], data["models"]["strong"]
    assert (cheap["decisions"], cheap["calls"], cheap["errors"]) == (2, 2, 1)
    assert (strong["decisions"], strong["calls"], strong["fallbacks"]) == (2, 3, 1)
    assert answer["routing"] == {"strong": {"decisions": 2, "share": 1.0}}
    assert cheap["latency_ms"]["p50"] is not None
    assert cheap["latency_ms"]["p95"] >= cheap["latency_ms"]["p50"]
    totals = data["totals"]
    assert totals["calls"] == 5
    assert totals["cost_usd"] == pytest.approx(cheap["cost_usd"] + strong["cost_usd"])
    assert totals["input_tokens"] == plan["input_tokens"] + answer["input_tokens"]


async def test_summary_text_and_run_filter(
    capsys: pytest.CaptureFixture[str], trace_file: Path
) -> None:
    code, out, _ = run(capsys, "trace", "summary", str(trace_file), "--run", "r2")
    assert code == 0
    assert out.startswith("1 traces (1 runs)")
    assert "NODE" in out
    assert "MODEL" in out
    assert "P95 MS" in out
    assert any(line.startswith("cheap ") for line in out.splitlines())


def test_percentile_is_nearest_rank() -> None:
    from agentmesh.tracing.summary import percentile

    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0


def test_a_bad_line_exits_2_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"name": "x"}\n')
    code, _, err = run(capsys, "trace", "show", str(path))
    assert code == 2
    assert f"{path}:1: trace_id must be 32 hex digits" in err
    code, _, err = run(capsys, "trace", "summary", str(tmp_path / "missing.jsonl"))
    assert code == 2
    assert "missing.jsonl" in err


async def test_an_unknown_run_exits_2(capsys: pytest.CaptureFixture[str], trace_file: Path) -> None:
    code, _, err = run(capsys, "trace", "show", str(trace_file), "--run", "nope")
    assert code == 2
    assert "no run or trace 'nope'" in err


async def test_a_trace_without_workflow_renders_its_roots(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cat = scripted_catalog(scripted_model("m"))
    path = tmp_path / "ask.jsonl"
    with tracing.configure(jsonl=path, batch=False), tracing.span("agentmesh ask"):
        decision = await Router(cat).route(RouteRequest(node="ask", prompt="hi"))
        async with Gateway(cat) as gateway:
            await gateway.invoke(decision.chosen, ModelRequest.of("hi"))
    code, out, _ = run(capsys, "trace", "show", str(path))
    assert code == 0
    assert "└─ agentmesh ask" in out
    assert "route ask: m by round_robin" in out or "route ask: m by" in out
    assert "call m" in out


class Collecting(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.closed = True


async def test_export_replays_the_file_to_the_otlp_endpoint(
    capsys: pytest.CaptureFixture[str], trace_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = Collecting()
    seen: dict[str, object] = {}

    def fake(endpoint: str, *, headers: dict[str, str]) -> Collecting:
        seen.update(endpoint=endpoint, headers=headers)
        return sink

    monkeypatch.setattr(tracing, "otlp_span_exporter", fake)  # what the handler imports
    code, _, err = run(
        capsys,
        "trace",
        "export",
        str(trace_file),
        "--otlp-endpoint",
        "http://collector:4318",
        "--header",
        "x-team=core",
    )
    assert code == 0
    assert seen == {"endpoint": "http://collector:4318", "headers": {"x-team": "core"}}
    assert len(sink.spans) == len(tracing.load_spans(trace_file))
    assert sink.closed
    assert "exported" in err
    code, _, err = run(
        capsys, "trace", "export", str(trace_file), "--otlp-endpoint", "u", "--header", "bad"
    )
    assert code == 2
    assert "NAME=VALUE" in err
