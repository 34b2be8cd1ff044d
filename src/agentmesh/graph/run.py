"""Run a workflow: one ``invoke_workflow`` span, a checkpointed LangGraph run, a `RunResult`.

The result is what ``agentmesh run --json`` prints: status, output, error
(type, message, node), cost, tokens and one step record per node execution
(model, route, attempts, escalation). A failed run keeps every step that
finished (from the checkpoint) plus the attempts of the step that failed;
with a durable checkpointer it can be resumed by its run id. A run that a
node paused for a person (LangGraph's ``interrupt``) ends ``interrupted``,
listing what awaits (``pending``); resuming it with an answer continues it.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError
from langgraph.types import Command, Durability, PregelTask

from agentmesh._redact import scrub_credentials
from agentmesh.graph.checkpoints import CheckpointError
from agentmesh.graph.checks import Locate, check_graph, no_location
from agentmesh.graph.compile import compile_graph
from agentmesh.graph.memory_saver import RunMemorySaver
from agentmesh.graph.nodes import NodeFailed
from agentmesh.graph.outputs import output_result
from agentmesh.graph.pause import InvalidAnswer, answer_of
from agentmesh.graph.runtime import Runtime
from agentmesh.graph.spec import GraphNode, GraphSpec, HumanNode, JudgeNode
from agentmesh.graph.state import RUN_START
from agentmesh.graph.streaming import TokenHandler, TokenListener
from agentmesh.routing import StateError
from agentmesh.tracing import record_error, workflow_span
from agentmesh.tracing.attributes import COST_USD, RUN_STATUS

__all__ = ["GraphRunner", "RunError", "RunResult", "run_graph"]

StepListener = Callable[[dict[str, Any]], None]
Status = Literal["ok", "failed", "interrupted"]


class RunError(ValueError):
    """A run cannot start (e.g. ``--resume`` of a run the checkpointer does not hold)."""


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run.

    Attributes:
        run_id: The run's id (the checkpointer's thread id; ``--resume`` takes it).
        workflow: The graph's name.
        status: ``ok``, ``failed``, or ``interrupted`` (paused for a person).
        output: The output node's answer (``None`` when failed before it).
        error: ``{type, message, node}`` when failed.
        cost_usd: Money spent by every step.
        tokens: ``{input, output}`` billed.
        steps: One record per node execution, in completion order.
        simulated: Some answer came from a scripted (simulated) model.
        resumed: The run continued from a checkpoint.
        pending: When interrupted, what awaits an answer: ``{node, payload}`` each.
    """

    run_id: str
    workflow: str
    status: Status
    output: str | None
    error: Mapping[str, Any] | None
    cost_usd: float
    tokens: Mapping[str, int]
    steps: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    simulated: bool = False
    resumed: bool = False
    pending: tuple[Mapping[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "output": self.output,
            "error": dict(self.error) if self.error is not None else None,
            "cost_usd": self.cost_usd,
            "tokens": dict(self.tokens),
            "simulated": self.simulated,
            "resumed": self.resumed,
            "pending": [dict(p) for p in self.pending],
            "steps": [dict(s) for s in self.steps],
        }


def _ignore(_: dict[str, Any]) -> None:
    return None


def _dependency_errors() -> tuple[tuple[type[BaseException], str, str], ...]:
    """``(exception type, error type, what failed)`` of the stores a run depends on.

    Built from what is installed: SQLite always, PostgreSQL and Redis with
    their extras. An error of one of these inside a run ends the run as failed,
    naming the store, instead of escaping ``GraphRunner.run``.
    """
    found: list[tuple[type[BaseException], str, str]] = [
        (sqlite3.Error, "checkpoint_error", "checkpoint store"),
        (CheckpointError, "checkpoint_error", "checkpoint store"),
        (StateError, "state_error", "routing state"),
    ]
    for module, name, kind, what in (
        ("psycopg", "Error", "checkpoint_error", "checkpoint store"),
        ("redis.exceptions", "RedisError", "state_error", "routing state"),
    ):
        try:
            found.append((getattr(importlib.import_module(module), name), kind, what))
        except ImportError:
            continue
    return tuple(found)


_TASK_NOTE = re.compile(r"During task with name '(?P<node>[^']+)'")


def _dependency_failure(exc: BaseException, stores: Mapping[str, object]) -> dict[str, Any] | None:
    """The run's ``error`` if ``exc`` is a failure of a store it depends on, else ``None``."""
    for error_type, kind, what in _dependency_errors():
        if isinstance(exc, error_type):
            notes = " ".join(getattr(exc, "__notes__", ()))
            task = _TASK_NOTE.search(notes)
            store = type(stores[what]).__name__
            detail = scrub_credentials(str(exc).strip() or type(exc).__name__)
            return {
                "type": kind,
                "message": f"{what} ({store}) failed: {type(exc).__name__}: {detail}",
                "node": task["node"] if task else None,
            }
    return None


def _recursion_limit(graph: GraphSpec) -> int:
    rounds = max(
        (n.max_rounds for n in graph.nodes.values() if isinstance(n, JudgeNode)), default=1
    )
    # A loop's bound, not LangGraph's recursion limit, must stop it (loop_limit names
    # the node): each pass of a loop takes at most a superstep per node.
    passes = (graph.max_steps or 0) + sum(n.max_visits or 0 for n in graph.nodes.values())
    return 26 + 3 * len(graph.nodes) * (rounds + passes)  # + 1: the run's start node


def _node_at(graph: GraphSpec, path: str) -> Any:
    """The node spec ``path`` names (``outer/inner`` inside a subgraph), or ``None``."""
    node: Any = None
    for part in path.split("/"):
        node = graph.nodes.get(part)
        if not isinstance(node, GraphNode) or not isinstance(node.graph, GraphSpec):
            break
        graph = node.graph
    return node


def _pending(tasks: Sequence[PregelTask]) -> tuple[dict[str, Any], ...]:
    """What a paused run awaits: the node asking and what it shows, per interrupt.

    A node of a subgraph is named ``outer/inner`` (the task is the outer node).
    """
    found = []
    for task in tasks:
        for waiting in task.interrupts:
            value = waiting.value
            payload = value if isinstance(value, dict) else {"value": value}
            inner = payload.get("node") or task.name
            node = task.name if inner == task.name else f"{task.name}/{inner}"
            found.append({"node": node, "payload": payload})
    return tuple(found)


def _output(graph: GraphSpec, values: Mapping[str, Any]) -> str | None:
    found = output_result(graph, values)
    return found[0] if found is not None else None


class GraphRunner:
    """A graph checked and compiled once, to run many times (a service's long-lived handle).

    Args:
        graph: The workflow.
        runtime: Shared caller, prompts, tools.
        checkpointer: Where steps are checkpointed. Default: in memory, and a
            run that ends ``ok`` is then dropped from it (nothing to resume).
        locate: Names the file and line of a node in check errors.

    Raises:
        GraphError: The graph fails its compile-time checks (nothing was called).
    """

    def __init__(
        self,
        graph: GraphSpec,
        runtime: Runtime,
        *,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        locate: Locate = no_location,
    ) -> None:
        check_graph(
            graph,
            runtime.catalog,
            runtime.prompts,
            runtime.tools,
            runtime.validators,
            locate=locate,
        )
        self.graph = graph
        self.runtime = runtime
        self._forget_finished = checkpointer is None
        # A given checkpointer is for resuming: "sync" stores each step's checkpoint
        # before the next step starts, so a process killed at any moment loses at most
        # the running step. The default in-memory one dies with the process, so a
        # checkpoint no one can read before the run stops is waste: "exit" stores one
        # when the run stops (done, failed with the writes of the tasks that finished,
        # or paused), which is all that resuming in this process reads.
        self._durability: Durability = "sync" if checkpointer is not None else "exit"
        self.checkpointer = checkpointer if checkpointer is not None else RunMemorySaver()
        self.compiled = compile_graph(graph, runtime, checkpointer=self.checkpointer, check=False)
        self._limit = _recursion_limit(graph)

    async def run(
        self,
        input: str | None,
        *,
        run_id: str | None = None,
        budget_usd: float | None = None,
        resume: bool = False,
        on_step: StepListener | None = None,
        on_token: TokenListener | None = None,
        answer: Any = None,
        origin: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run on ``input`` (or resume run ``run_id``).

        Args:
            input: The run's input text (ignored when resuming).
            run_id: The run's id (new when ``None``); required to resume.
            budget_usd: Run budget; default the graph's ``budget_usd``.
            resume: Continue run ``run_id`` from its last checkpoint.
            on_step: Called with each step record as it completes (progress).
            on_token: Called with each token executor nodes stream, as it
                arrives (given, their calls are streamed: ``graph/streaming.py``).
            answer: Resuming an interrupted run: the person's answer
                (:func:`~agentmesh.graph.pause.approve`, ``reject``, ``value``),
                given to the paused node as ``Command(resume=answer)``.
            origin: Kept in the run's state (graph file, catalog...), for
                tools that resume a run from its id alone.

        Raises:
            RunError: Nothing to resume; an answer for a run that awaits none,
                or one the paused node does not take.
        """
        if resume and run_id is None:
            raise RunError("resuming needs the run id")
        graph, compiled = self.graph, self.compiled
        run_id = run_id or uuid.uuid4().hex[:12]
        config: Any = {"configurable": {"thread_id": run_id}, "recursion_limit": self._limit}
        if on_token is not None:
            config["callbacks"] = [TokenHandler(on_token)]
        budget = budget_usd if budget_usd is not None else graph.budget_usd
        start: dict[str, Any] | Command[Any] | None
        stores = {"checkpoint store": self.checkpointer, "routing state": self.runtime.router.state}
        if resume:
            try:
                snapshot = await compiled.aget_state(config)
                values = snapshot.values
                if values:
                    await self.runtime.router.seed_run_spending(
                        run_id, float(values.get("cost_usd", 0.0))
                    )
            except Exception as exc:  # nothing ran yet: the run cannot start
                failure = _dependency_failure(exc, stores)
                if failure is None:
                    raise
                raise RunError(f"cannot resume run {run_id!r}: {failure['message']}") from None
            if not values:
                raise RunError(f"no run {run_id!r} in the checkpointer: nothing to resume")
            start = None if answer is None else self._command(run_id, snapshot.tasks, answer)
        else:
            start = {"input": input or "", "run_id": run_id, "budget_usd": budget}
            if origin is not None:
                start = {**start, "origin": dict(origin)}
        error: dict[str, Any] | None = None
        failed_steps: list[dict[str, Any]] = []
        notify: StepListener = on_step or _ignore
        with workflow_span(graph.name, run_id=run_id, budget_usd=budget) as scope:
            try:
                updates = compiled.astream(
                    start, config, stream_mode="updates", durability=self._durability
                )
                async for chunk in updates:
                    for node, update in chunk.items():
                        if node == RUN_START or not isinstance(update, dict | None):
                            continue  # the start node has no step; "__interrupt__": a pause
                        for step in (update or {}).get("steps", ()):
                            notify(step)
            except NodeFailed as exc:
                failed_steps = exc.steps
                error = {"type": exc.kind, "message": exc.message, "node": exc.node}
                for step in failed_steps:
                    notify(step)
                record_error(scope.span, exc)
            except GraphRecursionError as exc:
                error = {"type": "recursion_limit", "message": str(exc), "node": None}
                record_error(scope.span, exc)
            except Exception as exc:  # a store the run depends on failed: the run fails
                error = _dependency_failure(exc, stores)
                if error is None:
                    raise
                record_error(scope.span, exc)
            pending: tuple[dict[str, Any], ...] = ()
            try:
                snapshot = await compiled.aget_state(config)
                values = snapshot.values
                pending = () if error else _pending(snapshot.tasks)
            except Exception as exc:  # the store is gone: report what the run itself knows
                failure = _dependency_failure(exc, stores)
                if failure is None:
                    raise
                error = error or failure
                values = {}
            steps = [*values.get("steps", []), *failed_steps]
            cost = sum(float(s["cost_usd"]) for s in steps)
            status: Status = "failed" if error else "interrupted" if pending else "ok"
            scope.set(RUN_STATUS, status)
            scope.set(COST_USD, cost)
        if status == "ok" and self._forget_finished:
            await self.checkpointer.adelete_thread(run_id)  # in memory: cannot fail
        await self._release_budget(run_id)
        return RunResult(
            run_id=run_id,
            workflow=graph.name,
            status=status,
            output=_output(graph, values) if status == "ok" else None,
            error=error,
            cost_usd=cost,
            tokens={
                "input": sum(int(s["input_tokens"]) for s in steps),
                "output": sum(int(s["output_tokens"]) for s in steps),
            },
            steps=tuple(steps),
            simulated=any(s.get("simulated") for s in steps),
            resumed=resume,
            pending=pending,
        )

    async def _release_budget(self, run_id: str) -> None:
        """Forget the run's budget in the routing state (the run TTL covers a failure here)."""
        try:
            await self.runtime.router.end_run(run_id)
        except Exception as exc:  # cleanup only: the result is complete, the TTL frees it
            stores = {
                "checkpoint store": self.checkpointer,
                "routing state": self.runtime.router.state,
            }
            if _dependency_failure(exc, stores) is None:
                raise

    def _command(self, run_id: str, tasks: Sequence[PregelTask], answer: Any) -> Command[Any]:
        """``Command(resume=answer)`` for a paused run, once the paused node takes ``answer``.

        Raises:
            RunError: The run awaits no answer, or not this one.
        """
        pending = _pending(tasks)
        if not pending:
            raise RunError(f"run {run_id!r} is not waiting for an answer: resume it without one")
        for waiting in pending:
            node = _node_at(self.graph, waiting["node"])
            accepts = tuple(node.accepts) if isinstance(node, HumanNode) else ("approve", "reject")
            try:
                answer_of(answer, accepts)
            except InvalidAnswer as exc:
                raise RunError(f"run {run_id!r}, node {waiting['node']!r}: {exc}") from None
        return Command(resume=answer)


async def run_graph(
    graph: GraphSpec,
    runtime: Runtime,
    input: str | None,
    *,
    run_id: str | None = None,
    budget_usd: float | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    resume: bool = False,
    on_step: StepListener | None = None,
    on_token: TokenListener | None = None,
    locate: Locate = no_location,
    answer: Any = None,
    origin: Mapping[str, Any] | None = None,
) -> RunResult:
    """Check, compile and run ``graph`` once (see :class:`GraphRunner` to run many times).

    Raises:
        GraphError: The graph fails its compile-time checks (nothing was called).
        RunError: Nothing to resume, or an answer the run does not await.
    """
    runner = GraphRunner(graph, runtime, checkpointer=checkpointer, locate=locate)
    return await runner.run(
        input,
        run_id=run_id,
        budget_usd=budget_usd,
        resume=resume,
        on_step=on_step,
        on_token=on_token,
        answer=answer,
        origin=origin,
    )
