"""What the planner and tool nodes do when LangGraph runs them (and their base).

Every node is a small object with ``async __call__(state) -> update``; model
calls go through the runtime's shared :class:`ResilientCaller` with a
``RouteRequest`` carrying the node's name, role, task, escalation level and
the run's budget, and a request builder that renders the node's prompt for
whichever model is tried. Each execution appends one step record (model,
route, attempts, tokens, cost) to the state; a node that cannot finish raises
:class:`NodeFailed` carrying the records of what it did try.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from langchain_core.messages import BaseMessage

from agentmesh._jsontext import loads as json_loads
from agentmesh.graph.branches import read_field
from agentmesh.graph.loops import loop_limit, visited
from agentmesh.graph.pause import InvalidAnswer, ask
from agentmesh.graph.records import ErrorInfo, Step, usage_update
from agentmesh.graph.runtime import Runtime, Tool, ToolArgumentsError
from agentmesh.graph.spec import (
    GraphSpec,
    ModelNode,
    PlannerNode,
    Ref,
    ToolNode,
    parse_ref,
)
from agentmesh.graph.state import Branch, RunState, first_branch
from agentmesh.models.spec import Capability, ModelSpec
from agentmesh.models.tokens import estimate_message_tokens
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.prompts import RenderedPrompt
from agentmesh.resilience import (
    Attempt,
    Call,
    CallFailed,
    CallResult,
    RequestBuilder,
    Verdict,
    call_until,
)
from agentmesh.resilience.policy import ResiliencePolicy
from agentmesh.routing.policy import Policy
from agentmesh.routing.types import RouteRequest
from agentmesh.tracing import SpanScope, node_span, tool_span
from agentmesh.tracing.attributes import (
    COST_USD,
    ESCALATION_LEVEL,
    NODE_BRANCH,
    NODE_MODELS,
    NODE_NAME,
)

__all__ = [
    "ModelNodeRunner",
    "NodeFailed",
    "NodeRunner",
    "PlannerRunner",
    "ToolRunner",
    "answer",
    "extended",
    "maybe_json",
    "parse_json",
    "resolve",
    "resolve_ref",
]


class NodeFailed(RuntimeError):
    """A node could not finish; the run stops here (and may be resumed).

    Its message names the node, the error type and what happened (model errors
    are redacted when made). A ``RuntimeError``, so LangGraph's server passes
    that message to its client instead of "An internal error occurred".

    Attributes:
        node: The node's name.
        kind: Error type (``CallFailed.kind``, ``judge_gave_up``, ``tool_error``...).
        steps: Step records (``Step.to_dict()``) of what the node did try (failed
            attempts included).
    """

    def __init__(self, node: str, kind: str, message: str, steps: Sequence[Step] = ()) -> None:
        super().__init__(f"node {node!r}: {kind}: {message}")
        self.node = node
        self.kind = kind
        self.message = message
        self.steps = [s.to_dict() for s in steps]


_UNPARSED: Any = object()
"""What :meth:`NodeRunner.resolve` finds for a string it has not parsed yet."""


def resolve(value: Any, state: RunState, branch: Branch | None = None) -> Any:
    """The value of a node input: a literal, or what a reference points to."""
    return resolve_ref(value, parse_ref(value), state, branch)


def resolve_ref(value: Any, ref: Ref | None, state: RunState, branch: Branch | None = None) -> Any:
    """:func:`resolve` of ``value`` whose reference, ``parse_ref(value)``, is ``ref``."""
    if ref is None:
        return value[1:] if isinstance(value, str) and value.startswith("$$") else value
    if ref.name == "input":
        return state.get("input", "")
    if ref.name == "step":
        return (branch["step"] if branch is not None else None) or ""
    found = state.get("results", {}).get(ref.name, {})
    ordered = [found[k] for k in sorted(found)]
    if ref.field is None:
        return "\n\n".join(r["text"] for r in ordered)
    value = ordered[0].get("data") if ordered else None
    for key in ref.field.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


class NodeRunner(ABC):
    """Base of node implementations: the node's spec, the graph and the runtime."""

    kind: ClassVar[str]

    def __init__(self, name: str, node: Any, graph: GraphSpec, runtime: Runtime) -> None:
        self.name = name
        self.node = node
        self.graph = graph
        self.runtime = runtime
        self._refs: dict[str, Ref | None] = {}  # parse_ref of the spec's strings, once each

    def resolve(self, value: Any, state: RunState, branch: Branch | None = None) -> Any:
        """:func:`resolve`, each of the node's references parsed once."""
        if not isinstance(value, str) or not value.startswith("$"):
            return value
        ref = self._refs.get(value, _UNPARSED)
        if ref is _UNPARSED:
            ref = self._refs[value] = parse_ref(value)
        return resolve_ref(value, ref, state, branch)

    async def __call__(self, state: RunState) -> dict[str, Any]:
        """Run the node once (one branch) inside its ``node {name}`` span.

        With ``interrupt: before`` the run first pauses for a person, shown
        the node's inputs (:func:`~agentmesh.graph.pause.ask`); approved, the
        node runs.

        Raises:
            NodeFailed: The node failed, running it would pass a loop bound
                (``loop_limit``: its ``max_visits`` or the graph's ``max_steps``),
                or a person rejected running it (``rejected``).
        """
        branch = self.entered(state)
        if self.node.interrupt == "before":
            self._approved(state, branch)
        attributes: dict[str, str | int] = {
            ESCALATION_LEVEL: branch["escalation"],
            NODE_BRANCH: branch["key"],
        }
        with node_span(
            self.name, self.kind, run_id=state.get("run_id"), attributes=attributes
        ) as scope:
            update = await self.run(state, branch, scope)
            if scope.recording:
                scope.set(COST_USD, update.get("cost_usd", 0.0))
                models = [s["model"] for s in update.get("steps", ()) if s.get("model")]
                if models:
                    scope.set(NODE_MODELS, ",".join(dict.fromkeys(models)))
            return {**update, **visited(self.name)}

    def entered(self, state: RunState, *, counted: bool = True) -> Branch:
        """The branch this execution runs in, once a counted visit is within its loop bounds.

        Raises:
            NodeFailed: ``loop_limit``: the node's ``max_visits`` or the graph's
                ``max_steps`` would be passed (only for a ``counted`` visit).
        """
        if counted:
            limit = loop_limit(self.name, self.node.max_visits, self.graph, state)
            if limit is not None:
                raise NodeFailed(self.name, "loop_limit", limit)
        return state.get("branch") or first_branch()

    @abstractmethod
    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """The node's work inside its span (``scope``); returns the state update."""

    def preview(self, state: RunState, branch: Branch) -> dict[str, Any]:
        """What a person approving this node is shown: its inputs (or arguments), resolved."""
        values = getattr(self.node, "inputs", None) or getattr(self.node, "arguments", None) or {}
        return {k: self.resolve(v, state, branch) for k, v in values.items()}

    def _approved(self, state: RunState, branch: Branch) -> None:
        payload = {"node": self.name, "when": "before", "inputs": self.preview(state, branch)}
        try:
            answer = ask(payload)
        except InvalidAnswer as exc:
            raise NodeFailed(self.name, "invalid_answer", str(exc)) from None
        if answer.verdict == "rejected":
            why = f": {answer.feedback}" if answer.feedback else ""
            raise NodeFailed(self.name, "rejected", f"a person rejected running it{why}")

    def branch_value(self, state: RunState, field: str) -> Any:
        """What a ``branch: {on: field}`` of this node reads: a field of its JSON answer."""
        found = state.get("results", {}).get(self.name, {})
        return read_field(found[min(found)].get("data"), field) if found else None

    def step(
        self,
        branch: Branch,
        calls: Sequence[CallResult],
        failed: Sequence[Attempt] = (),
        **fields: Any,
    ) -> Step:
        """This node's :class:`Step` of ``calls`` (``fields``: status, output, error, extras)."""
        return Step.of_calls(self.name, self.kind, branch, calls, failed, **fields)


