"""`NodeUsageHandler`: tokens and cost of `RoutedChatModel` calls per node of a LangGraph graph.

The graph is LangGraph's own ``StateGraph`` (no agentmesh runner); two nodes
call routed models, one fans out; the handler must add up what each node's
calls used, per node and per thread, exactly as the answers report it.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typing_extensions import TypedDict

from agentmesh import NodeUsageHandler
from agentmesh.integrations import RoutedChatModel
from agentmesh.models import Gateway
from agentmesh.resilience import CallFailed, ResilientCaller
from agentmesh.routing import Policy, Router
from agentmesh.testing import scripted_catalog, scripted_model

from .test_tracing_support import span_fixture

PRICED = {"pricing": {"input": 1.0, "output": 2.0}}


class State(TypedDict, total=False):
    question: str
    topic: str
    answers: Annotated[list[AIMessage], operator.add]


def caller(*specs: Any) -> ResilientCaller:
    catalog = scripted_catalog(*specs)
    return ResilientCaller(Router(catalog, policy=Policy(strategy="cheapest")), Gateway(catalog))


def graph(planner: Any, writer: Any, topics: int = 3) -> Any:
    async def plan(state: State) -> dict[str, Any]:
        reply = await planner.ainvoke([HumanMessage(state["question"])])
        return {"answers": [reply]}

    def fan_out(state: State) -> list[Send]:
        return [Send("write", {"topic": f"topic {i}"}) for i in range(topics)]

    async def write(state: State) -> dict[str, Any]:
        reply = await writer.ainvoke([HumanMessage(f"Write about {state['topic']}")])
        return {"answers": [reply]}

    built = StateGraph(State)
    built.add_node("plan", plan)
    built.add_node("write", write)
    built.add_edge(START, "plan")
    built.add_conditional_edges("plan", fan_out, ["write"])
    built.add_edge("write", END)
    return built.compile()


def spent(answers: list[AIMessage]) -> dict[str, Any]:
    return {
        "calls": len(answers),
        "input": sum((a.usage_metadata or {}).get("input_tokens", 0) for a in answers),
        "output": sum((a.usage_metadata or {}).get("output_tokens", 0) for a in answers),
        "cost": sum(a.response_metadata["cost_usd"] for a in answers),
    }


async def test_usage_and_cost_add_up_per_langgraph_node() -> None:
    shared = caller(
        scripted_model("small", fields=PRICED), scripted_model("big", tier=2, fields=PRICED)
    )
    planner = RoutedChatModel(caller=shared, node="planning")
    writer = RoutedChatModel(caller=shared, node="writing", policy=Policy(min_tier=2))
    usage = NodeUsageHandler()
    config = {"callbacks": [usage], "configurable": {"thread_id": "t1"}}
    state = await graph(planner, writer).ainvoke({"question": "What?"}, config)
    plan_answers, write_answers = state["answers"][:1], state["answers"][1:]
    nodes = usage.nodes()
    assert set(nodes) == {"plan", "write"}  # LangGraph's node names, not the models' `node`
    for name, answers in (("plan", plan_answers), ("write", write_answers)):
        figures, expected = nodes[name], spent(answers)
        assert figures.calls == expected["calls"]
        assert figures.input_tokens == expected["input"] > 0
        assert figures.output_tokens == expected["output"] > 0
        assert figures.cost_usd == pytest.approx(expected["cost"])
        assert figures.cost_usd > 0
        assert figures.errors == 0
        assert figures.simulated
    assert dict(nodes["plan"].models) == {"small": 1}
    assert dict(nodes["write"].models) == {"big": 3}
    total = usage.total()
    assert total.cost_usd == pytest.approx(spent(state["answers"])["cost"])
    assert usage.threads() == ["t1"]
    assert usage.to_dict()["nodes"]["write"]["calls"] == 3


async def test_threads_are_told_apart_and_failures_counted_with_their_attempts() -> None:
    shared = caller(scripted_model("ok", fields=PRICED))
    broken = caller(scripted_model("down", down=True))
    usage = NodeUsageHandler()
    app = graph(RoutedChatModel(caller=shared), RoutedChatModel(caller=shared), topics=2)
    for thread in ("a", "b"):
        await app.ainvoke(
            {"question": thread}, {"callbacks": [usage], "configurable": {"thread_id": thread}}
        )
    assert usage.threads() == ["a", "b"]
    assert usage.nodes(thread_id="a")["write"].calls == 2
    assert usage.total(thread_id="b").calls == 3
    assert usage.total().calls == 6

    failing = graph(RoutedChatModel(caller=broken), RoutedChatModel(caller=shared))
    with pytest.raises(CallFailed):
        await failing.ainvoke(
            {"question": "x"}, {"callbacks": [usage], "configurable": {"thread_id": "c"}}
        )
    (plan,) = usage.nodes(thread_id="c").values()
    assert (plan.calls, plan.errors, plan.cost_usd) == (1, 1, 0.0)
    assert plan.attempts >= 1


def test_sync_calls_outside_a_graph_count_under_the_models_node() -> None:
    model = RoutedChatModel(caller=caller(scripted_model("m", fields=PRICED)), node="solo")
    other = FakeListChatModel(responses=["plain"])
    usage = NodeUsageHandler()
    try:
        answer = model.invoke("hi", config={"callbacks": [usage]})
        other.invoke("hi", config={"callbacks": [usage]})
    finally:
        model.close()
    nodes = usage.nodes()
    assert nodes["solo"].cost_usd == pytest.approx(answer.response_metadata["cost_usd"])
    assert nodes["solo"].calls == 1
    assert nodes["-"].calls == 1  # a model that names no node, reports no usage and no cost
    assert (nodes["-"].input_tokens, nodes["-"].cost_usd) == (0, 0.0)
    usage.reset()
    assert usage.nodes() == {}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from span_fixture()


async def test_routed_calls_in_a_langgraph_thread_carry_it_as_conversation_id(
    spans: InMemorySpanExporter,
) -> None:
    shared = caller(scripted_model("m", fields=PRICED))
    app = graph(RoutedChatModel(caller=shared), RoutedChatModel(caller=shared), topics=2)
    await app.ainvoke({"question": "q"}, {"configurable": {"thread_id": "t9"}})
    finished = spans.get_finished_spans()
    routed = [s for s in finished if s.name.split()[0] in ("route", "chat", "chat_model")]
    assert len(routed) == 3 * 3
    assert {(s.attributes or {}).get("gen_ai.conversation.id") for s in routed} == {"t9"}


async def test_streamed_and_sync_calls_carry_the_thread_id_too(
    spans: InMemorySpanExporter,
) -> None:
    model = RoutedChatModel(caller=caller(scripted_model("m", fields=PRICED)))

    async def talk(state: State) -> dict[str, Any]:
        chunks = [c async for c in model.astream(state["question"])]
        return {"answers": [AIMessage(str(sum(len(str(c.content)) for c in chunks)))]}

    built = StateGraph(State)
    built.add_node("talk", talk)
    built.add_edge(START, "talk")
    built.add_edge("talk", END)
    await built.compile().ainvoke({"question": "q"}, {"configurable": {"thread_id": "s2"}})
    try:
        model.invoke("hi", config={"metadata": {"thread_id": "s1"}})
    finally:
        model.close()
    chats = [s for s in spans.get_finished_spans() if s.name == "chat m"]
    assert [(s.attributes or {}).get("gen_ai.conversation.id") for s in chats] == ["s2", "s1"]
