"""``agentmesh trace report`` pages render in real headless Chromium and show the runs' numbers.

Twenty runs of ``graphs/research_report.yaml`` on the simulated pool (catalog
A) and twenty on the same pool without its two cheapest models (catalog B) are
traced to JSONL; the command writes a report of A and an A/B comparison, and
Chromium (the system's ``chromium``, driven by Playwright with
``executable_path``; extra ``browser``) must load them without a console error
and show the routing distribution, cost per node, pass rates and the
comparison that the runs themselves add up to.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentmesh import tracing
from agentmesh.cli import main
from agentmesh.graph import Runtime, load_graph, run_graph
from agentmesh.graph.run import RunResult
from agentmesh.models import load_catalog
from agentmesh.prompts import PromptLibrary

from .conftest import ROOT, require

pytestmark = pytest.mark.integration

RUNS = 20
QUESTION = "Should a 12-person company move its file storage to the cloud?"


def chromium() -> str | None:
    """The Chromium binary: ``$AGENTMESH_CHROMIUM``, else ``chromium`` on PATH."""
    return os.environ.get("AGENTMESH_CHROMIUM") or shutil.which("chromium")


async def traced(path: Path, catalog: Path) -> list[RunResult]:
    loaded = load_graph(ROOT / "graphs/research_report.yaml")
    out = []
    with tracing.configure(jsonl=path, batch=False):
        async with Runtime.open(load_catalog(catalog), prompts=PromptLibrary()) as runtime:
            for i in range(RUNS):
                text = f"{QUESTION} (case {i})"
                out.append(await run_graph(loaded.spec, runtime, text, locate=loaded.locate))
    assert all(r.status == "ok" for r in out)
    return out


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    binary = chromium()
    require(binary is not None, "no chromium on PATH (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install 'agentmesh[browser]')")
        raise
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=binary, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "request",
        lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None,
    )
    await page.goto(path.as_uri())
    assert await page.get_attribute("body", "data-ready") == "true"
    return page, problems


async def figure(page: Any, name: str, within: str = "") -> str:
    text: str = await page.inner_text(f'{within} [data-figure="{name}"]'.strip())
    return text


def usd(value: float) -> str:
    return f"${value:.6f}"


def pct(part: int, whole: int) -> str:
    return f"{round(part / whole, 4) * 100:.1f}%"


async def test_reports_of_twenty_runs_and_two_catalogs_render_in_chromium(
    browser: Any, tmp_path: Path
) -> None:
    premium = tmp_path / "premium.yaml"
    pool = yaml.safe_load((ROOT / "models/sim.yaml").read_text())
    pool["models"] = [m for m in pool["models"] if m["id"] not in ("sim-nano", "sim-mini")]
    premium.write_text(yaml.safe_dump(pool, sort_keys=False))
    a_file, b_file = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a_runs = await traced(a_file, ROOT / "models/sim.yaml")
    b_runs = await traced(b_file, premium)
    report, compared = tmp_path / "report.html", tmp_path / "compare.html"
    assert main(["trace", "report", str(a_file), "-o", str(report)]) == 0
    assert (
        main(["trace", "report", "--compare", str(a_file), str(b_file), "-o", str(compared)]) == 0
    )

    page, problems = await open_page(browser, report)
    steps = [s for r in a_runs for s in r.steps]
    assert await page.locator("details.run").count() == RUNS
    assert await figure(page, "total-cost") == usd(sum(r.cost_usd for r in a_runs))
    for node in ("plan", "research", "check", "report"):
        cost = sum(s["cost_usd"] for s in steps if s["node"] == node)
        assert await figure(page, f"node-cost:{node}") == usd(cost)
    research = Counter(s["model"] for s in steps if s["node"] == "research")
    for model, n in research.items():
        shown = await figure(page, f"route-share:research:{model}")
        assert shown == f"{model} {pct(n, sum(research.values()))}"
    verdicts = [s["verdict"] for s in steps if s["kind"] == "judge"]
    passed = sum(v["passed"] for v in verdicts)
    assert await figure(page, "judge-pass-rate:check") == pct(passed, len(verdicts))
    # the page's script works: every run's timeline opens, tables sort
    assert await page.locator("details.run[open]").count() == 1
    await page.click("#toggle-runs")
    assert await page.locator("details.run[open]").count() == RUNS
    await page.click('table[data-table="nodes"] th:nth-child(9)')  # cost, ascending
    costs = await page.locator('table[data-table="nodes"] tbody td:nth-child(9)').all_inner_texts()
    assert costs == sorted(costs, key=lambda c: float(c.strip("$")))
    assert len(await page.screenshot(full_page=True)) > 50_000
    assert problems == []

    page, problems = await open_page(browser, compared)
    b_steps = [s for r in b_runs for s in r.steps]
    b_verdicts = [s["verdict"] for s in b_steps if s["kind"] == "judge"]
    assert await figure(page, "compare-a:runs") == await figure(page, "compare-b:runs") == "20"
    assert await figure(page, "compare-a:total cost") == usd(sum(r.cost_usd for r in a_runs))
    assert await figure(page, "compare-b:total cost") == usd(sum(r.cost_usd for r in b_runs))
    assert await figure(page, "compare-a:judge pass rate") == pct(passed, len(verdicts))
    b_passed = sum(v["passed"] for v in b_verdicts)
    assert await figure(page, "compare-b:judge pass rate") == pct(b_passed, len(b_verdicts))
    b_side = '[data-side="b.jsonl"]'
    assert await figure(page, "route-share:research:sim-haiku", b_side) == "sim-haiku 100.0%"
    assert await page.locator("details.run").count() == 2 * RUNS
    assert problems == []
