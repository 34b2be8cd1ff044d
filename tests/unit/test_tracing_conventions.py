"""A workflow run's spans follow the OpenTelemetry GenAI conventions for agents.

Checked against the names the installed ``opentelemetry-semantic-conventions``
package defines: the run is an ``invoke_workflow`` span, each node execution an
``invoke_agent {node}`` span, calls and tools nest under it, every span carries
``gen_ai.conversation.id`` = the run id, judge verdicts are
``gen_ai.evaluation.result`` events, merges list what they merged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.trace import SpanKind

from agentmesh import tracing
from agentmesh.graph import Runtime, Workflow, load_graph, run_graph
from agentmesh.models import load_catalog
from agentmesh.prompts import PromptLibrary
from agentmesh.testing import scripted_catalog, scripted_model

from .test_tracing_support import span_fixture

GEN_AI_NAMES = {
    value
    for name, value in vars(gen_ai_attributes).items()
    if name.startswith("GEN_AI_") and isinstance(value, str)
}
OPERATIONS = {v.value for v in gen_ai_attributes.GenAiOperationNameValues}
QUESTION = "Should a 12-person company move its file storage to the cloud?"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


@pytest.fixture(scope="module")
def prompts() -> PromptLibrary:
    return PromptLibrary()


def attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def of_operation(finished: tuple[ReadableSpan, ...], op: str) -> list[ReadableSpan]:
    return [s for s in finished if attrs(s).get("gen_ai.operation.name") == op]


async def research_run(prompts: PromptLibrary) -> tuple[str, list[dict[str, object]]]:
    loaded = load_graph(Path("graphs/research_report.yaml"))
    async with Runtime.open(load_catalog("models/sim.yaml"), prompts=prompts) as runtime:
        result = await run_graph(loaded.spec, runtime, QUESTION, locate=loaded.locate)
    assert result.status == "ok", result.error
    return result.run_id, result.steps


async def test_every_gen_ai_name_on_a_run_is_one_the_conventions_define(
    spans: InMemorySpanExporter, prompts: PromptLibrary
) -> None:
    await research_run(prompts)
    finished = spans.get_finished_spans()
    used = {k for s in finished for k in attrs(s) if k.startswith("gen_ai.")}
    used |= {k for s in finished for e in s.events for k in (e.attributes or {})}
    used = {k for k in used if k.startswith("gen_ai.")}
    assert used - GEN_AI_NAMES == set()
    for name in (
        "gen_ai.agent.name",
        "gen_ai.agent.id",
        "gen_ai.conversation.id",
        "gen_ai.evaluation.name",
        "gen_ai.evaluation.score.label",
    ):
        assert name in used, name
    assert {attrs(s).get("gen_ai.operation.name") for s in finished} - {None} <= OPERATIONS


async def test_a_run_is_a_workflow_span_with_one_agent_span_per_node_execution(
    spans: InMemorySpanExporter, prompts: PromptLibrary
) -> None:
    _, steps = await research_run(prompts)
    finished = spans.get_finished_spans()
    (workflow,) = of_operation(finished, "invoke_workflow")
    assert workflow.name == "invoke_workflow research_report"
    assert attrs(workflow)["gen_ai.workflow.name"] == "research_report"
    agents = of_operation(finished, "invoke_agent")
    # one step record per node execution (a judge's one execution judges every branch)
    executions = {(s["node"], s["branch"], s["round"]) for s in steps if s["kind"] != "judge"}
    judges = [s for s in agents if attrs(s)["agentmesh.node.kind"] == "judge"]
    assert len(agents) - len(judges) == len(executions)
    for span in agents:
        a = attrs(span)
        assert span.name == f"invoke_agent {a['gen_ai.agent.name']}"
        assert span.kind is SpanKind.INTERNAL
        assert a["gen_ai.agent.name"] == a["agentmesh.node.name"]
        assert a["gen_ai.agent.id"] == f"research_report/{a['gen_ai.agent.name']}"
        assert span.parent is not None
        assert span.parent.span_id == workflow.context.span_id
    assert {attrs(s)["gen_ai.agent.name"] for s in agents} == {
        "plan",
        "research",
        "check",
        "report",
    }
    by_id = {s.context.span_id: s for s in finished}
    for chat in of_operation(finished, "chat"):
        assert chat.parent is not None
        assert attrs(by_id[chat.parent.span_id])["gen_ai.operation.name"] == "invoke_agent"


async def test_every_span_of_a_run_carries_the_run_id_as_conversation_id(
    spans: InMemorySpanExporter, prompts: PromptLibrary
) -> None:
    run_id, _ = await research_run(prompts)
    finished = spans.get_finished_spans()
    assert {s.name.split()[0] for s in finished} >= {"invoke_workflow", "invoke_agent", "chat"}
    assert any(s.name.startswith("route ") for s in finished)
    missing = [s.name for s in finished if attrs(s).get("gen_ai.conversation.id") != run_id]
    assert missing == []


async def test_each_verdict_is_an_evaluation_event_naming_the_judged_node(
    spans: InMemorySpanExporter, prompts: PromptLibrary
) -> None:
    _, steps = await research_run(prompts)
    verdicts = [s["verdict"] for s in steps if s["kind"] == "judge"]
    finished = spans.get_finished_spans()
    judges = [s for s in of_operation(finished, "invoke_agent") if s.name == "invoke_agent check"]
    events = [e for s in judges for e in s.events if e.name == "gen_ai.evaluation.result"]
    assert len(events) == len(verdicts) > 0
    for event, verdict in zip(
        sorted(events, key=lambda e: (e.attributes or {})["agentmesh.evaluation.round"]),
        sorted(verdicts, key=lambda v: v["round"]),
        strict=True,
    ):
        a = dict(event.attributes or {})
        assert a["gen_ai.evaluation.name"] == "check"
        assert a["agentmesh.evaluation.node"] == "research"
        assert a["gen_ai.evaluation.score.label"] in ("pass", "fail")
        assert a["agentmesh.evaluation.round"] == verdict["round"]
    labels = {(e.attributes or {})["gen_ai.evaluation.score.label"] for e in events}
    passed = {"pass" if v["passed"] else "fail" for v in verdicts}
    assert labels == passed
    scored = [e for e in events if "gen_ai.evaluation.score.value" in (e.attributes or {})]
    assert all(
        0.0 <= float((e.attributes or {})["gen_ai.evaluation.score.value"]) <= 1.0 for e in scored
    )


def record_rejection(scope: tracing.SpanScope) -> None:
    tracing.record_evaluation(
        scope.span,
        name="check",
        passed=False,
        score=0.2,
        explanation="too short; see https://user:hunter22@example.com " + "x" * 2000,
        node="research",
        branch="02",
        round=2,
        model="sim-nano",
        gave_up=True,
    )


def test_a_rejected_verdict_explains_itself_without_leaking_credentials(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.content_capture(True), tracing.span("judge") as scope:
        record_rejection(scope)
    (span,) = spans.get_finished_spans()
    (event,) = span.events
    a = dict(event.attributes or {})
    assert a["gen_ai.evaluation.score.label"] == "fail"
    assert a["gen_ai.evaluation.score.value"] == 0.2
    assert "hunter22" not in str(a["gen_ai.evaluation.explanation"])
    assert len(str(a["gen_ai.evaluation.explanation"])) == tracing.evaluation.EXPLANATION_LIMIT
    assert (a["agentmesh.evaluation.branch"], a["agentmesh.evaluation.gave_up"]) == ("02", True)


def test_a_verdict_explains_itself_only_with_content_capture_on(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.content_capture(False), tracing.span("judge") as scope:
        record_rejection(scope)
    (event,) = spans.get_finished_spans()[0].events
    assert "gen_ai.evaluation.explanation" not in (event.attributes or {})
    assert (event.attributes or {})["gen_ai.evaluation.score.label"] == "fail"


async def test_merge_spans_list_the_branches_and_models_they_merged(
    spans: InMemorySpanExporter, prompts: PromptLibrary
) -> None:
    _, steps = await research_run(prompts)
    (merge,) = [s for s in spans.get_finished_spans() if s.name == "invoke_agent report"]
    a = attrs(merge)
    researched = [s for s in steps if s["node"] == "research" and s["status"] == "ok"]
    assert sorted(a["agentmesh.merge.branches"]) == sorted(  # type: ignore[call-overload]
        {f"research[{s['branch']}]" for s in researched}
    )
    assert set(a["agentmesh.merge.models"]) <= {s["model"] for s in researched}  # type: ignore[call-overload]
    assert a["agentmesh.merge.models"]


async def test_tool_spans_name_their_tool_and_node_and_the_conversation(
    spans: InMemorySpanExporter, prompts: PromptLibrary
) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    wf = Workflow("lc").tool("sum", tool="add", arguments={"a": 2, "b": 3})
    catalog = scripted_catalog(scripted_model("m"))
    async with Runtime.open(catalog, prompts=prompts, tools={"add": add}) as runtime:
        result = await run_graph(wf.spec(), runtime, "q")
    (tool,) = of_operation(spans.get_finished_spans(), "execute_tool")
    a = attrs(tool)
    assert tool.name == "execute_tool add"
    assert (a["gen_ai.tool.name"], a["agentmesh.node.name"]) == ("add", "sum")
    assert a["gen_ai.conversation.id"] == result.run_id


def test_conversation_binds_the_id_outside_a_run(spans: InMemorySpanExporter) -> None:
    with (
        tracing.conversation("thread-7"),
        tracing.node_span("solo", "executor"),
        tracing.span("inner"),
    ):
        pass
    names = {s.name: attrs(s) for s in spans.get_finished_spans()}
    assert names["inner"]["gen_ai.conversation.id"] == "thread-7"
    assert names["invoke_agent solo"]["gen_ai.conversation.id"] == "thread-7"
    assert names["invoke_agent solo"]["gen_ai.agent.id"] == "solo"
    assert tracing.current_run() == tracing.RunScope()
