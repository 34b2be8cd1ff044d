"""Bounded loops: cycles in a graph are allowed when something bounds them.

A cycle (``draft -> review -> draft``) is LangGraph's own: the edges are
declared as they are and a conditional edge leaves the loop. What agentmesh
adds is the bound, checked before the run (a cycle none of whose nodes has
``max_visits``, in a graph without ``max_steps``, is an error naming the
cycle) and enforced while it runs: each node execution is counted in the
state (``visits``, per run), and the execution past a bound fails the run
with ``loop_limit``, naming the node.

Visits are counted when a node finishes; branches of one fan-out started
together see the same count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentmesh.graph.spec import GraphSpec
    from agentmesh.graph.state import RunState

__all__ = ["add_counts", "cycles", "loop_limit", "visited"]


def add_counts(left: dict[str, int] | None, right: dict[str, int] | None) -> dict[str, int]:
    """Reducer: add visit counts per node."""
    merged = dict(left or {})
    for node, count in (right or {}).items():
        merged[node] = merged.get(node, 0) + count
    return merged


def visited(node: str) -> dict[str, Any]:
    """The state update counting one execution of ``node``."""
    return {"visits": {node: 1}}


def loop_limit(name: str, max_visits: int | None, graph: GraphSpec, state: RunState) -> str | None:
    """Why running ``name`` once more would break a bound (``None``: it may run)."""
    visits: Mapping[str, int] = state.get("visits") or {}
    if max_visits is not None and visits.get(name, 0) >= max_visits:
        return f"visited {max_visits} times, its max_visits"
    total = sum(visits.values())
    if graph.max_steps is not None and total >= graph.max_steps:
        return f"the run made {total} node executions, the graph's max_steps"
    return None


def strongly_connected(
    nodes: Sequence[str], children: Mapping[str, Iterable[str]]
) -> list[list[str]]:
    """Strongly connected components (Tarjan's, iterative), each in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(children.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            child = next(iter(todo), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(children.get(child, ()))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component, key=index.__getitem__))
    return found


def _path(component: Sequence[str], children: Mapping[str, Iterable[str]]) -> list[str]:
    """One cycle through the component's first node, as ``[a, b, ..., a]``."""
    members = set(component)
    start = component[0]
    trail = [start]
    seen = {start}
    while True:
        nexts = [c for c in children.get(trail[-1], ()) if c in members]
        if start in nexts:
            return [*trail, start]
        step = next((c for c in nexts if c not in seen), None)
        if step is None:  # a dead end inside the component: back up
            trail.pop()
            if not trail:
                return [start, start]
            continue
        seen.add(step)
        trail.append(step)


def cycles(
    nodes: Sequence[str], children: Mapping[str, Sequence[str]], bounded: Set[str] = frozenset()
) -> list[tuple[list[str], list[str]]]:
    """Loops that avoid every node of ``bounded``: ``(members, one cycle [a, b, a])`` each.

    A cycle with no bounded node exists exactly when the graph without the
    bounded nodes has a strongly connected component with an edge inside it;
    each such component is one loop (its members may form several cycles).
    """
    free = [n for n in nodes if n not in bounded]
    inner = {n: [c for c in children.get(n, ()) if c in free] for n in free}
    return [
        (component, _path(component, inner))
        for component in strongly_connected(free, inner)
        if len(component) > 1 or component[0] in inner[component[0]]
    ]
