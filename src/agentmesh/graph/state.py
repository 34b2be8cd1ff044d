"""The LangGraph state of a run: plain JSON values, merged by reducers.

Everything in the state is JSON (no custom classes), so any LangGraph
checkpointer stores it and a resumed run sees the decisions and attempts of
the steps that already ran. Branches of a fan-out write under their own key,
so concurrent writes never collide.

``results``  node -> branch key -> result  (text, data, model, escalation, round, step)
``verdicts`` judge -> branch key -> verdict (passed, score, feedback, round, gave_up)
``steps``    one record per node execution (what ``agentmesh run --json`` prints)
``visits``   node -> executions in this run (what ``max_visits`` / ``max_steps`` bound)

A thread may hold several runs (LangGraph's server runs each new input on the
thread's state). The fields of :data:`PER_RUN` belong to one run: the graph's
first node, :data:`RUN_START`, resets them, so a second run on a thread starts
from no steps, no cost and no answers instead of adding to the first's.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, TypedDict

from agentmesh.graph.loops import add_counts

__all__ = ["PER_RUN", "RUN_START", "Branch", "RunState", "merge_nested"]

RUN_START = "agentmesh_start"
"""The node every run starts with: it resets :data:`PER_RUN` (a reserved node name)."""


def merge_nested(
    left: dict[str, dict[str, Any]] | None, right: dict[str, dict[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Reducer: merge ``{node: {key: value}}`` maps one level deep (right wins per key)."""
    merged = dict(left or {})
    for node, values in (right or {}).items():
        merged[node] = {**merged.get(node, {}), **values}
    return merged


class Branch(TypedDict):
    """One execution of a node: which branch, at what escalation, with what feedback."""

    key: str
    step: str | None
    escalation: int
    round: int
    feedback: str | None
    previous: str | None


class RunState(TypedDict, total=False):
    """The graph state.

    Attributes:
        input: The run's input text.
        run_id: The run's id (also the checkpointer's thread id).
        budget_usd: The run's budget, if any.
        results: Answers by node and branch.
        verdicts: Judge verdicts by judge and branch.
        steps: Step records, in completion order.
        cost_usd: Money spent by the run.
        input_tokens: Prompt tokens billed.
        output_tokens: Completion tokens billed.
        visits: Executions of each node in this run.
        origin: Where the run came from (graph file, catalog), so
            ``agentmesh resume`` can continue it from the run id alone.
        branch: The branch a node execution serves (only in ``Send`` payloads).
        run_started: The run id :data:`RUN_START` last started on this thread
            (how a new run tells a stale ``run_id`` from one its input gave).
    """

    input: str
    run_id: str
    budget_usd: float | None
    results: Annotated[dict[str, dict[str, Any]], merge_nested]
    verdicts: Annotated[dict[str, dict[str, Any]], merge_nested]
    steps: Annotated[list[dict[str, Any]], operator.add]
    cost_usd: Annotated[float, operator.add]
    input_tokens: Annotated[int, operator.add]
    output_tokens: Annotated[int, operator.add]
    visits: Annotated[dict[str, int], add_counts]
    origin: dict[str, Any]
    branch: Branch
    run_started: str


PER_RUN: Mapping[str, Callable[[], Any]] = MappingProxyType(
    {
        "results": dict,
        "verdicts": dict,
        "steps": list,
        "cost_usd": float,
        "input_tokens": int,
        "output_tokens": int,
        "visits": dict,
    }
)
"""State fields of one run, and the empty value each starts from."""


def first_branch(key: str = "") -> Branch:
    """The branch of a node's first execution."""
    return Branch(key=key, step=None, escalation=0, round=1, feedback=None, previous=None)
