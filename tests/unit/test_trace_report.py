"""``agentmesh trace report``: the figures match the runs, the page is self-contained and escaped.

The page itself is opened in headless Chromium by
``tests/integration/test_trace_report_browser.py``; these tests check what it
is built from, and the command's errors.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from agentmesh import tracing
from agentmesh.cli import main
from agentmesh.graph import Runtime, load_graph, run_graph
from agentmesh.graph.run import RunResult
from agentmesh.models import load_catalog
from agentmesh.prompts import PromptLibrary
from agentmesh.tracing import SpanRecord, load_spans
from agentmesh.tracing.report import build_report, comparison, side

QUESTION = "Should a 12-person company move its file storage to the cloud?"


async def traced_runs(path: Path, n: int, catalog: str = "models/sim.yaml") -> list[RunResult]:
    loaded = load_graph(Path("graphs/research_report.yaml"))
    results = []
    with tracing.configure(jsonl=path, batch=False):
        async with Runtime.open(load_catalog(catalog), prompts=PromptLibrary()) as runtime:
            for i in range(n):
                results.append(
                    await run_graph(loaded.spec, runtime, f"{QUESTION} ({i})", locate=loaded.locate)
                )
    return results


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[RunResult]]:
    import asyncio

    path = tmp_path_factory.mktemp("report") / "runs.jsonl"
    return path, asyncio.run(traced_runs(path, 3))


def test_each_run_lists_its_node_executions_with_model_reason_and_passed_over_candidates(
    three: tuple[Path, list[RunResult]],
) -> None:
    path, results = three
    view = side("runs.jsonl", load_spans(path))
    assert [r.run_id for r in view.runs] == [r.run_id for r in results]
    for run, result in zip(view.runs, results, strict=True):
        assert run.status == "ok"
        assert run.budget_usd == 0.25
        assert run.cost_usd == pytest.approx(result.cost_usd)
        executed = Counter(s["node"] for s in result.steps if s["kind"] != "judge")
        shown = Counter(n.name for n in run.nodes if n.kind != "judge")
        assert shown == executed
        research = [n for n in run.nodes if n.name == "research"]
        assert [n.round for n in research if n.branch == "01"] == [1, 2, 3]
        for node in research:
            (decision,) = node.decisions
            assert decision.chosen == node.model
            assert decision.reason.startswith("cheapest capable")
            assert decision.rejected
            assert all(m != node.model for m, _ in decision.rejected)
            (verdict,) = node.verdicts
            assert verdict.judge == "check"
        # escalated rounds say which cheaper models were excluded and why
        assert any("[tier]" in e for n in research for d in n.decisions for e in d.excluded)
        assert run.burn[-1][1] == pytest.approx(result.cost_usd)
        assert all(a[0] <= b[0] for a, b in zip(run.burn, run.burn[1:], strict=False))


def test_the_figures_add_up_to_the_runs(three: tuple[Path, list[RunResult]]) -> None:
    path, results = three
    f = side("runs.jsonl", load_spans(path)).figures
    steps = [s for r in results for s in r.steps]
    assert f["run_count"] == f["runs_ok"] == 3
    assert f["run_cost_usd"]["total"] == pytest.approx(sum(r.cost_usd for r in results))
    for node in ("plan", "research", "check", "report"):
        cost = sum(s["cost_usd"] for s in steps if s["node"] == node)
        assert f["nodes"][node]["cost_usd"] == pytest.approx(cost)
    models = Counter(s["model"] for s in steps if s["node"] == "research")
    routing = f["nodes"]["research"]["routing"]
    assert {m: r["decisions"] for m, r in routing.items()} == dict(models)
    verdicts = [s["verdict"] for s in steps if s["kind"] == "judge"]
    assert f["judges"]["check"]["verdicts"] == len(verdicts)
    assert f["pass_rate"] == pytest.approx(
        round(sum(v["passed"] for v in verdicts) / len(verdicts), 4)
    )
    assert f["simulated"] is True


def test_the_page_fetches_nothing_and_escapes_what_the_trace_says(
    three: tuple[Path, list[RunResult]],
) -> None:
    path, _ = three
    records = load_spans(path)
    hostile = SpanRecord(
        name="route plan",
        trace_id="f" * 32,
        span_id="e" * 16,
        parent_id=None,
        kind="INTERNAL",
        start_ns=1,
        end_ns=2,
        attributes={
            "agentmesh.route.strategy": "<script>alert(1)</script>",
            "agentmesh.node.name": '"><img src=x onerror=alert(2)>',
            "agentmesh.route.chosen": "m",
        },
    )
    page = build_report([("runs.jsonl", [*records, hostile])])
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert page.count("<script>") == 1  # the page's own script, inline
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page
    assert "url(" not in page
    assert "Simulated: these runs used scripted models" in page


def test_compare_puts_two_sets_side_by_side(three: tuple[Path, list[RunResult]]) -> None:
    path, results = three
    records = load_spans(path)
    first = [r for r in records if r.trace_id == records[0].trace_id]
    a, b = side("a", first), side("b", records)
    rows = {r["label"]: r for r in comparison(a.figures, b.figures)}
    assert (rows["runs"]["a"], rows["runs"]["b"]) == (1, 3)
    assert rows["runs"]["change"] == pytest.approx(2.0)
    assert rows["total cost"]["b"] == pytest.approx(sum(r.cost_usd for r in results))
    page = build_report([("a", first), ("b", records)], compare=True)
    assert 'data-side="a"' in page
    assert 'data-side="b"' in page
    assert "A/B comparison" in page
    with pytest.raises(ValueError, match="two sources"):
        build_report([("a", first)], compare=True)


def test_the_command_writes_the_page_and_refuses_bad_input(
    three: tuple[Path, list[RunResult]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = three
    out = tmp_path / "report.html"
    assert main(["trace", "report", str(path), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert "wrote" in capsys.readouterr().err
    compared = tmp_path / "compare.html"
    assert main(["trace", "report", "--compare", str(path), str(path), "-o", str(compared)]) == 0
    assert "A/B comparison" in compared.read_text()

    assert main(["trace", "report", "-o", str(out)]) == 2
    assert "no trace file" in capsys.readouterr().err
    assert main(["trace", "report", str(path), "--compare", "a", "b", "-o", str(out)]) == 2
    assert "not both" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["trace", "report", str(bad), "-o", str(out)]) == 2
    assert f"{bad}:1" in capsys.readouterr().err
    assert main(["trace", "report", str(path), "-o", str(tmp_path / "no" / "dir.html")]) == 2
    assert "cannot write" in capsys.readouterr().err


async def test_calls_outside_a_workflow_count_in_their_run(tmp_path: Path) -> None:
    from agentmesh.models import Gateway, ModelRequest
    from agentmesh.resilience import Call, ResilientCaller
    from agentmesh.routing import Router, RouteRequest
    from agentmesh.testing import scripted_catalog, scripted_model

    catalog = scripted_catalog(
        scripted_model("m", fields={"pricing": {"input": 1.0, "output": 2.0}})
    )
    caller = ResilientCaller(Router(catalog), Gateway(catalog))
    path = tmp_path / "ask.jsonl"
    with tracing.configure(jsonl=path, batch=False), tracing.span("agentmesh ask"):
        result = await caller.call(
            Call(RouteRequest(node="ask", prompt="hi"), ModelRequest.of("hi"))
        )
    (run,) = side("ask.jsonl", load_spans(path)).runs
    assert run.nodes == ()
    assert run.cost_usd == pytest.approx(result.cost_usd)
    assert run.cost_usd > 0
    assert run.burn == ((pytest.approx(run.burn[0][0]), pytest.approx(result.cost_usd)),)
