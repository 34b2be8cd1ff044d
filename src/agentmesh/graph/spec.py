"""The graph format: what a workflow is, as data (YAML files and the Python builder).

One set of frozen pydantic models describes a workflow; ``graphs/*.yaml``
files validate into it (:func:`agentmesh.graph.load_graph`) and the Python
:class:`~agentmesh.graph.Workflow` builder produces it, so both compile
through the same code. The JSON Schema editors use is this model's schema
(``agentmesh schema``).

.. code-block:: yaml

    name: research_report
    budget_usd: 0.05                 # run budget (``agentmesh run --budget`` overrides)
    policy: {strategy: cheapest}     # default routing policy of model-calling nodes
    nodes:
      plan:
        kind: planner
        prompt: plan
        inputs: {question: $input, max_steps: 3}
        fan_out: research            # one executor run per planned step (LangGraph Send)
      research:
        kind: executor
        prompt: execute_step
        inputs: {question: $input, step: $step}
      check:
        kind: judge
        target: research             # judges every branch of research
        rubric: Concrete, with numbers.
        validators: [{min_words: 20}]
        max_rounds: 3                # failing answers re-run one tier up, with the feedback
      report:
        kind: merge
        from: [research]
        synthesis: {strategy: refine}
    edges: [research -> check, check -> report]

Values of ``inputs`` and ``arguments`` are literals or references: ``$input``
(the run's input), ``$step`` (the planned step, in a fan-out target),
``$<node>`` (a node's output text) and ``$<node>.<field>`` (a field of a
node's JSON output; ``$triage.fields.order_id`` goes deeper); ``$$`` starts a
literal ``$``.

``tools:`` maps tool names to Python callables or LangChain tools, written
``module:attribute`` or ``path/to/file.py:attribute`` (relative to the graph file).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from agentmesh.graph.branches import BranchSpec
from agentmesh.graph.state import RUN_START
from agentmesh.resilience.policy import ResiliencePolicy
from agentmesh.routing.policy import Policy
from agentmesh.synthesis.spec import MergeSpec

__all__ = [
    "END_NODE",
    "NODE_KINDS",
    "ExecutorNode",
    "FunctionNode",
    "GraphNode",
    "GraphSpec",
    "HumanNode",
    "JudgeNode",
    "MergeNode",
    "ModelNode",
    "NodeSpec",
    "PlannerNode",
    "Ref",
    "ToolNode",
    "parse_ref",
]

END_NODE = "END"
"""The name an edge uses to end the run (``check -> END``)."""

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_NAME_RE = re.compile(rf"^{_NAME}$")
_REF_RE = re.compile(rf"^\$({_NAME})((?:\.{_NAME})*)$")
_EDGE_RE = re.compile(rf"^\s*({_NAME})\s*->\s*({_NAME})\s*$")


class Ref(BaseModel):
    """A reference to a value of the run: ``$input``, ``$step``, ``$node`` or ``$node.field``."""

    model_config = ConfigDict(frozen=True)

    name: str
    field: str | None = None

    def __str__(self) -> str:
        return f"${self.name}" + (f".{self.field}" if self.field else "")


def parse_ref(value: Any) -> Ref | None:
    """The reference ``value`` is, or ``None`` for a literal (``$$x`` is the literal ``$x``)."""
    if not isinstance(value, str) or not value.startswith("$") or value.startswith("$$"):
        return None
    match = _REF_RE.match(value)
    if match is None:
        raise ValueError(
            f"{value!r} is not a reference: use $input, $step, $<node> or "
            "$<node>.<field>[.<key>...] ($$ for a literal $)"
        )
    return Ref(name=match.group(1), field=match.group(2)[1:] or None)


def _checked_ref(value: Any) -> Any:
    parse_ref(value)
    return value


Value = Annotated[Any, AfterValidator(_checked_ref)]
"""A node input: a literal or a reference (checked where it is written, for line numbers)."""


class _Node(BaseModel):
    """Fields of every node.

    Attributes:
        description: What the node does.
        branch: Where it goes next by its output (a conditional edge, see
            :class:`~agentmesh.graph.branches.BranchSpec`); its plain edges
            then go in the cases.
        max_visits: Most executions of this node in one run; one more fails
            the run (``loop_limit``). A cycle needs this on one of its nodes,
            or the graph's ``max_steps``.
        interrupt: Pause for a person ``before`` the node runs (shown its
            inputs; approve runs it, reject fails the run) or ``after`` (shown
            its output; the answer is its ``verdict`` for a branch).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    description: str = ""
    branch: BranchSpec | None = None
    max_visits: Annotated[int | None, Field(ge=1)] = None
    interrupt: Literal["before", "after"] | None = None


