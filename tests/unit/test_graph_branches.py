"""Conditional edges (``branch:``) and bounded loops: checks before any call, runs, drawings."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentmesh.cli import main
from agentmesh.graph import GraphError, Runtime, Workflow, check_graph, load_graph, run_graph
from agentmesh.models import Catalog
from agentmesh.routing import Policy
from agentmesh.testing import scripted_catalog, scripted_model

from .graph_helpers import GRAPHS, SIM, line_of, shipped, sim, the_problem, write

TRIAGE = GRAPHS / "triage_router.yaml"
BILLING = "I was charged twice for my Pro plan this month, please refund one of the charges."
TECHNICAL = "The app crashes when I upload a photo from my gallery, every single time."


def problems_of(path: Path, catalog: Catalog | None = None) -> list[str]:
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        check_graph(loaded.spec, catalog or sim(), shipped(), locate=loaded.locate)
    return caught.value.problems


async def run(wf: Workflow, catalog: Catalog, text: str = "q") -> Any:
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        return await run_graph(wf.spec(), runtime, text)


# -- the triage router on the simulated pool ------------------------------------------------


@pytest.mark.parametrize(
    ("ticket", "desk"), [(BILLING, "billing_desk"), (TECHNICAL, "technical_desk")]
)
def test_triage_router_sends_each_ticket_to_its_desk(
    capsys: pytest.CaptureFixture[str], ticket: str, desk: str
) -> None:
    code = main(["run", str(TRIAGE), "--models", str(SIM), "--input", ticket, "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["status"] == "ok"
    # the branch taken is the next step's node
    assert [s["node"] for s in result["steps"]] == ["classify", desk, "check"]
    assert result["steps"][0]["output"]["category"] == desk.removesuffix("_desk")
    assert result["steps"][2]["verdict"]["target"] == desk
    assert result["output"].startswith(desk.removesuffix("_desk").capitalize() + " desk")


def test_graph_command_labels_each_branch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(TRIAGE)]) == 0
    drawn = capsys.readouterr().out
    for case, desk in (("billing", "billing_desk"), ("technical", "technical_desk")):
        assert f"classify -. &nbsp;{case}&nbsp; .-> {desk};" in drawn


# -- checks before any call: file, line, node -----------------------------------------------

ROUTER = """
name: g
nodes:
  classify:
    kind: executor
    prompt: {prompt}
    inputs: {inputs}
    branch:
{branch}
  a:
    kind: executor
    prompt: execute_step
    inputs: {{question: $input, step: a}}
  b:
    kind: executor
    prompt: execute_step
    inputs: {{question: $input, step: b}}
{edges}
"""


def router(
    branch: str,
    *,
    prompt: str = "route_ticket",
    inputs: str = "{ticket: $input}",
    edges: str = "",
) -> str:
    body = textwrap.indent(textwrap.dedent(branch).strip("\n"), " " * 6)
    return ROUTER.format(prompt=prompt, inputs=inputs, branch=body, edges=edges)


BAD_BRANCHES = [
    pytest.param(
        router("field: category\ncases: {billing: a, technical: b, account: nowhere}"),
        "branch.cases.account: no node 'nowhere'",
        id="unknown-target",
    ),
    pytest.param(
        router("field: category\ncases: {billing: a, biling: b}\ndefault: b"),
        "branch.cases.biling: not a value of category of template 'route_ticket' "
        "(billing, technical, account)",
        id="case-outside-the-enum",
    ),
    pytest.param(
        router("field: category\ncases: {billing: a, technical: b}"),
        "cases do not cover category of template 'route_ticket': no case for account",
        id="enum-not-covered",
    ),
    pytest.param(
        router("field: desk\ncases: {billing: a}\ndefault: b"),
        "has no field 'desk' (fields: category, reason)",
        id="no-such-field",
    ),
    pytest.param(
        router(
            "field: fields\ncases: {x: a}\ndefault: b",
            prompt="triage",
            inputs="{ticket: $input}",
        ),
        "fields of template 'triage' is of type object; branch on a string",
        id="field-of-the-wrong-type",
    ),
    pytest.param(
        router("field: reason\ncases: {x: a}"),
        "reason of template 'route_ticket' is any string; add a default",
        id="free-string-without-default",
    ),
    pytest.param(
        router(
            "field: category\ncases: {x: a}\ndefault: b",
            prompt="execute_step",
            inputs="{question: $input, step: s}",
        ),
        "needs a JSON answer, but template 'execute_step' declares no output_schema",
        id="text-answer",
    ),
    pytest.param(
        router("field: category\ncases: {billing: a}\ndefault: b", edges="edges: [classify -> a]"),
        "a node with a branch has no other edges",
        id="branch-and-plain-edge",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_BRANCHES)
def test_a_bad_branch_names_file_line_and_node(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    problem = the_problem(problems_of(path), fragment)
    assert problem.startswith(f"{path}:{line_of(path, '    branch:')}: node 'classify': "), problem


def test_validate_reports_a_bad_branch_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, router("field: category\ncases: {billing: a, technical: b}"))
    assert main(["validate", str(path), "--models", str(SIM)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line_of(path, '    branch:')}: node 'classify': branch: cases do not" in err
    assert "Traceback" not in err


def test_a_branch_needs_a_field_or_a_function_and_a_function_a_default() -> None:
    wf = Workflow("g").executor("a", prompt="route_ticket", inputs={"ticket": "$input"})
    with pytest.raises(GraphError, match="branch of 'a': a branch needs field: NAME"):
        wf.branch("a", cases={"x": "END"})
    with pytest.raises(GraphError, match="a branch by a function needs a default"):
        wf.branch("a", by=lambda state: "x", cases={"x": "END"})
    with pytest.raises(GraphError, match="branch of 'nope': add node 'nope' first"):
        wf.branch("nope", field="category", cases={"x": "END"})


def test_yaml_reads_boolean_and_integer_cases_as_their_text(tmp_path: Path) -> None:
    path = write(tmp_path, router("field: category\ncases: {true: a, 3: b}\ndefault: b"))
    branch = load_graph(path).spec.nodes["classify"].branch
    assert branch is not None
    assert branch.cases == {"true": "a", "3": "b"}


# -- running branches ------------------------------------------------------------------------


def classifier(reply: str) -> Catalog:
    return scripted_catalog(scripted_model("m", reply=reply))


def routed(**branch: Any) -> Workflow:
    wf = Workflow("routed", policy=Policy(strategy="cheapest"))
    wf.executor("classify", prompt="route_ticket", inputs={"ticket": "$input"})
    for name in ("a", "b", "c"):
        wf.executor(name, prompt="execute_step", inputs={"question": "$input", "step": name})
    return wf.branch("classify", **branch)


async def test_a_value_no_case_names_fails_the_run_with_no_branch() -> None:
    # The cases cover the schema's enum, but the model answered outside it.
    wf = routed(field="category", cases={"billing": "a", "technical": "b", "account": "c"})
    result = await run(wf, classifier('{"category": "refunds", "reason": "r"}'))
    assert result.status == "failed"
    assert result.error["type"] == "no_branch"
    assert result.error["node"] == "classify"
    assert "category = 'refunds'" in result.error["message"]
    assert [s["node"] for s in result.steps] == ["classify"]


async def test_a_value_no_case_names_takes_the_default() -> None:
    wf = routed(field="category", cases={"billing": "a", "account": "b"}, default="c")
    result = await run(wf, classifier('{"category": "technical", "reason": "r"}'))
    assert result.status == "ok", result.error
    assert [s["node"] for s in result.steps] == ["classify", "c"]


async def test_a_branch_by_a_function_of_the_state() -> None:
    seen: list[str] = []

    def by_length(state: Any) -> str:
        seen.append(state["input"])
        return "long" if len(state["input"]) > 10 else "short"

    wf = routed(by=by_length, cases={"long": "a", "short": "b"}, default="c")
    catalog = classifier('{"category": "billing", "reason": "r"}')
    short, long = await run(wf, catalog, "hi"), await run(wf, catalog, "a much longer ticket")
    assert [s["node"] for s in short.steps] == ["classify", "b"]
    assert [s["node"] for s in long.steps] == ["classify", "a"]
    assert seen == ["hi", "a much longer ticket"]


async def test_a_judge_branches_on_its_verdict() -> None:
    wf = Workflow("judged", policy=Policy(strategy="cheapest"))
    wf.executor("answer", prompt="execute_step", inputs={"question": "$input", "step": "s"})
    wf.judge(
        "gate",
        target="answer",
        prompt=None,
        validators=[{"regex": "GOOD"}],
        max_rounds=1,
        on_give_up="continue",
        branch={"field": "verdict", "cases": {"passed": "publish", "gave_up": "fallback"}},
    )
    for name in ("publish", "fallback"):
        wf.executor(name, prompt="execute_step", inputs={"question": "$answer", "step": name})
    wf.edge("answer", "gate")
    good = await run(wf, classifier("GOOD answer"))
    bad = await run(wf, classifier("bad answer"))
    assert [s["node"] for s in good.steps] == ["answer", "gate", "publish"]
    assert [s["node"] for s in bad.steps] == ["answer", "gate", "fallback"]


# -- bounded loops ---------------------------------------------------------------------------


def looping(max_visits: int | None = 3, until: int = 2, **graph: Any) -> Workflow:
    """``work`` runs again while it has run fewer than ``until`` times (a branch on the state)."""
    wf = Workflow("loop", policy=Policy(strategy="cheapest"), **graph)
    wf.executor(
        "work",
        prompt="execute_step",
        inputs={"question": "$input", "step": "work"},
        max_visits=max_visits,
    )

    def again(state: Any) -> str:
        return "again" if state["visits"]["work"] < until else "done"

    return wf.branch("work", by=again, cases={"again": "work", "done": "END"}, default="END")


async def test_a_bounded_loop_runs_until_its_branch_leaves_it() -> None:
    result = await run(looping(max_visits=5, until=3), classifier("ok"))
    assert result.status == "ok", result.error
    assert [s["node"] for s in result.steps] == ["work", "work", "work"]


async def test_a_loop_past_max_visits_fails_with_loop_limit_naming_the_node() -> None:
    result = await run(looping(max_visits=2, until=10), classifier("ok"))
    assert result.status == "failed"
    assert result.error["type"] == "loop_limit"
    assert result.error["node"] == "work"
    assert "visited 2 times, its max_visits" in result.error["message"]
    assert [s["node"] for s in result.steps] == ["work", "work"]


async def test_max_steps_bounds_every_loop_of_the_run() -> None:
    result = await run(looping(max_visits=None, until=10, max_steps=4), classifier("ok"))
    assert result.status == "failed"
    assert result.error["type"] == "loop_limit"
    assert "4 node executions, the graph's max_steps" in result.error["message"]
    assert len(result.steps) == 4


async def test_visits_are_counted_per_run_not_per_thread() -> None:
    wf = looping(max_visits=2, until=2)
    async with Runtime.open(classifier("ok"), prompts=shipped()) as runtime:
        runner = wf.prepare(runtime)
        first, second = await runner.run("q"), await runner.run("q")
    assert first.status == second.status == "ok"


LOOP = """
name: g
{max_steps}
nodes:
  a:
    kind: executor
    prompt: route_ticket
    inputs: {{ticket: $input}}
{bound}
    branch:
      field: category
      cases: {{billing: b, technical: END, account: END}}
  b:
    kind: executor
    prompt: execute_step
    inputs: {{question: $input, step: b}}