class ModelNodeRunner(NodeRunner):
    """Shared by nodes that call models: routing requests and prompt builders."""

    node: ModelNode

    def __init__(self, name: str, node: Any, graph: GraphSpec, runtime: Runtime) -> None:
        super().__init__(name, node, graph, runtime)
        # The model the router's prompt estimate is rendered for (cheapest first).
        self._cheapest = runtime.catalog.by_tier()[0]

    def route_request(
        self,
        state: RunState,
        branch: Branch,
        reference: RenderedPrompt,
        capabilities: frozenset[Capability],
        build: RequestBuilder,
        extra: Sequence[BaseMessage] = (),
    ) -> RouteRequest:
        """What this node asks the router for (``extra``: messages ``build`` appends).

        The prompt's tokens are estimated on the rendered messages, per-message
        overhead included, as the gateway counts them for providers that
        report no usage (an estimate that never undercounts): the budget
        reservation is then the call's true worst case. Models whose own
        tokenizer is at hand (``Gateway.token_counting_models``) count the
        request built for them exactly, so their reservation is not inflated.
        """
        gateway = self.runtime.caller.gateway
        catalog = self.runtime.catalog
        exact = {}
        for model in gateway.token_counting_models():
            counted = gateway.count_prompt_tokens(model, build(catalog[model]))
            if counted is not None:
                exact[model] = counted
        return RouteRequest(
            node=self.name,
            role=self.kind,
            task=self.node.task,
            prompt=reference.text,
            prompt_tokens=estimate_message_tokens([*reference.messages, *extra]),
            prompt_tokens_by_model=exact,
            max_output_tokens=self.node.max_output_tokens,
            capabilities=capabilities,
            run_id=state.get("run_id"),
            run_budget_usd=state.get("budget_usd"),
            escalation=branch["escalation"],
            round=branch["round"],
        )

    def builder(
        self, template: str, inputs: Mapping[str, Any], **options: Any
    ) -> tuple[RenderedPrompt, RequestBuilder]:
        """A reference rendering (for the router's estimate) and a per-model request builder.

        Renderings are cached per variant file, so the reference is reused
        when the chosen model takes the same variant.
        """
        prompts = self.runtime.prompts
        cache: dict[str, RenderedPrompt] = {}
        max_tokens = self.node.max_output_tokens

        def render(spec: ModelSpec) -> RenderedPrompt:
            variant = prompts.resolve(template, spec).variant.file
            found = cache.get(variant)
            if found is None:
                found = cache[variant] = prompts.render(template, spec, inputs)
            return found

        def build(spec: ModelSpec) -> ModelRequest:
            return render(spec).to_request(max_tokens=max_tokens, **options)

        reference = render(self._cheapest)
        return reference, build

    def capabilities(self, template: str, tools: bool = False) -> frozenset[Capability]:
        """Capabilities the node's calls need."""
        caps: set[Capability] = set()
        if self.runtime.prompts.template(template).output_schema is not None:
            caps.add(Capability.JSON)
        if tools:
            caps.add(Capability.TOOLS)
        return frozenset(caps)

    def inputs(self, values: Mapping[str, Any], state: RunState, branch: Branch) -> dict[str, Any]:
        """The template inputs, references resolved (``None`` values left out)."""
        resolved = {k: self.resolve(v, state, branch) for k, v in values.items()}
        return {k: v for k, v in resolved.items() if v is not None}

    def policy(self) -> Policy:
        """The node's routing policy."""
        return self.graph.node_policy(self.node)

    def resilience(self) -> ResiliencePolicy | None:
        """The node's resilience policy (``None``: the caller's)."""
        return self.node.resilience or self.graph.resilience

    def call(self, route: RouteRequest, request: ModelRequest | RequestBuilder) -> Call:
        """The node's :class:`Call`: its policies and its empty-answer rule."""
        return Call(
            route,
            request,
            self.policy(),
            self.resilience(),
            allow_empty=self.node.allow_empty,
        )

    def failed(
        self, branch: Branch, failure: CallFailed, calls: Sequence[CallResult] = ()
    ) -> NodeFailed:
        """A :class:`NodeFailed` for a call that no model served, with its attempts."""
        step = self.step(branch, calls, failure.attempts, status="failed", error=_error_of(failure))
        return NodeFailed(self.name, failure.kind, str(failure), [step])


