"""Human in the loop (``kind: human``, ``interrupt: before|after``), resume, function nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agentmesh.graph import GraphError, RunError, Runtime, Workflow, check_graph, load_graph
from agentmesh.graph.pause import approve, reject, value
from agentmesh.routing import Policy
from agentmesh.testing import scripted_catalog, scripted_model

from .graph_helpers import GRAPHS, SIM, cli, shipped, sim, write

APPROVAL = GRAPHS / "approval.yaml"
BRIEF = "Announce to our users that release 5.0 ships on 12 May with faster uploads."


# -- graphs/approval.yaml from the command line ---------------------------------------------


def start(capsys: pytest.CaptureFixture[str], db: Path, *extra: str) -> tuple[int, str, str]:
    return cli(
        capsys,
        "run",
        str(APPROVAL),
        "--models",
        str(SIM),
        "--input",
        BRIEF,
        "--checkpoint",
        f"sqlite:{db}",
        "--run-id",
        "ap1",
        *extra,
    )


def resume(capsys: pytest.CaptureFixture[str], db: Path, *answer: str) -> tuple[int, str, str]:
    return cli(capsys, "resume", "ap1", "--checkpoint", f"sqlite:{db}", *answer, "--json")


def test_approval_stops_with_exit_3_printing_the_run_and_what_awaits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = start(capsys, tmp_path / "runs.db")
    assert code == 3, err
    assert out.startswith("run ap1 is waiting for a person\npending: node 'review'\n")
    payload = json.loads(out.split("pending: node 'review'\n", 1)[1])
    assert payload["question"] == "Publish this draft?"
    assert payload["draft"].startswith("Draft (sim-nano): We are thrilled")
    assert "agentmesh resume ap1 --checkpoint sqlite:" in err
    assert "Traceback" not in err


def test_approval_resumed_with_approve_publishes_the_draft(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    code, out, _ = start(capsys, db, "--json")
    paused = json.loads(out)
    assert code == 3
    assert paused["status"] == "interrupted"
    assert paused["output"] is None
    assert [p["node"] for p in paused["pending"]] == ["review"]
    code, out, err = resume(capsys, db, "--approve")
    done = json.loads(out)
    assert code == 0, err
    assert done["status"] == "ok"
    assert done["pending"] == []
    assert [(s["node"], s["status"]) for s in done["steps"]] == [
        ("draft", "ok"),
        ("review", "approved"),
        ("publish", "ok"),
    ]
    published = json.loads(done["output"])
    assert published["status"] == "published"
    assert published["text"].startswith("We are thrilled")


def test_approval_rejected_then_approved_publishes_the_revision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    assert start(capsys, db)[0] == 3
    code, out, _ = resume(capsys, db, "--reject", "--feedback", "Too vague: give the date.")
    again = json.loads(out)
    assert code == 3
    assert again["status"] == "interrupted"
    assert again["pending"][0]["payload"]["draft"].startswith("Revised draft")
    code, out, _ = resume(capsys, db, "--approve")
    done = json.loads(out)
    assert code == 0
    assert [(s["node"], s["status"]) for s in done["steps"]] == [
        ("draft", "ok"),
        ("review", "rejected"),
        ("draft", "ok"),
        ("review", "approved"),
        ("publish", "ok"),
    ]
    assert json.loads(done["output"])["text"].startswith("Our new release ships on 12 May")
    rejected = done["steps"][1]["output"]
    assert rejected == {
        "verdict": "rejected",
        "feedback": "Too vague: give the date.",
        "value": None,
    }


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (["--value", '{"x": 1}'], "node 'review': this node takes --approve, --reject"),
        (["--value", "{bad"], "--value: not JSON"),
        (["--approve", "--feedback", "x"], "--feedback goes with --reject"),
    ],
)
def test_a_wrong_answer_exits_2_and_leaves_the_run_waiting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, answer: list[str], message: str
) -> None:
    db = tmp_path / "runs.db"
    assert start(capsys, db)[0] == 3
    code, _, err = resume(capsys, db, *answer)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    code, out, _ = resume(capsys, db, "--approve")
    assert code == 0
    assert json.loads(out)["status"] == "ok"


def test_resume_of_an_unknown_or_finished_run_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    assert start(capsys, db)[0] == 3
    code, _, err = cli(capsys, "resume", "nope", "--checkpoint", f"sqlite:{db}", "--approve")
    assert code == 2
    assert "no run 'nope'" in err
    assert resume(capsys, db, "--approve")[0] == 0
    code, _, err = resume(capsys, db, "--approve")
    assert code == 2
    assert "run 'ap1' is not waiting for an answer" in err


def test_a_pausing_graph_without_a_durable_checkpoint_exits_2_saying_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, "run", str(APPROVAL), "--models", str(SIM), "--input", BRIEF)
    assert code == 2
    assert out == ""
    line = APPROVAL.read_text().splitlines().index("  review:") + 1
    assert f"{APPROVAL}:{line}: node 'review' pauses the run for a person" in err
    assert "--checkpoint sqlite:PATH" in err


# -- Python: compile, Command(resume=...) ----------------------------------------------------


def approval() -> Workflow:
    wf = Workflow("approval", policy=Policy(strategy="cheapest"))
    wf.executor(
        "draft",
        prompt="write_draft",
        inputs={"brief": "$input", "previous": "$draft", "feedback": "$review.feedback"},
        max_visits=3,
    )
    wf.human("review", show={"draft": "$draft"}, accepts=("approve", "reject"))
    wf.branch("review", field="verdict", cases={"approved": "END", "rejected": "draft"})
    return wf.edge("draft", "review")


async def test_compiling_a_pausing_graph_without_a_checkpointer_says_why() -> None:
    async with Runtime.open(sim(), prompts=shipped()) as runtime:
        with pytest.raises(GraphError, match="needs a durable checkpointer"):
            approval().compile(runtime)
        approval().compile(runtime, checkpointer=InMemorySaver())


async def test_the_compiled_graph_resumes_with_langgraphs_command() -> None:
    config: Any = {"configurable": {"thread_id": "t1"}}
    async with Runtime.open(sim(), prompts=shipped()) as runtime:
        graph = approval().compile(runtime, checkpointer=InMemorySaver())
        first = await graph.ainvoke({"input": BRIEF, "run_id": "t1"}, config)
        [paused] = first["__interrupt__"]
        assert paused.value["node"] == "review"
        second = await graph.ainvoke(Command(resume=reject("Shorter.")), config)
        assert second["__interrupt__"][0].value["draft"].startswith("Revised draft")
        done = await graph.ainvoke(Command(resume=approve()), config)
    assert "__interrupt__" not in done
    assert [s["node"] for s in done["steps"]] == ["draft", "review", "draft", "review"]
    assert done["results"]["review"][""]["data"]["verdict"] == "approved"


async def test_a_node_that_takes_values_branches_on_the_answer() -> None:
    wf = Workflow("choose", policy=Policy(strategy="cheapest"))
    wf.human("pick", question="Which plan?", accepts=("value",))
    wf.function("echo", function=lambda plan: {"chosen": plan}, inputs={"plan": "$pick.value"})
    wf.branch("pick", field="verdict", cases={"answered": "echo"})
    async with Runtime.open(sim(), prompts=shipped()) as runtime:
        runner = wf.prepare(runtime)
        paused = await runner.run("q", run_id="r")
        with pytest.raises(RunError, match="takes --value, not a approved answer"):
            await runner.run(None, run_id="r", resume=True, answer=approve())
        done = await runner.run(None, run_id="r", resume=True, answer=value("pro"))
    assert paused.status == "interrupted"
    assert done.status == "ok"
    assert json.loads(done.output or "") == {"chosen": "pro"}


# -- interrupt: before | after ---------------------------------------------------------------


def gated(when: str) -> Workflow:
    wf = Workflow("gated", policy=Policy(strategy="cheapest"))
    wf.executor(
        "write",
        prompt="execute_step",
        inputs={"question": "$input", "step": "write"},
        interrupt=when,
    )
    wf.executor("after", prompt="execute_step", inputs={"question": "$write", "step": "next"})
    return wf


async def run_gated(wf: Workflow, *answers: Any) -> list[Any]:
    catalog = scripted_catalog(scripted_model("m", reply="an answer"))
    results = []
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        runner = wf.prepare(runtime)
        results.append(await runner.run("q", run_id="g"))
        for answer in answers:
            results.append(await runner.run(None, run_id="g", resume=True, answer=answer))
    return results


async def test_interrupt_before_asks_before_any_call_and_runs_when_approved() -> None:
    wf = gated("before").edge("write", "after")
    paused, done = await run_gated(wf, approve())
    assert paused.status == "interrupted"
    assert paused.steps == ()  # nothing ran, nothing was paid
    assert paused.pending[0]["payload"] == {
        "node": "write",
        "when": "before",
        "inputs": {"question": "q", "step": "write"},
    }
    assert [s["node"] for s in done.steps] == ["write", "after"]


async def test_interrupt_before_rejected_fails_the_run_naming_the_node() -> None:
    _, failed = await run_gated(gated("before").edge("write", "after"), reject("not now"))
    assert failed.status == "failed"
    assert failed.error == {
        "type": "rejected",
        "message": "a person rejected running it: not now",
        "node": "write",
    }


async def test_interrupt_after_shows_the_answer_and_branches_on_the_verdict() -> None:
    wf = gated("after")
    wf.executor("redo", prompt="execute_step", inputs={"question": "$input", "step": "redo"})
    wf.branch("write", field="verdict", cases={"approved": "after", "rejected": "redo"})
    paused, done = await run_gated(wf, reject("no"))
    assert paused.pending[0]["payload"] == {"node": "write", "when": "after", "output": "an answer"}
    assert [s["node"] for s in paused.steps] == ["write"]  # kept: not redone on resume
    assert [(s["node"], s["kind"], s["status"]) for s in done.steps] == [
        ("write", "executor", "ok"),
        ("write", "human", "rejected"),
        ("redo", "executor", "ok"),
    ]


def test_a_branch_on_an_answer_the_node_does_not_take_is_a_check_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          ask:
            kind: human
            branch:
              field: verdict
              cases: {approved: END, answered: END}
        """,
    )
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        check_graph(loaded.spec, sim(), shipped(), locate=loaded.locate)
    [problem] = [p for p in caught.value.problems if "answered" in p]
    assert problem.startswith(f"{path}:5: node 'ask': branch.cases.answered: not a value of")
    assert "(approved, rejected)" in problem


