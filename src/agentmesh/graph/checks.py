"""Compile-time checks: a graph that cannot run fails before any model is called.

Every problem is collected (not just the first), each naming its node and,
for YAML graphs, the file and line. Checked: edges and entry/output name real
nodes; fan-out and judge targets are executors; judged nodes lead only to
their judge; branches name real nodes, read a field the node's output schema
has, of a type that can be a case, and cover its values or have a default;
every cycle is bounded (``max_visits`` on one of its nodes, or the graph's
``max_steps``) and can be left by a branch; every node is reachable;
references (``$node``, ``$step``) point at something that exists before the
node runs; prompts exist and get their required inputs; tools and validators
exist; and for every model-calling node the catalog holds at least one model
that fits its policy and needs (tier bounds, JSON, tools, tags, window).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agentmesh.graph.branches import (
    VERDICT,
    BranchSpec,
    case_problems,
    field_schema,
    unknown_targets,
)
from agentmesh.graph.function import load_callable
from agentmesh.graph.loops import cycles
from agentmesh.graph.pause import ACCEPTED, gate_name
from agentmesh.graph.runtime import Tool
from agentmesh.graph.spec import (
    END_NODE,
    ExecutorNode,
    FunctionNode,
    GraphNode,
    GraphSpec,
    HumanNode,
    JudgeNode,
    MergeNode,
    ModelNode,
    PlannerNode,
    ToolNode,
    parse_ref,
)
from agentmesh.graph.validators import Check, build_validator
from agentmesh.models.catalog import Catalog
from agentmesh.models.spec import Capability, ModelSpec
from agentmesh.prompts import PromptError, PromptLibrary
from agentmesh.routing.policy import Policy

__all__ = ["GraphError", "Locate", "Place", "check_graph", "no_location"]

Place = str | tuple[str | int, ...]
"""Where a problem is: a node's name, or a path in the graph file (``("edges", 2)``)."""

Locate = Callable[[Place], str]
"""A place -> location prefix (``graphs/g.yaml:12: ``), or ``""``."""


class GraphError(ValueError):
    """A graph is invalid; ``problems`` lists each, naming the node (and file:line)."""

    def __init__(self, graph: str, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        listed = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"graph {graph!r} is invalid ({count} {noun}):\n{listed}")


def no_location(_: Place) -> str:
    """No location: for graphs built in Python."""
    return ""