edges: [b -> a]
"""


def test_an_unbounded_cycle_is_an_error_naming_file_line_and_node(tmp_path: Path) -> None:
    path = write(tmp_path, LOOP.format(max_steps="", bound=""))
    problem = the_problem(problems_of(path), "cycle a -> b -> a is unbounded")
    assert problem.startswith(f"{path}:{line_of(path, '  a:')}: node 'a': ")
    assert "max_visits" in problem
    assert "max_steps" in problem


@pytest.mark.parametrize(
    ("max_steps", "bound"), [("max_steps: 20", ""), ("", "    max_visits: 3")], ids=["run", "node"]
)
def test_a_cycle_with_a_bound_passes_the_checks(tmp_path: Path, max_steps: str, bound: str) -> None:
    loaded = load_graph(write(tmp_path, LOOP.format(max_steps=max_steps, bound=bound)))
    check_graph(loaded.spec, sim(), shipped(), locate=loaded.locate)


def test_a_cycle_without_a_branch_out_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: g
        max_steps: 10
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: a}
          b:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: b}
        edges: [a -> b, b -> a]
        """,
    )
    problem = the_problem(problems_of(path), "has no way out")
    assert problem.startswith(f"{path}:{line_of(path, '  a:')}: node 'a': cycle a -> b -> a")