def test_interrupt_on_a_judge_is_a_check_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: executor
            prompt: execute_step
            inputs: {question: $input, step: s}
          j:
            kind: judge
            target: a
            prompt: null
            validators: [{min_words: 1}]
            interrupt: after
        edges: [a -> j]
        """,
    )
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        check_graph(loaded.spec, sim(), shipped(), locate=loaded.locate)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:12: node 'j': interrupt: a judge cannot pause")


# -- function nodes --------------------------------------------------------------------------


async def test_function_nodes_sync_and_async_read_and_update_the_run() -> None:
    async def shout(text: str) -> str:
        return text.upper()

    wf = Workflow("f")
    wf.function(
        "count", function=lambda text: {"words": len(text.split())}, inputs={"text": "$input"}
    )
    wf.function("loud", function=shout, inputs={"text": "$input"})
    wf.function(
        "both", function=lambda n, s: f"{s} ({n})", inputs={"n": "$count.words", "s": "$loud"}
    )
    wf.edge("count", "loud").edge("loud", "both")
    async with Runtime.open(scripted_catalog(), prompts=shipped()) as runtime:
        result = await wf.run(runtime, "three small words")
    assert result.status == "ok"
    assert result.output == "THREE SMALL WORDS (3)"
    assert result.steps[0]["output"] == {"words": 3}
    assert result.cost_usd == 0


async def test_a_raising_function_fails_the_node_naming_it() -> None:
    def broken(text: str) -> str:
        raise KeyError(text)

    wf = Workflow("f").function("f", function=broken, inputs={"text": "$input"})
    async with Runtime.open(scripted_catalog(), prompts=shipped()) as runtime:
        result = await wf.run(runtime, "x")
    assert result.status == "failed"
    assert result.error["type"] == "function_error"
    assert result.error["node"] == "f"
    assert "broken raised KeyError" in result.error["message"]


def test_a_function_that_cannot_be_loaded_names_file_line_and_node(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text("def real(x):\n    return x\n", encoding="utf-8")
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          ok:
            kind: function
            function: steps.py:real
            inputs: {x: $input}
          bad:
            kind: function
            function: steps.py:nosuch
        edges: [ok -> bad]
        """,
    )
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        check_graph(loaded.spec, sim(), shipped(), locate=loaded.locate)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:9: node 'bad': function: cannot load")
    assert "AttributeError" in problem


def test_a_node_named_like_an_approval_step_is_a_check_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: g
        nodes:
          a:
            kind: function
            function: json.dumps
            inputs: {obj: $input}
            interrupt: after
          a__after:
            kind: function
            function: json.dumps
            inputs: {obj: $input}
        edges: [a -> a__after]
        """,
    )
    loaded = load_graph(path)
    with pytest.raises(GraphError) as caught:
        check_graph(loaded.spec, sim(), shipped(), locate=loaded.locate)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:7: node 'a': interrupt: its approval step is named")
