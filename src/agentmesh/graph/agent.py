"""The executor node: one routed call, or with ``tools:`` a tool-using agent loop.

model → tool calls → tool results → model, until the model answers without a
tool call; ``max_iterations`` bounds the model turns (a model still asking for
tools on the last one fails the node with ``loop_limit``). Every turn is one
routed call through the runtime's shared
:class:`~agentmesh.resilience.ResilientCaller`, whose request builder appends
the conversation so far to the prompt rendered for whichever model is tried:
a retry, fallback or escalation mid-loop changes the model and the
conversation carries over.

The tool calls of one turn run concurrently (``asyncio.gather``; sync tools
in worker threads), each in an ``execute_tool {name}`` span carrying the
node's name. A tool call fails when the tool raises, is not one of the node's
tools, or gets arguments its schema rejects; by default
(``on_tool_error: return``) the error goes back to the model as that tool's
result, with ``on_tool_error: fail`` the node fails with error type
``tool_error`` naming the node and the tool. Nothing a tool does escapes as
an exception.

Each model turn of an agent is one step record, with ``iteration`` and
``tool_calls`` (``[{tool, ok, error, id, arguments}]``); the last carries the
answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentmesh._redact import scrub_credentials
from agentmesh.graph.nodes import ModelNodeRunner, NodeFailed, answer, extended, maybe_json
from agentmesh.graph.records import ErrorInfo, Step, usage_update
from agentmesh.graph.runtime import Tool, ToolArgumentsError
from agentmesh.graph.spec import ExecutorNode
from agentmesh.graph.state import Branch, RunState
from agentmesh.graph.streaming import routed_call
from agentmesh.models.spec import Capability
from agentmesh.models.types import ToolCall
from agentmesh.resilience import CallFailed, CallResult
from agentmesh.resilience.escalation import add_feedback
from agentmesh.tracing import SpanScope, record_error, tool_span
from agentmesh.tracing.attributes import ERROR_TYPE, NODE_NAME, NODE_TIME_TO_FIRST_TOKEN

__all__ = ["ExecutorRunner", "ToolRun", "run_tool"]


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One tool call of a model turn and how it went.

    Attributes:
        call: What the model asked for.
        text: What the model is told (the result, or ``error: ...``).
        error: Why the call failed (``None``: it did not).
    """

    call: ToolCall
    text: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The tool ran and returned."""
        return self.error is None

    def record(self) -> dict[str, Any]:
        """The call as a step's ``tool_calls`` entry."""
        return {
            "tool": self.call.name,
            "ok": self.ok,
            "error": self.error,
            "id": self.call.id,
            "arguments": dict(self.call.arguments),
        }

    def message(self) -> ToolMessage:
        """The call's result as the conversation's next message."""
        return ToolMessage(
            self.text,
            tool_call_id=self.call.id,
            name=self.call.name,
            status="success" if self.ok else "error",
        )


def _failed(call: ToolCall, kind: str, error: str, scope: SpanScope) -> ToolRun:
    error = scrub_credentials(error)
    scope.set(ERROR_TYPE, kind)
    return ToolRun(call, f"error: {error}", error)


async def run_tool(node: str, tools: Mapping[str, Tool], call: ToolCall) -> ToolRun:
    """Run one tool call of ``node``'s model in its ``execute_tool`` span; never raises.

    Args:
        node: The calling node (``agentmesh.node.name`` on the span).
        tools: The tools the node may call, by name.
        call: What the model asked for.
    """
    with tool_span(
        call.name, call_id=call.id, arguments=dict(call.arguments), attributes={NODE_NAME: node}
    ) as scope:
        tool = tools.get(call.name)
        if tool is None:
            known = ", ".join(tools) or "none"
            return _failed(
                call, "unknown_tool", f"no tool named {call.name!r}; available: {known}", scope
            )
        try:
            value = await tool.run(call.arguments)
            text = Tool.render(value)
        except ToolArgumentsError as exc:
            return _failed(call, "tool_arguments", str(exc), scope)
        except Exception as exc:  # a user's tool: whatever it raises is its result
            record_error(scope.span, exc)
            return _failed(
                call, "tool_error", f"tool {call.name!r} raised {type(exc).__name__}: {exc}", scope
            )
        scope.set_content("gen_ai.tool.call.result", text)
        return ToolRun(call, text)