class ModelNode(_Node):
    """Fields of every node that calls models.

    Attributes:
        policy: Routing policy (the graph's ``policy`` when absent). Graphs
            never name a model; tier bounds, tags and strategy say what fits.
        resilience: Resilience policy (the graph's when absent).
        task: Task label for routing (``math``, ``code``...); ``None`` lets
            the router's classifier decide.
        max_output_tokens: Output tokens one call may produce.
        allow_empty: Accept a reply with no text and no tool call (by default
            it is a ``malformed_response``: retried, then falls back).
    """

    policy: Policy | None = None
    resilience: ResiliencePolicy | None = None
    task: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] = 512
    allow_empty: bool = False


class PlannerNode(ModelNode):
    """Produces a structured plan (``{"steps": [...]}``) and may fan out one branch per step.

    Attributes:
        prompt: Template rendering the planning request; its output schema
            must have a ``steps`` list.
        inputs: Template inputs (literals or references).
        fan_out: Executor node that runs once per step, concurrently (``Send``).
        max_steps: Steps kept from the plan (the rest are dropped, and said so).
    """

    kind: Literal["planner"] = "planner"
    prompt: str = "plan"
    inputs: dict[str, Value] = Field(default_factory=dict)
    fan_out: str | None = None
    max_steps: Annotated[int, Field(ge=1, le=50)] = 5


class ExecutorNode(ModelNode):
    """Does one piece of work with a routed model and a prompt template; with tools, an agent.

    With ``tools`` the node is a tool-using agent (``graph/agent.py``): the model
    is called, the tools it asks for run (concurrently when one turn asks for
    several), their results go back to it, and it is called again, until it
    answers without a tool call. Every turn is a routed call, so a fallback or
    an escalation may change the model mid-loop; the conversation carries over.

    Attributes:
        prompt: Template name.
        inputs: Template inputs (literals or references).
        tools: Names of tools (from the runtime's tool registry) the model may call.
        max_iterations: Most model turns (routed calls) of one execution; a
            model still asking for tools on the last one fails the node
            (error type ``loop_limit``). Replaces ``max_tool_rounds`` (= this - 1).
        on_tool_error: What a failed tool call does (the tool raised, is
            unknown, or its arguments do not fit its schema): ``return`` the
            error to the model as the tool's result, or ``fail`` the node with
            error type ``tool_error`` naming the node and the tool.
    """

    kind: Literal["executor"] = "executor"
    prompt: str
    inputs: dict[str, Value] = Field(default_factory=dict)
    tools: tuple[str, ...] = ()
    max_iterations: Annotated[int, Field(ge=1, le=50)] = 5
    on_tool_error: Literal["return", "fail"] = "return"

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> Any:
        if isinstance(value, dict) and "max_tool_rounds" in value:
            raise ValueError(
                "max_tool_rounds was renamed max_iterations: model turns, one more than "
                f"tool rounds (max_tool_rounds: {value['max_tool_rounds']} is "
                "max_iterations: <that + 1>)"
            )
        return value


class ToolNode(_Node):
    """Runs a registered Python callable or LangChain tool; no model.

    Attributes:
        tool: Name in the runtime's tool registry.
        arguments: Arguments (literals or references), validated against the
            tool's parameter schema before the call.
    """

    kind: Literal["tool"] = "tool"
    tool: str
    arguments: dict[str, Value] = Field(default_factory=dict)


class JudgeNode(ModelNode):
    """Checks another node's answers; a failed verdict re-runs it one tier up.

    Rule validators run first (they cost nothing); the LLM judge (``prompt``)
    runs only when they pass. A failed verdict sends the judged branch back to
    ``target`` with ``escalation + 1`` and the feedback, until ``max_rounds``
    answers have been judged, or no stronger model is left to escalate to; then
    the run fails (``on_give_up: fail``) or continues with the last answer,
    marked ``gave_up`` (``continue``).

    Attributes:
        target: The node whose answers are judged; or several, the cases of
            one branch, of which the judge judges whichever ran.
        prompt: Judge template (output: score, passed, feedback); ``null`` for rules only.
        rubric: What a good answer must do.
        threshold: Lowest LLM score that passes.
        validators: Rule validators, each ``{name: params}`` (see ``VALIDATORS``)
            or the name of a custom check registered with the runtime.
        max_rounds: Answers judged per branch, the first included.
        on_give_up: ``fail`` the run, or ``continue`` with the last answer.
    """

    kind: Literal["judge"] = "judge"
    target: str | Annotated[tuple[str, ...], Field(min_length=1)]
    prompt: str | None = "judge"
    rubric: str = ""
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.7
    validators: tuple[dict[str, Any] | str, ...] = ()
    max_rounds: Annotated[int, Field(ge=1, le=10)] = 3
    on_give_up: Literal["fail", "continue"] = "fail"

    @property
    def judged(self) -> tuple[str, ...]:
        """The judged node(s)."""
        return (self.target,) if isinstance(self.target, str) else self.target

    @model_validator(mode="after")
    def _judges_something(self) -> JudgeNode:
        if self.prompt is None and not self.validators:
            raise ValueError("a judge needs a prompt, validators, or both")
        if self.prompt is not None and not self.rubric:
            raise ValueError("rubric: an LLM judge (prompt) needs a rubric")
        return self


