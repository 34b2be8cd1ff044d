"""Pausing for a person: LangGraph's ``interrupt``, and the answers a run resumes with.

A node that pauses calls :func:`ask`: the first time, LangGraph's
``interrupt(payload)`` stops the run (it is checkpointed, status
``interrupted``); resumed with ``Command(resume=answer)`` the node runs again
from its start and :func:`ask` returns the answer, normalised to an
:class:`Answer`. So everything a pausing node does before asking must be free
to redo: a ``kind: human`` node asks first, ``interrupt: before`` asks before
the node's work, and ``interrupt: after`` is a separate gate node after it.

Answers (``agentmesh resume`` builds them; in Python pass them to
``Command(resume=...)``): :func:`approve`, :func:`reject` with feedback,
:func:`value` with any JSON value; ``"approve"``/``"reject"`` and ``True``/
``False`` are accepted as shorthands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langgraph.types import interrupt

if TYPE_CHECKING:
    from agentmesh.graph.spec import GraphSpec

__all__ = [
    "ACCEPTED",
    "Answer",
    "InvalidAnswer",
    "answer_of",
    "approve",
    "ask",
    "gate_name",
    "needs_checkpointer",
    "pausing_nodes",
    "reject",
    "value",
]

Verdict = Literal["approved", "rejected", "answered"]

ACCEPTED: Mapping[str, Verdict] = {
    "approve": "approved",
    "reject": "rejected",
    "value": "answered",
}
"""What a node ``accepts`` -> the verdict that answer gives."""


class InvalidAnswer(ValueError):
    """A resume value that is not an answer the paused node takes."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's answer.

    Attributes:
        verdict: ``approved``, ``rejected`` or ``answered``.
        feedback: What they said (with a rejection), if anything.
        value: The value they gave (``answered``).
    """

    verdict: Verdict
    feedback: str | None = None
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The answer as a node's JSON output (``{verdict, feedback, value}``)."""
        return {"verdict": self.verdict, "feedback": self.feedback, "value": self.value}


def approve() -> dict[str, Any]:
    """The resume value that approves."""
    return {"verdict": "approved"}


def reject(feedback: str | None = None) -> dict[str, Any]:
    """The resume value that rejects, with ``feedback`` for whoever redoes the work."""
    return {"verdict": "rejected", "feedback": feedback}


def value(given: Any) -> dict[str, Any]:
    """The resume value that answers with ``given`` (any JSON value)."""
    return {"verdict": "answered", "value": given}


_SHORT: Mapping[Any, Verdict] = {
    "approve": "approved",
    "approved": "approved",
    "reject": "rejected",
    "rejected": "rejected",
}


def answer_of(raw: Any, accepts: tuple[str, ...] = ("approve", "reject")) -> Answer:
    """``raw`` (a resume value) as an :class:`Answer` a node accepting ``accepts`` takes.

    Raises:
        InvalidAnswer: ``raw`` is no answer, or one the node does not accept.
    """
    if isinstance(raw, bool):
        raw = "approved" if raw else "rejected"
    if isinstance(raw, str) and raw in _SHORT:
        raw = {"verdict": _SHORT[raw]}
    if not isinstance(raw, Mapping) or raw.get("verdict") not in ACCEPTED.values():
        raise InvalidAnswer(
            f"{raw!r} is not an answer: resume with approve(), reject(feedback) or value(x) "
            "(agentmesh resume --approve, --reject [--feedback TEXT] or --value JSON)"
        )
    verdict: Verdict = raw["verdict"]
    if verdict not in {ACCEPTED[a] for a in accepts}:
        taken = ", ".join(f"--{a}" for a in accepts)
        raise InvalidAnswer(f"this node takes {taken}, not a {verdict} answer")
    feedback = raw.get("feedback")
    return Answer(verdict, str(feedback) if feedback is not None else None, raw.get("value"))


def ask(payload: Mapping[str, Any], accepts: tuple[str, ...] = ("approve", "reject")) -> Answer:
    """Pause the run showing ``payload``; resumed, the answer.

    Raises:
        InvalidAnswer: The run was resumed with something the node does not take.
    """
    return answer_of(interrupt(dict(payload)), accepts)


def gate_name(node: str) -> str:
    """The LangGraph node that asks after ``node`` (``interrupt: after``); checks keep it free."""
    return f"{node}__after"


def pausing_nodes(graph: GraphSpec) -> list[str]:
    """The nodes of ``graph`` that may pause the run.

    ``kind: human``, any ``interrupt:``, and a ``kind: graph`` node whose graph has one.
    """
    found = []
    for name, node in graph.nodes.items():
        inner = getattr(node, "graph", None)
        nested = inner is not None and not isinstance(inner, str) and bool(pausing_nodes(inner))
        if node.kind == "human" or node.interrupt or nested:
            found.append(name)
    return found


def needs_checkpointer(pausing: list[str]) -> str:
    """Why a graph with the ``pausing`` nodes cannot run without a durable checkpointer."""
    names = ", ".join(repr(n) for n in pausing)
    return (
        f"node {names} pauses the run for a person (LangGraph interrupt): a paused run is "
        "resumed from its checkpoint, so the graph needs a durable checkpointer (Python: "
        "checkpointer=...; CLI: --checkpoint sqlite:PATH or postgres://...)"
    )