def answer(text: str, call: CallResult | None, branch: Branch, **extra: Any) -> dict[str, Any]:
    """A node's answer as stored in ``results``: text, JSON data, who answered, which round."""
    return {
        "text": text,
        "data": extra.pop("data", None),
        "model": call.model if call is not None else None,
        "task": call.decision.task if call is not None else None,
        "decision_id": call.decision.decision_id if call is not None else None,
        "escalation": branch["escalation"],
        "round": branch["round"],
        "step": branch["step"],
        **extra,
    }


def parse_json(text: str) -> Any:
    """The JSON value in ``text`` (the first ``{...}`` object if there is prose around it)."""
    try:
        return json_loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            return json_loads(text[start : end + 1])
        raise


class PlannerRunner(ModelNodeRunner):
    """Plans steps (``{"steps": [...]}``); an unusable plan is asked again one tier up."""

    kind = "planner"
    node: PlannerNode

    @staticmethod
    def _steps(response: ModelResponse) -> list[str] | None:
        try:
            data = parse_json(response.text)
        except ValueError:
            return None
        steps = data.get("steps") if isinstance(data, dict) else None
        if not isinstance(steps, list):
            return None
        kept = [str(s).strip() for s in steps if str(s).strip()]
        return kept or None

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Ask for a plan until one parses (escalating), keep ``max_steps`` steps."""
        node = self.node
        values = dict(node.inputs)
        if "max_steps" in self.runtime.prompts.template(node.prompt).inputs:
            values.setdefault("max_steps", node.max_steps)
        inputs = self.inputs(values, state, branch)
        reference, build = self.builder(node.prompt, inputs)
        request = self.route_request(
            state, branch, reference, self.capabilities(node.prompt) | {Capability.JSON}, build
        )

        def check(response: ModelResponse) -> Verdict:
            if self._steps(response) is None:
                return Verdict(False, 0.0, 'Answer with JSON: {"steps": ["...", "..."]}.')
            return Verdict(True)

        outcome = await call_until(
            self.runtime.caller,
            self.call(request, build),
            check,
            max_rounds=2,
            record_scores=False,
        )
        calls = [r.result for r in outcome.rounds if r.result is not None]
        if outcome.status != "accepted":
            failure = outcome.rounds[-1].failure
            if failure is not None:  # the last round found no model: say why, not "no plan"
                raise self.failed(branch, failure, calls)
            error = ErrorInfo("invalid_plan", "no usable plan")
            step = self.step(branch, calls, status="failed", error=error)
            raise NodeFailed(self.name, "invalid_plan", "no model produced a usable plan", [step])
        final = calls[-1]
        steps = self._steps(final.response) or []
        dropped = len(steps) - node.max_steps
        steps = steps[: node.max_steps]
        notes = [f"dropped {dropped} steps over max_steps"] if dropped > 0 else []
        plan = {"steps": steps}
        record = self.step(branch, calls, output=plan, plan=steps, notes=notes)
        result = answer(json.dumps(plan), final, branch, data=plan)
        return {"results": {self.name: {branch["key"]: result}}, **usage_update([record])}


def _error_of(failure: CallFailed) -> ErrorInfo:
    return ErrorInfo(failure.kind, str(failure))


def maybe_json(text: str) -> Any:
    """The JSON value in ``text``, or ``None`` when there is none."""
    try:
        return parse_json(text)
    except ValueError:
        return None


def extended(build: RequestBuilder, extra: Sequence[BaseMessage]) -> RequestBuilder:
    """``build`` with ``extra`` messages (a conversation so far) after each model's prompt."""
    if not extra:
        return build
    turns = list(extra)

    def rebuilt(spec: ModelSpec) -> ModelRequest:
        base = build(spec)
        return replace(base, messages=[*base.messages, *turns], prompt=None)

    return rebuilt


class ToolRunner(NodeRunner):
    """Calls a registered tool with validated arguments; no model."""

    kind = "tool"
    node: ToolNode

    async def run(self, state: RunState, branch: Branch, scope: SpanScope) -> dict[str, Any]:
        """Resolve the arguments, run the tool in an ``execute_tool`` span, record."""
        tool = self.runtime.tools[self.node.tool]
        arguments = {k: self.resolve(v, state, branch) for k, v in self.node.arguments.items()}
        with tool_span(tool.name, arguments=arguments, attributes={NODE_NAME: self.name}):
            try:
                value = await tool.run(arguments)
            except ToolArgumentsError as exc:
                raise NodeFailed(self.name, "tool_arguments", str(exc)) from None
            except Exception as exc:
                message = f"tool {tool.name!r} raised {type(exc).__name__}: {exc}"
                raise NodeFailed(self.name, "tool_error", message) from exc
        data = value if isinstance(value, dict | list) else None
        text = Tool.render(value)
        record = self.step(branch, [], output=data if data is not None else text, tool=tool.name)
        result = answer(text, None, branch, data=data)
        return {"results": {self.name: {branch["key"]: result}}, **usage_update([record])}