class _Checker:
    def __init__(
        self,
        graph: GraphSpec,
        catalog: Catalog,
        prompts: PromptLibrary,
        tools: Mapping[str, Tool],
        validators: Mapping[str, Check],
        locate: Locate,
    ) -> None:
        self.graph = graph
        self.catalog = catalog
        self.prompts = prompts
        self.tools = tools
        self.validators = validators
        self.locate = locate
        self.problems: list[str] = []
        self._parents: dict[str, list[str]] | None = None

    def add(self, node: str | None, message: str) -> None:
        if node is None:
            self.problems.append(f"{self.locate('')}{message}")
        else:
            self.problems.append(f"{self.locate(node)}node {node!r}: {message}")

    def add_at(self, place: Place, node: str, message: str) -> None:
        """A problem of ``node`` located at ``place`` (e.g. its branch's line)."""
        self.problems.append(f"{self.locate(place)}node {node!r}: {message}")

    def known(self, name: str) -> bool:
        return name in self.graph.nodes

    # -- structure -----------------------------------------------------------------------
    def structure(self) -> None:
        g = self.graph
        names = ", ".join(g.nodes)
        for index, (source, target) in enumerate(g.edges):
            edge = f"{self.locate(('edges', index))}edge {source} -> {target}"  # its edges: line
            if not self.known(source):
                self.problems.append(f"{edge}: unknown node {source!r} (nodes: {names})")
            if target != END_NODE and not self.known(target):
                self.problems.append(f"{edge}: unknown node {target!r} (nodes: {names}, END)")
        for entry in g.entries:
            if not self.known(entry):
                self.add(None, f"entry: no node {entry!r} (nodes: {names})")
        if g.output is not None and not self.known(g.output):
            self.add(None, f"output: no node {g.output!r} (nodes: {names})")
        for name, node in g.nodes.items():
            if isinstance(node, PlannerNode) and node.fan_out is not None:
                self._fan_out(name, node.fan_out)
            if isinstance(node, JudgeNode):
                self._judge(name, node)
            if isinstance(node, MergeNode):
                self._merge(name, node)
            if node.branch is not None:
                self._branch_edges(name, node.branch)
            if node.interrupt is not None:
                self._interrupt(name, node.interrupt)

    def _interrupt(self, name: str, when: str) -> None:
        node = self.graph.nodes[name]
        fanned = {n.fan_out for n in self.graph.nodes.values() if isinstance(n, PlannerNode)}
        why = None
        if isinstance(node, HumanNode):
            why = "a human node pauses anyway"
        elif isinstance(node, JudgeNode):
            why = "a judge cannot pause: pause its target, or add a human node after it"
        elif isinstance(node, PlannerNode) and node.fan_out is not None:
            why = "a fan-out planner cannot pause: pause before it, or at its target"
        elif name in fanned and when == "after":
            why = "a fan-out target runs once per step: pause after its merge instead"
        elif when == "after" and gate_name(name) in self.graph.nodes:
            why = f"its approval step is named {gate_name(name)!r}: rename that node"
        if why is not None:
            self.add_at(("nodes", name, "interrupt"), name, f"interrupt: {why}")

    def _branch_edges(self, name: str, branch: BranchSpec) -> None:
        place = ("nodes", name, "branch")
        for problem in unknown_targets(branch, list(self.graph.nodes), END_NODE):
            self.add_at(place, name, problem)
        plain = [t for s, t in self.graph.edges if s == name]
        if plain:
            self.add_at(
                place,
                name,
                f"a node with a branch has no other edges: put {', '.join(plain)} in its "
                f"cases (found {', '.join(f'{name} -> {t}' for t in plain)})",
            )
        node = self.graph.nodes[name]
        fanned = {n.fan_out for n in self.graph.nodes.values() if isinstance(n, PlannerNode)}
        if isinstance(node, PlannerNode) and node.fan_out is not None:
            self.add_at(place, name, "a fan-out planner cannot branch: it sends every step")
        elif name in fanned:
            self.add_at(
                place, name, "a fan-out target runs once per step: branch after a merge instead"
            )

    def _fan_out(self, name: str, target: str) -> None:
        found = self.graph.nodes.get(target)
        if not isinstance(found, ExecutorNode):
            self.add(name, f"fan_out: {target!r} must be an executor node")
        others = [t for s, t in self.graph.edges if s == name and t != target]
        if others:
            self.add(name, f"a fan-out planner has no other outgoing edges (found {others})")

    def _judge(self, name: str, node: JudgeNode) -> None:
        for judged in node.judged:
            if not isinstance(self.graph.nodes.get(judged), ExecutorNode):
                self.add(name, f"target: {judged!r} must be an executor node")
                continue
            after = self.graph.successors(judged)
            if after != (name,):
                self.add(
                    name,
                    f"the judged node {judged!r} must lead only to its judge "
                    f"(edges: {judged} -> {', '.join(after) or 'nothing'})",
                )
        if len(node.judged) > 1 and not any(
            set(node.judged) <= set(n.branch.cases.values())
            for n in self.graph.nodes.values()
            if n.branch is not None
        ):
            self.add(
                name,
                f"target: a judge of several nodes ({', '.join(node.judged)}) judges the one "
                "that ran: they must be cases of one branch",
            )

    def _merge(self, name: str, node: MergeNode) -> None:
        for source in node.sources:
            if not self.known(source):
                self.add(name, f"from: no node {source!r}")
        before = self.graph.predecessors(name)
        if len(before) > 1:
            for source in before:
                found = self.graph.nodes.get(source)
                if isinstance(found, JudgeNode | PlannerNode) or (
                    found is not None and found.branch is not None
                ):
                    self.add(
                        name,
                        f"a merge with several incoming edges waits for all of them; "
                        f"{source!r} routes conditionally: merge after one judge instead",
                    )

    def cycles_and_reach(self) -> None:
        g = self.graph
        children: dict[str, list[str]] = {n: [] for n in g.nodes}
        for source, target in g.flow:
            if source in children and target in g.nodes:
                children[source].append(target)
        seen: set[str] = set()
        todo = [e for e in g.entries if e in g.nodes]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(children[current])
        for name in g.nodes:
            if name not in seen:
                self.add(name, f"unreachable from the entry ({', '.join(g.entries)})")
        self._loops(children)

    def _loops(self, children: Mapping[str, list[str]]) -> None:
        g = self.graph
        bounded = set() if g.max_steps is None else set(g.nodes)
        bounded |= {n for n, node in g.nodes.items() if node.max_visits is not None}
        for _, loop in cycles(list(g.nodes), children, bounded):
            self.add(
                loop[0],
                f"cycle {' -> '.join(loop)} is unbounded: give one of its nodes max_visits, "
                "or the graph max_steps (judges redo their target by max_rounds, no cycle needed)",
            )
        for component, loop in cycles(list(g.nodes), children):
            members = set(component)
            exits = [
                n
                for n in members
                if (branch := g.nodes[n].branch) is not None
                and any(t == END_NODE or t not in members for t in branch.targets)
            ]
            if not exits:
                self.add(
                    loop[0],
                    f"cycle {' -> '.join(loop)} has no way out: every run would end at its "
                    "bound (loop_limit); leave it with a branch",
                )

    def ancestors(self, node: str) -> set[str]:
        if self._parents is None:
            self._parents = {n: [] for n in self.graph.nodes}
            for source, target in self.graph.flow:
                if target in self._parents:
                    self._parents[target].append(source)
        parents: set[str] = set()
        todo = list(self._parents.get(node, ()))
        while todo:
            current = todo.pop()
            if current in self.graph.nodes and current not in parents:
                parents.add(current)
                todo.extend(self._parents.get(current, ()))
        return parents

    # -- references, prompts, tools ------------------------------------------------------
    def references(self, name: str, field: str, values: Mapping[str, Any]) -> None:
        fanned = {n.fan_out for n in self.graph.nodes.values() if isinstance(n, PlannerNode)}
        before: set[str] | None = None
        for key, value in values.items():
            ref = parse_ref(value)
            if ref is None or ref.name == "input":
                continue
            if ref.name == "step":
                if name not in fanned:
                    self.add(name, f"{field}.{key}: $step exists only in a planner's fan_out node")
                continue
            if before is None:
                before = self.ancestors(name)
            if not self.known(ref.name):
                self.add(name, f"{field}.{key}: {value} names no node")
            elif ref.name not in before:
                self.add(name, f"{field}.{key}: {value} has not run when {name!r} runs")

    def prompt(self, name: str, template: str, given: Iterable[str], field: str = "prompt") -> bool:
        try:
            declared = self.prompts.template(template).inputs
        except PromptError as exc:
            self.add(name, f"{field}: {exc}")
            return False
        given = set(given)
        for key in sorted(given - set(declared)):
            self.add(name, f"inputs.{key}: template {template!r} has no such input")
        for key, spec in declared.items():
            if spec.required and spec.default is None and key not in given:
                self.add(name, f"inputs: template {template!r} needs {key!r}")
        return True

    def nodes(self) -> None:
        for name, node in self.graph.nodes.items():
            if isinstance(node, PlannerNode):
                self.references(name, "inputs", node.inputs)
                given = set(node.inputs) | ({"max_steps"} & self._declared(node.prompt))
                if self.prompt(name, node.prompt, given):
                    schema = self.prompts.template(node.prompt).output_schema or {}
                    if "steps" not in (schema.get("properties") or {}):
                        self.add(name, f"prompt {node.prompt!r}: its output_schema has no 'steps'")
            elif isinstance(node, ExecutorNode):
                self.references(name, "inputs", node.inputs)
                self.prompt(name, node.prompt, node.inputs)
                for tool in node.tools:
                    if tool not in self.tools:
                        self.add(
                            name, f"tools: no tool {tool!r} (registered: {self._tool_names()})"
                        )
            elif isinstance(node, ToolNode):
                self.references(name, "arguments", node.arguments)
                self._tool_node(name, node)
            elif isinstance(node, JudgeNode):
                for entry in node.validators:
                    try:
                        build_validator(entry, self.validators)
                    except ValueError as exc:
                        self.add(name, f"validators: {exc}")
                if node.prompt is not None:
                    self._judge_prompt(name, node.prompt)
            elif isinstance(node, MergeNode):
                self.references(name, "question", {"question": node.question})
            elif isinstance(node, HumanNode):
                self.references(name, "show", node.show)
            elif isinstance(node, FunctionNode):
                self.references(name, "inputs", node.inputs)
                self._function(name, node)
            elif isinstance(node, GraphNode):
                self.references(name, "input", {"input": node.input})
                self._subgraph(name, node)
            if node.branch is not None and node.branch.field is not None:
                self._branch_cases(name, node.branch, node.branch.field)

    def _branch_cases(self, name: str, branch: BranchSpec, on: str) -> None:
        """The branch's field exists in the node's output, has a usable type, and is covered."""
        node = self.graph.nodes[name]
        place = ("nodes", name, "branch")
        field: Mapping[str, Any] | None
        if on == VERDICT and node.interrupt == "after":
            field, where = {"enum": ["approved", "rejected"]}, "the person's verdict"
        elif isinstance(node, HumanNode):
            answers: dict[str, Mapping[str, Any] | None] = {
                VERDICT: {"enum": [ACCEPTED[a] for a in node.accepts]},
                "feedback": {"type": "string"},
                "value": None,  # any JSON value: known only when it comes
            }
            head = on.split(".")[0]
            if head not in answers:
                self.add_at(
                    place,
                    name,
                    f"branch.field: a person's answer has {', '.join(answers)}, not {on!r}",
                )
                return
            field = answers[head] if head == on else None
            where = "the person's verdict" if on == VERDICT else f"{on} of the person's answer"
        elif isinstance(node, JudgeNode):
            if on != VERDICT:
                self.add_at(place, name, f"branch.field: a judge branches on verdict, not {on!r}")
                return
            ends = ["passed", "gave_up"] if node.on_give_up == "continue" else ["passed"]
            field, where = {"enum": ends}, "the judge's verdict"
        elif isinstance(node, ExecutorNode | PlannerNode):
            schema = self._output_schema(node.prompt)
            if schema is None:
                self.add_at(
                    place,
                    name,
                    f"branch.field: {on!r} needs a JSON answer, but template {node.prompt!r} "
                    "declares no output_schema",
                )
                return
            field = field_schema(schema, on)
            if field is None:
                fields = ", ".join((schema.get("properties") or {}).keys()) or "none"
                self.add_at(
                    place,
                    name,
                    f"branch.field: the output of template {node.prompt!r} has no field "
                    f"{on!r} (fields: {fields})",
                )
                return
            where = f"{on} of template {node.prompt!r}"
        else:
            field, where = None, f"{on} of a {node.kind} node"
        for problem in case_problems(branch, field, where):
            self.add_at(place, name, problem)

    def _output_schema(self, template: str) -> Mapping[str, Any] | None:
        if template not in self.prompts:
            return None
        return self.prompts.template(template).output_schema

    def _subgraph(self, name: str, node: GraphNode) -> None:
        """The inner graph passes every check too (its problems named under this node)."""
        place = ("nodes", name, "graph")
        if isinstance(node.graph, str):
            self.add_at(place, name, f"graph: {node.graph!r} is not loaded (use load_graph)")
            return
        inner = _Checker(
            node.graph, self.catalog, self.prompts, self.tools, self.validators, no_location
        )
        inner.run()
        for problem in inner.problems:
            self.add_at(place, name, f"graph {node.graph.name!r}: {problem}")

    def run(self) -> None:
        """Every check, in order (problems collected in ``problems``)."""
        self.structure()
        self.cycles_and_reach()
        self.nodes()
        self.models()

    def _function(self, name: str, node: FunctionNode) -> None:
        try:
            load_callable(node.function)
        except Exception as exc:  # a user's module: any failure to load is reported
            self.add_at(
                ("nodes", name, "function"),
                name,
                f"function: cannot load {node.function!r}: {type(exc).__name__}: {exc}",
            )

    def _judge_prompt(self, name: str, template: str) -> None:
        declared = self._declared(template)
        if template not in self.prompts:
            self.add(name, f"prompt: no template {template!r} in {self.prompts.folder}")
        elif not {"rubric", "candidate"} <= declared:
            self.add(name, f"prompt {template!r}: a judge template takes rubric and candidate")

    def _declared(self, template: str) -> set[str]:
        try:
            return set(self.prompts.template(template).inputs)
        except PromptError:
            return set()

    def _tool_names(self) -> str:
        return ", ".join(self.tools) or "none"

    def _tool_node(self, name: str, node: ToolNode) -> None:
        tool = self.tools.get(node.tool)
        if tool is None:
            self.add(name, f"tool: no tool {node.tool!r} (registered: {self._tool_names()})")
            return
        params = tool.spec().parameters
        properties = params.get("properties") or {}
        for key in node.arguments:
            if key not in properties:
                self.add(name, f"arguments.{key}: tool {node.tool!r} takes {', '.join(properties)}")
        for key in params.get("required") or ():
            if key not in node.arguments:
                self.add(name, f"arguments: tool {node.tool!r} needs {key!r}")

    # -- models --------------------------------------------------------------------------
    def needs(self, node: ModelNode) -> set[Capability]:
        needs: set[Capability] = set()
        template = getattr(node, "prompt", None)
        if isinstance(node, PlannerNode | JudgeNode) and template is not None:
            needs.add(Capability.JSON)
        if (
            template is not None
            and template in self.prompts
            and self.prompts.template(template).output_schema is not None
        ):
            needs.add(Capability.JSON)
        if isinstance(node, ExecutorNode) and node.tools:
            needs.add(Capability.TOOLS)
        return needs

    def models(self) -> None:
        for name, node in self.graph.nodes.items():
            if not isinstance(node, ModelNode):
                continue
            if isinstance(node, JudgeNode) and node.prompt is None:
                continue
            policies: dict[str, Policy] = {"": self.graph.node_policy(node)}
            if isinstance(node, MergeNode):
                policies.update({f"stage {k}": v for k, v in node.synthesis.stages.items()})
            for label, policy in policies.items():
                why = {
                    s.id: self.why_not(s, policy, self.needs(node), node)
                    for s in self.catalog.specs
                }
                if all(why.values()):
                    listed = "; ".join(f"{m}: {w}" for m, w in why.items())
                    where = f" ({label})" if label else ""
                    self.add(
                        name, f"no model in {self.catalog.source} can serve it{where}: {listed}"
                    )

    @staticmethod
    def why_not(spec: ModelSpec, policy: Policy, needs: set[Capability], node: ModelNode) -> str:
        if policy.min_tier is not None and spec.tier < policy.min_tier:
            return f"tier {spec.tier} < min_tier {policy.min_tier}"
        if policy.max_tier is not None and spec.tier > policy.max_tier:
            return f"tier {spec.tier} > max_tier {policy.max_tier}"
        missing = (needs | set(policy.require)) - set(spec.capabilities)
        if missing:
            return "lacks " + ", ".join(sorted(c.value for c in missing))
        if policy.allow_tags and not policy.allow_tags & set(spec.tags):
            return f"none of the tags {sorted(policy.allow_tags)}"
        if policy.deny_tags & set(spec.tags):
            return f"denied tag {sorted(policy.deny_tags & set(spec.tags))[0]}"
        if spec.context_window <= node.max_output_tokens:
            return f"window {spec.context_window} <= max_output_tokens {node.max_output_tokens}"
        return ""


def check_graph(
    graph: GraphSpec,
    catalog: Catalog,
    prompts: PromptLibrary,
    tools: Mapping[str, Tool] | None = None,
    validators: Mapping[str, Check] | None = None,
    *,
    locate: Locate = no_location,
) -> None:
    """Check ``graph`` against a catalog, prompts, tools and validators.

    Raises:
        GraphError: Listing every problem found, each naming its node.
    """
    checker = _Checker(graph, catalog, prompts, tools or {}, validators or {}, locate)
    checker.run()
    if checker.problems:
        raise GraphError(graph.name, checker.problems)