def _asked(call: CallResult) -> AIMessage:
    """The model's turn as the conversation keeps it (text and tool calls)."""
    wanted = call.response.tool_calls
    return AIMessage(
        call.response.text,
        tool_calls=[{"name": c.name, "args": dict(c.arguments), "id": c.id} for c in wanted],
    )


class ExecutorRunner(ModelNodeRunner):
    """One routed call with the node's prompt; with tools, the agent loop (module docstring)."""

    kind = "executor"
    node: ExecutorNode

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Render, route, call; with tools, run what the model asks for and call again."""
        node = self.node
        tools = {name: self.runtime.tools[name] for name in node.tools}
        options: dict[str, Any] = {"tools": [t.spec() for t in tools.values()]} if tools else {}
        reference, build = self.builder(
            node.prompt, self.inputs(node.inputs, state, branch), **options
        )
        capabilities = self.capabilities(node.prompt, bool(tools))
        request = self.route_request(state, branch, reference, capabilities, build)
        if branch["feedback"] is not None:
            build = add_feedback(build, branch["previous"] or "", branch["feedback"])
        turns: list[BaseMessage] = []
        steps: list[Step] = []
        started, streamed = time.perf_counter(), False
        for iteration in range(1, node.max_iterations + 1):
            agent: dict[str, Any] = {"iteration": iteration} if tools else {}
            turn = extended(build, turns)
            if turns:
                request = self.route_request(state, branch, reference, capabilities, turn, turns)
            began = time.perf_counter()
            try:
                call, first = await routed_call(
                    self.runtime.caller, self.call(request, turn), branch
                )
            except CallFailed as failure:
                if failure.kind == "no_route" and iteration == 1 and branch["previous"] is not None:
                    return self._exhausted(branch, failure)
                step = self.step(
                    branch, [], failure.attempts, status="failed", error=_error_of(failure), **agent
                )
                raise NodeFailed(self.name, failure.kind, str(failure), [*steps, step]) from None
            if first is not None:
                agent["ttft_ms"] = round((first - began) * 1000.0, 2)
                if not streamed:
                    streamed = True
                    scope.set(NODE_TIME_TO_FIRST_TOKEN, first - started)
            wanted = call.response.tool_calls
            if not wanted or not tools:
                text = call.response.text
                data = maybe_json(text) if Capability.JSON in capabilities else None
                output = data if data is not None else text
                if tools:
                    agent["tool_calls"] = []
                steps.append(self.step(branch, [call], output=output, **agent))
                result = answer(text, call, branch, data=data)
                return {"results": {self.name: {branch["key"]: result}}, **usage_update(steps)}
            if iteration == node.max_iterations:
                message = (
                    f"the model still asked for tools ({', '.join(c.name for c in wanted)}) "
                    f"on its last turn (max_iterations={node.max_iterations})"
                )
                error = ErrorInfo("loop_limit", message)
                unrun = [ToolRun(c, "", "not run: max_iterations reached").record() for c in wanted]
                steps.append(
                    self.step(
                        branch, [call], status="failed", error=error, **agent, tool_calls=unrun
                    )
                )
                raise NodeFailed(self.name, "loop_limit", message, steps)
            runs = await asyncio.gather(*(run_tool(self.name, tools, c) for c in wanted))
            records = [r.record() for r in runs]
            failed = next((r for r in runs if not r.ok), None)
            if failed is not None and node.on_tool_error == "fail":
                message = f"tool {failed.call.name!r}: {failed.error}"
                error = ErrorInfo("tool_error", message)
                steps.append(
                    self.step(
                        branch, [call], status="failed", error=error, **agent, tool_calls=records
                    )
                )
                raise NodeFailed(self.name, "tool_error", message, steps)
            steps.append(self.step(branch, [call], **agent, tool_calls=records))
            turns.append(_asked(call))
            turns.extend(r.message() for r in runs)
        raise AssertionError(
            "unreachable: the last iteration returns or raises"
        )  # pragma: no cover

    def _exhausted(self, branch: Branch, failure: CallFailed) -> dict[str, Any]:
        """An escalated re-run with no stronger model left: keep the previous answer, say so."""
        step = self.step(
            branch, [], failure.attempts, status="no_stronger_model", error=_error_of(failure)
        )
        result = answer(branch["previous"] or "", None, branch, exhausted=True)
        return {"results": {self.name: {branch["key"]: result}}, **usage_update([step])}


def _error_of(failure: CallFailed) -> ErrorInfo:
    return ErrorInfo(failure.kind, str(failure))