class MergeNode(ModelNode):
    """Fan-in: synthesizes the answers of its source nodes into one.

    Attributes:
        sources: Nodes whose answers (every branch) are merged; YAML ``from``.
        synthesis: The strategy (see ``SYNTHESIZERS``), its params and stage policies.
        question: What the answers respond to (default: the run's input).
    """

    kind: Literal["merge"] = "merge"
    sources: tuple[str, ...] = Field(alias="from", min_length=1)
    synthesis: MergeSpec
    question: Value = "$input"

    @field_validator("synthesis", mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"strategy": value} if isinstance(value, str) else value

    @field_validator("sources", mode="before")
    @classmethod
    def _one_source(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class HumanNode(_Node):
    """Pauses the run for a person (LangGraph's ``interrupt``) and records the answer.

    The run stops with status ``interrupted`` showing a payload (``question``
    plus the ``show`` values, e.g. a draft); ``agentmesh resume`` (or
    ``Command(resume=...)``) continues it with the answer. The node's JSON
    output is ``{verdict, feedback, value}``: ``verdict`` is ``approved``,
    ``rejected`` or ``answered`` (a ``--value``), for a ``branch`` on it;
    ``$node.feedback`` is what the person said.

    Attributes:
        question: What the person is asked.
        show: Values shown with it (literals or references, e.g. ``$draft``).
        accepts: The answers it takes: ``approve``, ``reject``, ``value``.
    """

    kind: Literal["human"] = "human"
    question: str = "Approve?"
    show: dict[str, Value] = Field(default_factory=dict)
    accepts: Annotated[tuple[Literal["approve", "reject", "value"], ...], Field(min_length=1)] = (
        "approve",
        "reject",
    )


class FunctionNode(_Node):
    """Runs a Python function on values of the run; no model.

    The function (sync or async) is called with the resolved ``inputs`` as
    keyword arguments; what it returns is the node's answer (a dict or list
    is its JSON output, for ``$node.field`` references and branches; anything
    else its text).

    Attributes:
        function: ``package.module.function``, ``module:function`` or
            ``file.py:function`` (relative to the graph file); in Python, the
            callable itself.
        inputs: Keyword arguments (literals or references).
    """

    kind: Literal["function"] = "function"
    function: str | SkipJsonSchema[Callable[..., Any]]
    inputs: dict[str, Value] = Field(default_factory=dict)

    @field_validator("function")
    @classmethod
    def _path(cls, value: Any) -> Any:
        if isinstance(value, str) and not re.match(r"^[^:]+[.:][A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError(
                f"{value!r}: write package.module.function, module:function or file.py:function"
            )
        return value


class GraphNode(_Node):
    """Runs another workflow as one node (a subgraph).

    Its nodes' spans nest under this node's, their calls count against this
    run's budget, and it is checkpointed with the run: a run that fails or
    pauses inside it resumes inside it. Its output is this node's answer; its
    steps are listed with this run's, named ``node/inner``.

    Attributes:
        graph: A YAML file (relative to this graph's file), or the graph
            itself (a mapping in YAML; a ``Workflow`` or ``GraphSpec`` in Python).
        input: The text it runs on (a literal or a reference; default ``$input``).
    """

    kind: Literal["graph"] = "graph"
    graph: str | GraphSpec
    input: Value = "$input"


NodeSpec = Annotated[
    PlannerNode
    | ExecutorNode
    | ToolNode
    | JudgeNode
    | MergeNode
    | HumanNode
    | FunctionNode
    | GraphNode,
    Field(discriminator="kind"),
]
NODE_KINDS = ("planner", "executor", "tool", "judge", "merge", "human", "function", "graph")


def _edge(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        match = _EDGE_RE.match(value)
        if match is None:
            raise ValueError(f"edge {value!r}: write it as 'source -> target'")
        return match.group(1), match.group(2)
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    ):
        return value[0], value[1]
    raise ValueError(f"edge {value!r}: write it as 'source -> target' or [source, target]")


class GraphSpec(BaseModel):
    """A whole workflow.

    Attributes:
        name: Workflow name (``gen_ai.workflow.name`` in traces).
        description: What it does.
        entry: First node(s); several start in parallel. Default: the first node.
        output: Node whose answer is the run's output. Default: the last node
            with no outgoing edge, in declaration order (a judge's target when
            that node is a judge).
        budget_usd: Run budget in USD across all nodes (``None``: unlimited).
        max_steps: Most node executions in one run; one more fails the run
            (``loop_limit``). Bounds every cycle of the graph.
        policy: Default routing policy of model-calling nodes.
        resilience: Default resilience policy.
        nodes: Nodes by name, in declaration order.
        edges: ``source -> target`` pairs; ``target`` may be ``END``.
        tools: Tools to import, by name: ``module:attr`` or ``file.py:attr``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    entry: tuple[str, ...] = ()
    output: str | None = None
    budget_usd: Annotated[float | None, Field(gt=0)] = None
    max_steps: Annotated[int | None, Field(ge=1)] = None
    policy: Policy = Field(default_factory=Policy)
    resilience: ResiliencePolicy | None = None
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    edges: tuple[Annotated[tuple[str, str], BeforeValidator(_edge)], ...] = ()
    tools: dict[str, str] = Field(default_factory=dict)

    @field_validator("tools")
    @classmethod
    def _tool_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            module, _, attribute = target.rpartition(":")
            if not module or not attribute:
                raise ValueError(f"{name}: write 'module:function' or 'file.py:function'")
        return value

    @field_validator("entry", mode="before")
    @classmethod
    def _entry_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("nodes")
    @classmethod
    def _names(cls, value: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        for name in value:
            if not _NAME_RE.match(name) or name in ("input", "step", END_NODE, RUN_START):
                raise ValueError(
                    f"node name {name!r}: use letters, digits, _ and -; "
                    f"input, step, END and {RUN_START} are reserved"
                )
        return value

    @property
    def entries(self) -> tuple[str, ...]:
        """The entry nodes (the first node when none is declared)."""
        return self.entry or (next(iter(self.nodes)),)

    @cached_property
    def flow(self) -> tuple[tuple[str, str], ...]:
        """Every edge: the declared ones, each planner's fan-out and each branch's targets."""
        fan = tuple(
            (name, node.fan_out)
            for name, node in self.nodes.items()
            if isinstance(node, PlannerNode) and node.fan_out is not None
        )
        branched = tuple(
            (name, target)
            for name, node in self.nodes.items()
            if node.branch is not None
            for target in node.branch.targets
        )
        declared = tuple(e for e in self.edges if e not in fan and e not in branched)
        return (*fan, *branched, *declared)

    def successors(self, node: str) -> tuple[str, ...]:
        """Targets of ``node``'s edges (fan-out included), in order (``END`` included)."""
        return tuple(t for s, t in self.flow if s == node)

    def predecessors(self, node: str) -> tuple[str, ...]:
        """Sources of the edges into ``node`` (fan-out included)."""
        return tuple(s for s, t in self.flow if t == node)

    @property
    def output_node(self) -> str:
        """The node whose answer is the run's output."""
        if self.output is not None:
            return self.output
        return self.output_nodes[-1]

    @property
    def output_nodes(self) -> tuple[str, ...]:
        """The nodes whose answer may be the output (``output``, else every ending).

        Endings are the nodes with no outgoing edge (a judge passes its target
        on), in declaration order; with branches, the run's output is the
        answer of the last ending that ran.
        """
        if self.output is not None:
            return (self.output,)
        sinks = [n for n in self.nodes if all(t == END_NODE for t in self.successors(n))]
        found = [
            judged
            for name, node in ((n, self.nodes[n]) for n in sinks or [list(self.nodes)[-1]])
            for judged in (node.judged if isinstance(node, JudgeNode) else (name,))
        ]
        return tuple(dict.fromkeys(found))

    def node_policy(self, node: ModelNode) -> Policy:
        """The routing policy of ``node`` (its own, else the graph's)."""
        return node.policy if node.policy is not None else self.policy


GraphNode.model_rebuild()
