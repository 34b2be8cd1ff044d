"""Workflows run end to end on scripted models: routing, escalation, budgets, tools, resume."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.graph.state import CompiledStateGraph
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentmesh.graph import (
    GraphError,
    GraphRunner,
    GraphSpec,
    RunResult,
    Runtime,
    Workflow,
    load_graph,
    open_checkpointer,
    run_graph,
)
from agentmesh.graph.pause import approve
from agentmesh.models import Catalog, load_catalog
from agentmesh.models.scripted import ScriptedClient
from agentmesh.prompts import PromptLibrary
from agentmesh.routing import Policy
from agentmesh.synthesis import SYNTHESIZERS
from agentmesh.testing import scripted_model

from .test_tracing_support import span_fixture

PRICED = {"pricing": {"input": 1.0, "output": 2.0}}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


@functools.cache
def shipped() -> PromptLibrary:
    """The shipped templates, loaded once: a library is an immutable snapshot (~0.1 s a load)."""
    return PromptLibrary()


def tiers(*behaviors: dict[str, Any]) -> Catalog:
    """Models t1, t2, ... one per tier, each with its behaviour."""
    return Catalog(
        [
            scripted_model(
                f"t{n}",
                tier=n,
                fields={
                    "pricing": {"input": float(n), "output": 2.0 * n},
                    "quality": {"default": 0.5 + 0.1 * n},
                },
                **behavior,
            )
            for n, behavior in enumerate(behaviors, start=1)
        ]
    )


async def run(
    wf: Workflow | GraphSpec, catalog: Catalog, text: str = "q", **kwargs: Any
) -> RunResult:
    spec = wf.spec() if isinstance(wf, Workflow) else wf
    async with Runtime.open(catalog, prompts=shipped(), tools=kwargs.pop("tools", None)) as runtime:
        return await run_graph(spec, runtime, text, **kwargs)


def chain(n: int, **graph: Any) -> Workflow:
    wf = Workflow(f"chain{n}", **graph)
    for i in range(1, n + 1):
        step = "$input" if i == 1 else f"$n{i - 1}"
        wf.executor(f"n{i}", prompt="execute_step", inputs={"question": "$input", "step": step})
        if i > 1:
            wf.edge(f"n{i - 1}", f"n{i}")
    return wf


async def test_compile_returns_a_langgraph_graph() -> None:
    async with Runtime.open(tiers({}), prompts=shipped()) as runtime:
        graph = chain(3).compile(runtime)
    assert isinstance(graph, CompiledStateGraph)
    drawn = graph.get_graph().draw_mermaid()
    assert all(f"n{i}" in drawn for i in (1, 2, 3))


async def test_a_chain_runs_each_node_once_and_feeds_outputs_forward() -> None:
    catalog = tiers({"reply": "[{model}] {prompt}"})
    result = await run(chain(3), catalog, "the question")
    assert result.status == "ok"
    assert [s["node"] for s in result.steps] == ["n1", "n2", "n3"]
    assert all(s["model"] == "t1" and s["kind"] == "executor" for s in result.steps)
    # n3's prompt carries n2's answer, which carried n1's
    assert result.output is not None
    assert result.output.count("Step to carry out") == 3
    assert result.cost_usd == pytest.approx(sum(s["cost_usd"] for s in result.steps))
    assert result.cost_usd > 0
    assert result.tokens["input"] == sum(s["input_tokens"] for s in result.steps)


async def test_steps_have_the_documented_shape() -> None:
    result = await run(chain(1), tiers({}))
    step = result.steps[0]
    for key in (
        "node",
        "kind",
        "model",
        "status",
        "escalation_level",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "route",
        "attempts",
    ):
        assert key in step
    assert set(step["route"]) >= {"strategy", "reason"}
    assert step["route"]["strategy"] == "cheapest"
    attempt = step["attempts"][0]
    assert set(attempt) >= {"model", "outcome", "error_type", "latency_ms"}
    assert json.loads(json.dumps(result.to_dict()))["status"] == "ok"
    assert result.simulated


def judged(max_rounds: int = 3, on_give_up: str = "fail", **judge: Any) -> Workflow:
    wf = Workflow("judged", policy=Policy(strategy="cheapest"))
    wf.executor("answer", prompt="execute_step", inputs={"question": "$input", "step": "answer"})
    wf.judge(
        "gate",
        target="answer",
        max_rounds=max_rounds,
        on_give_up=on_give_up,
        **({"prompt": None, "validators": ({"regex": "GOOD"},)} | judge),
    )
    return wf.edge("answer", "gate")


async def test_a_failed_verdict_reruns_the_node_one_tier_up_with_the_feedback() -> None:
    catalog = tiers({"reply": "meh"}, {"reply": "still meh"}, {"reply": "GOOD: {prompt}"})
    result = await run(judged(), catalog)
    assert result.status == "ok"
    answers = [s for s in result.steps if s["node"] == "answer"]
    assert [(s["model"], s["escalation_level"], s["round"]) for s in answers] == [
        ("t1", 0, 1),
        ("t2", 1, 2),
        ("t3", 2, 3),
    ]
    verdicts = [s["status"] for s in result.steps if s["node"] == "gate"]
    assert verdicts == ["rejected", "rejected", "passed"]
    # the strongest answer saw the rejected one's feedback
    assert "must match 'GOOD'" in (result.output or "")


async def test_giving_up_fails_the_run_naming_the_judge_and_keeping_every_step() -> None:
    catalog = tiers({"reply": "meh"}, {"reply": "meh"})
    result = await run(judged(max_rounds=2), catalog)
    assert result.status == "failed"
    assert result.output is None
    assert result.error is not None
    assert result.error["node"] == "gate"
    assert result.error["type"] == "judge_gave_up"
    assert "must match 'GOOD'" in result.error["message"]
    assert result.error["message"].startswith("gave up on answer after 2 rounds: ")
    assert [s["status"] for s in result.steps] == ["ok", "rejected", "ok", "gave_up"]


async def test_giving_up_may_continue_with_the_last_answer() -> None:
    catalog = tiers({"reply": "meh one"}, {"reply": "meh two"})
    result = await run(judged(max_rounds=2, on_give_up="continue"), catalog)
    assert result.status == "ok"
    assert result.output is not None
    assert result.output.startswith("meh two")
    assert result.steps[-1]["verdict"]["gave_up"] is True


async def test_escalation_gives_up_when_no_stronger_model_is_left() -> None:
    catalog = tiers({"reply": "meh"})
    result = await run(judged(max_rounds=3), catalog)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["node"] == "gate"
    assert result.error["type"] == "judge_gave_up"
    assert "no stronger model" in result.error["message"]
    statuses = [(s["node"], s["status"]) for s in result.steps]
    assert statuses == [
        ("answer", "ok"),
        ("gate", "rejected"),
        ("answer", "no_stronger_model"),
        ("gate", "gave_up"),
    ]

    kept = await run(judged(max_rounds=3, on_give_up="continue"), catalog)
    assert kept.status == "ok"
    assert kept.output is not None
    assert kept.output.startswith("meh"), "the last real answer is kept"


async def test_an_llm_judge_uses_the_rubric_and_its_score_reaches_the_routing_matrix() -> None:
    verdict = json.dumps({"score": 0.2, "passed": False, "feedback": "cite a source"})
    ok = json.dumps({"score": 0.9, "passed": True, "feedback": ""})
    judge_rules = [
        {"match": r"(?i)candidate[\s\S]*weak answer", "reply": verdict},
        {"match": r"(?i)candidate", "reply": ok},
    ]
    catalog = Catalog(
        [
            scripted_model("weak", tier=1, fields=PRICED, reply="weak answer", replies=judge_rules),
            scripted_model("strong", tier=2, fields=PRICED, reply="strong answer"),
        ]
    )
    wf = judged(prompt="judge", rubric="Cites a source.", validators=(), task="research")
    wf._nodes["answer"] = wf._nodes["answer"].model_copy(update={"task": "research"})
    async with Runtime.open(catalog, prompts=shipped()) as runtime:
        result = await run_graph(wf.spec(), runtime, "q")
        table = await runtime.router.state.quality_table()
    assert result.status == "ok"
    judges = [s for s in result.steps if s["node"] == "gate"]
    assert [j["verdict"]["score"] for j in judges] == [0.2, 0.9]
    assert judges[0]["verdict"]["feedback"] == "cite a source"
    assert judges[0]["model"] == "weak", "the judge itself is routed (cheapest)"
    assert table["research"]["weak"].total == pytest.approx(0.2)
    assert table["research"]["strong"].total == pytest.approx(0.9)


def planned(n_steps: int, merge: str = "refine") -> Workflow:
    wf = Workflow("planned")
    wf.planner("plan", inputs={"question": "$input"}, max_steps=n_steps, fan_out="work")
    wf.executor("work", prompt="execute_step", inputs={"question": "$input", "step": "$step"})
    wf.merge("join", sources=["work"], synthesis=merge)
    return wf.edge("work", "join")


async def test_a_planner_fans_out_one_branch_per_step_and_a_merge_joins_them() -> None:
    steps = json.dumps({"steps": ["alpha", "beta", "gamma", "delta"]})
    rules = [{"match": "^Question:", "reply": steps}]
    catalog = tiers({"reply": "did {prompt}", "replies": rules})
    result = await run(planned(3), catalog)
    assert result.status == "ok"
    plan = result.steps[0]
    assert plan["plan"] == ["alpha", "beta", "gamma"]
    assert plan["notes"] == ["dropped 1 steps over max_steps"]
    work = sorted((s["branch"], s["node"]) for s in result.steps if s["node"] == "work")
    assert work == [("01", "work"), ("02", "work"), ("03", "work")]
    merge = result.steps[-1]
    sources = [c["source"] for c in merge["synthesis"]["contributors"]]
    assert sources == ["work[01]", "work[02]", "work[03]"]
    assert len(merge["calls"]) == 2, "refine: n - 1 calls"


async def test_an_unusable_plan_is_asked_again_one_tier_up() -> None:
    good = json.dumps({"steps": ["one"]})
    catalog = tiers(
        {"reply": "no plan", "replies": [{"match": "^Question:", "reply": '{"steps": []}'}]},
        {"reply": "ok", "replies": [{"match": "^Question:", "reply": good}]},
    )
    result = await run(planned(3), catalog)
    assert result.status == "ok"
    plan = result.steps[0]
    assert plan["model"] == "t2"
    assert plan["escalation_level"] == 1


async def test_a_run_budget_downgrades_later_nodes_and_is_never_exceeded() -> None:
    long = {"reply": "lorem " * 150}
    catalog = tiers(long, long, long)
    wf = chain(8, policy=Policy(strategy="budget"))
    result = await run(wf, catalog, "x", budget_usd=0.01)
    models = [s["model"] for s in result.steps]
    assert models[0] == "t3", "best quality while the budget is fresh"
    assert models[-1] != "t3", f"downgraded as the budget was used: {models}"
    assert any("used" in s["route"]["reason"] for s in result.steps)
    assert result.cost_usd <= 0.02


async def test_an_exhausted_budget_fails_the_run_with_budget_exceeded() -> None:
    result = await run(chain(3), tiers({}), "x" * 400, budget_usd=0.0008)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["type"] == "budget_exceeded"
    assert result.cost_usd <= 0.0008


async def test_a_model_outage_fails_over_and_a_total_outage_names_the_node() -> None:
    catalog = tiers({"down": True}, {})
    wf = chain(2, policy=Policy(strategy="cheapest"))
    result = await run(wf, catalog)
    assert result.status == "ok"
    first = result.steps[0]
    assert [a["outcome"] for a in first["attempts"]][-1] == "ok"
    assert first["attempts"][0]["model"] == "t1"
    assert first["attempts"][0]["error_type"] == "unavailable"
    assert first["model"] == "t2"

    dead = await run(wf, tiers({"down": True}))
    assert dead.status == "failed"
    assert dead.error is not None
    assert dead.error["node"] == "n1"
    assert dead.error["type"] == "unavailable"
    assert dead.steps[0]["status"] == "failed"
    assert dead.steps[0]["attempts"], "the failed step keeps its attempts"


def shout(text: str, times: int = 1) -> str:
    """Shout the text."""
    return (text.upper() + "!") * times


async def test_a_tool_node_validates_arguments_and_is_traced(
    spans: InMemorySpanExporter,
) -> None:
    wf = Workflow("tooling")
    wf.tool("loud", tool="shout", arguments={"text": "$input", "times": 2})
    result = await run(wf, tiers({}), "hi", tools={"shout": shout})
    assert result.output == "HI!HI!"
    assert result.steps[0]["kind"] == "tool"
    assert result.steps[0]["model"] is None
    names = [s.name for s in spans.get_finished_spans()]
    assert "execute_tool shout" in names

    bad = Workflow("tooling").tool("loud", tool="shout", arguments={"text": "hi", "times": "x"})
    failed = await run(bad, tiers({}), tools={"shout": shout})
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["type"] == "tool_arguments"
    assert "times" in failed.error["message"]


async def test_an_executor_calls_tools_the_model_asks_for() -> None:
    rules = [
        {
            "match": "Step to carry out",
            "tool": "shout",
            "arguments": {"text": "ping"},
            "reply": "tool said {tool_result}",
        }
    ]
    wf = Workflow("agent")
    wf.executor(
        "act", prompt="execute_step", inputs={"question": "$input", "step": "go"}, tools=("shout",)
    )
    result = await run(wf, tiers({"replies": rules}), tools={"shout": shout})
    assert result.status == "ok"
    assert result.output == "tool said PING!"
    step = result.steps[0]
    assert [c["tool"] for c in step["tool_calls"]] == ["shout"]
    assert step["tool_calls"][0]["arguments"] == {"text": "ping"}
    assert [len(s["attempts"]) for s in result.steps] == [1, 1], "one turn asking, one answering"


async def test_a_compile_time_problem_fails_before_any_call() -> None:
    catalog = tiers({"down": True})
    wf = Workflow("bad").executor("x", prompt="no_such_template")
    with pytest.raises(GraphError) as info:
        await run(wf, catalog)
    assert "node 'x'" in str(info.value)
    assert "no_such_template" in str(info.value)


def calls(runtime: Runtime, model: str) -> int:
    client = runtime.caller.gateway.client(model)
    assert isinstance(client, ScriptedClient)
    return client.calls


async def test_a_killed_run_resumes_without_repeating_finished_calls(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'runs.db'}"
    wf = chain(4, policy=Policy(strategy="cheapest"))
    # First process: n3's only model is down, so the run stops there.
    broken = Catalog(
        [
            scripted_model("ok", tier=1, fields=PRICED, reply="fine"),
            scripted_model("n3only", tier=2, fields=PRICED, down=True),
        ]
    )
    wf._nodes["n3"] = wf._nodes["n3"].model_copy(update={"policy": Policy(min_tier=2)})
    async with open_checkpointer(url) as saver, Runtime.open(broken, prompts=shipped()) as runtime:
        first = await run_graph(wf.spec(), runtime, "q", checkpointer=saver, run_id="r1")
        count_first = calls(runtime, "ok")
    assert first.status == "failed"
    assert first.error is not None
    assert first.error["node"] == "n3"
    assert count_first == 2

    # Second process (new runtime, new clients): the outage is over.
    healed = Catalog(
        [
            scripted_model("ok", tier=1, fields=PRICED, reply="fine"),
            scripted_model("n3only", tier=2, fields=PRICED, reply="back"),
        ]
    )
    async with open_checkpointer(url) as saver, Runtime.open(healed, prompts=shipped()) as runtime:
        second = await run_graph(
            wf.spec(), runtime, None, checkpointer=saver, run_id="r1", resume=True
        )
        again, n3 = calls(runtime, "ok"), calls(runtime, "n3only")
    assert second.status == "ok"
    assert second.resumed
    assert again == 1, "only n4 ran on 'ok': n1 and n2 were not called again"
    assert n3 == 1
    assert [s["node"] for s in second.steps] == ["n1", "n2", "n3", "n4"]
    assert second.cost_usd == pytest.approx(sum(s["cost_usd"] for s in second.steps))


async def test_resuming_an_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    from agentmesh.graph import RunError

    async with open_checkpointer(f"sqlite:{tmp_path / 'x.db'}") as saver:
        with pytest.raises(RunError, match="no run 'nope'"):
            await run(chain(1), tiers({}), checkpointer=saver, run_id="nope", resume=True)


async def test_a_run_is_one_trace_with_node_spans_parenting_routes_and_calls(
    spans: InMemorySpanExporter,
) -> None:
    steps = json.dumps({"steps": ["a", "b", "c"]})
    catalog = tiers({"reply": "r", "replies": [{"match": "^Question:", "reply": steps}]})
    result = await run(planned(3), catalog)
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    (root,) = [s for s in finished if s.name == "invoke_workflow planned"]
    assert root.attributes is not None
    assert root.attributes["agentmesh.run.id"] == result.run_id
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    nodes = [s for s in finished if s.name.startswith("invoke_agent ")]
    assert (
        sorted(s.name for s in nodes)
        == ["invoke_agent join", "invoke_agent plan"] + ["invoke_agent work"] * 3
    )
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in nodes)
    assert all(s.context.trace_id == root.context.trace_id for s in finished if s.name != "x")
    chats = [s for s in finished if s.name.startswith("chat ")]
    assert len(chats) == 1 + 3 + 2
    for chat in chats:
        parent = by_id[chat.parent.span_id] if chat.parent else None
        assert parent is not None, chat.name
        assert parent.name.startswith("invoke_agent "), chat.name
        assert chat.attributes is not None
        assert "agentmesh.prompt.template" in chat.attributes
    work_chats = [c for c in chats if by_id[c.parent.span_id].name == "invoke_agent work"]  # type: ignore[union-attr]
    assert {c.attributes["agentmesh.prompt.template"] for c in work_chats} == {"execute_step"}  # type: ignore[index]


DIFF = Path("prompts/review_code.j2").read_text().split("diff: |")[1]
MUFFINS = "A bakery sells muffins at $3 each or 4 for $10. What is the lowest price for 10 muffins?"
POPULATION = "What is the combined population of Lyon, Marseille and Atlantis?"
INPUTS = {
    "code_review": DIFF,
    "math_consensus": MUFFINS,
    "math_cascade": MUFFINS,
    "react_agent": POPULATION,
}
GRAPHS = {p.stem: load_graph(p) for p in sorted(Path("graphs").glob("*.yaml"))}
SIM = load_catalog("models/sim.yaml")


@pytest.mark.parametrize("name", sorted(GRAPHS))
async def test_every_shipped_graph_runs_on_the_simulated_pool(name: str) -> None:
    loaded = GRAPHS[name]
    text = INPUTS.get(name, "Should a 12-person company move its file storage to the cloud?")
    async with Runtime.open(SIM, prompts=shipped(), tools=loaded.tools()) as runtime:
        runner = GraphRunner(loaded.spec, runtime, locate=loaded.locate)
        result = await runner.run(text)
        for _ in range(3):  # a graph that pauses for a person is approved
            if result.status != "interrupted":
                break
            result = await runner.run(None, run_id=result.run_id, resume=True, answer=approve())
    assert result.status == "ok", result.error
    assert result.output
    assert result.simulated
    assert result.cost_usd > 0


async def test_a_judged_step_climbs_tiers_on_the_simulated_pool() -> None:
    result = await run(GRAPHS["code_review"].spec, SIM, DIFF)
    reviews = [(s["model"], s["escalation_level"]) for s in result.steps if s["node"] == "review"]
    assert reviews == [("sim-nano", 0), ("sim-mini", 1), ("sim-4o", 2)]
    assert "injection" in (result.output or "")


def test_the_shipped_graphs_are_at_least_three() -> None:
    assert len(GRAPHS) >= 3


@pytest.mark.parametrize("strategy", sorted(SYNTHESIZERS))
async def test_every_synthesis_strategy_works_in_a_merge_node_with_provenance(
    strategy: str, spans: InMemorySpanExporter
) -> None:
    steps = json.dumps({"steps": ["a", "b", "c"]})
    catalog = tiers({"reply": "Answer 7", "replies": [{"match": "^Question:", "reply": steps}]})
    result = await run(planned(3, merge=strategy), catalog)
    assert result.status == "ok", result.error
    merge = result.steps[-1]
    assert merge["node"] == "join"
    assert merge["synthesis"]["strategy"] == strategy
    sources = {c["source"] for c in merge["synthesis"]["contributors"]}
    assert sources == {"work[01]", "work[02]", "work[03]"}
    (span,) = [s for s in spans.get_finished_spans() if s.name == "invoke_agent join"]
    assert span.attributes is not None
    assert span.attributes["agentmesh.synthesis.strategy"] == strategy
    assert result.output


async def test_a_langchain_tool_works_as_a_tool_node() -> None:
    from langchain_core.tools import tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    wf = Workflow("lc").tool("sum", tool="add", arguments={"a": 2, "b": 3})
    result = await run(wf, tiers({}), tools={"add": add})
    assert result.output == "5"


async def test_a_vote_on_the_simulated_pool_outputs_the_winning_reply_not_its_match_key() -> None:
    wf = Workflow("voted", entry=["a", "b"], policy=Policy(strategy="cheapest"))
    for name in ("a", "b"):
        wf.executor(name, prompt="execute_step", inputs={"question": "$input", "step": "$input"})
    wf.merge("pick", sources=["a", "b"], synthesis="vote")
    result = await run(wf.edge("a", "pick").edge("b", "pick"), SIM, "Name a colour.")
    assert result.status == "ok", result.error
    assert (result.output or "").startswith("[simulated sim-nano] Short answer to:")
    (merge,) = [s for s in result.steps if s["node"] == "pick"]
    assert merge["synthesis"]["answer"].startswith("simulated sim-nano] short answer to:")


async def test_a_failed_run_in_memory_resumes_without_redoing_the_nodes_that_finished() -> None:
    calls = {"a": 0, "b": 0, "c": 0}

    def counted(name: str, fail_first: bool = False) -> Any:
        def node(text: str) -> str:
            calls[name] += 1
            if fail_first and calls[name] == 1:
                raise RuntimeError("flaky")
            return f"{text}{name}"

        return node

    wf = Workflow("parallel", entry=["a", "b"])
    wf.function("a", function=counted("a"), inputs={"text": "$input"})
    wf.function("b", function=counted("b", fail_first=True), inputs={"text": "$input"})
    wf.function("c", function=counted("c"), inputs={"text": "$a"})
    wf.edge("a", "c").edge("b", "c")
    async with Runtime.open(tiers({}), prompts=shipped()) as runtime:
        runner = wf.prepare(runtime)  # the default in-memory checkpointer
        failed = await runner.run("x", run_id="r")
        done = await runner.run(None, run_id="r", resume=True)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error["node"] == "b"
    assert done.status == "ok", done.error
    assert calls == {"a": 1, "b": 2, "c": 1}  # "a" finished beside the failure: not redone
    assert sorted(s["node"] for s in done.steps) == ["a", "b", "c"]
    assert done.output == "xac"
