"""`Step`: the typed record of one node execution (what ``agentmesh run --json`` lists).

A node builds one :class:`Step` per execution from its resilient calls; the
graph state keeps ``Step.to_dict()`` (checkpoints hold plain JSON), and
:class:`~agentmesh.graph.RunResult` returns those dicts unchanged, so a resumed
run reports the steps it did not redo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentmesh.graph.state import Branch
from agentmesh.resilience import Attempt, CallResult, Spend

__all__ = ["ErrorInfo", "RouteSummary", "Step", "usage_update"]


@dataclass(frozen=True, slots=True)
class RouteSummary:
    """Why the answering model was chosen (its decision, in short)."""

    strategy: str
    reason: str
    decision_id: str

    @classmethod
    def of(cls, call: CallResult) -> RouteSummary:
        """The summary of ``call``'s decision."""
        d = call.decision
        return cls(d.strategy, d.reason, d.decision_id)

    def to_dict(self) -> dict[str, str]:
        """The ``route`` object of a step."""
        return {"strategy": self.strategy, "reason": self.reason, "decision_id": self.decision_id}


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a step failed: the error type (``CallFailed.kind``, ``invalid_plan``...) and message."""

    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """The ``error`` object of a step."""
        return {"type": self.type, "message": self.message}


@dataclass(frozen=True, slots=True)
class Step:
    """One node execution: who answered, why, every attempt and what it cost.

    Attributes:
        node: The node's name.
        kind: Its kind (``executor``, ``planner``, ``judge``, ``merge``, ``tool``).
        branch: The fan-out branch key (``""`` without fan-out).
        round: 1, or the redo number after a judge's rejection.
        model: The model that answered the last call (``None``: none did, or no call).
        status: ``ok``, ``failed``, ``passed``/``rejected``/``gave_up`` (judges),
            ``no_stronger_model``.
        escalation_level: The escalation level the node ran at.
        attempts: Every attempt of every call, failed ones included.
        route: Why ``model`` was chosen.
        output: The node's answer (its structured value when it has one), if any.
        error: Why it failed, if it did.
        extra: Kind-specific fields (``plan``, ``notes``, ``tools``, ``tool``,
            ``verdict``, ``synthesis``, ``calls``, ``simulated``, ``cached``: every
            call of the step was served by the response cache), as ``--json`` shows them.
        spend: Tokens and cost of every attempt (derived).
    """

    node: str
    kind: str
    branch: str
    round: int
    model: str | None
    status: str
    escalation_level: int
    attempts: tuple[Attempt, ...] = ()
    route: RouteSummary | None = None
    output: Any = None
    error: ErrorInfo | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    spend: Spend = field(init=False)

    def __post_init__(self) -> None:
        # Summed once: the record and the state's totals both read it.
        object.__setattr__(self, "spend", Spend.total(a.spend for a in self.attempts))

    @classmethod
    def of_calls(
        cls,
        node: str,
        kind: str,
        branch: Branch,
        calls: Sequence[CallResult],
        failed: Sequence[Attempt] = (),
        *,
        status: str = "ok",
        output: Any = None,
        error: ErrorInfo | None = None,
        **extra: Any,
    ) -> Step:
        """The step of a node's resilient calls (the last one answered) and failed attempts."""
        last = calls[-1] if calls else None
        return cls(
            node,
            kind,
            branch["key"],
            branch["round"],
            last.model if last is not None else None,
            status,
            last.escalation_level if last is not None else branch["escalation"],
            (*(a for c in calls for a in c.attempts), *failed),
            RouteSummary.of(last) if last is not None else None,
            output,
            error,
            {
                "simulated": any(c.response.simulated for c in calls),
                "cached": bool(calls) and all(c.cached for c in calls),
                **extra,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``agentmesh run --json`` (and of the graph state)."""
        out: dict[str, Any] = {
            "node": self.node,
            "kind": self.kind,
            "branch": self.branch,
            "round": self.round,
            "model": self.model,
            "status": self.status,
            "escalation_level": self.escalation_level,
            **self.spend.to_dict(),
            "route": self.route.to_dict() if self.route is not None else None,
            "attempts": [a.to_dict() for a in self.attempts],
            **self.extra,
        }
        if self.output is not None:
            out["output"] = self.output
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


def usage_update(steps: Sequence[Step]) -> dict[str, Any]:
    """The state update of some steps: their records and their totals."""
    spend = Spend.total(s.spend for s in steps)
    return {
        "steps": [s.to_dict() for s in steps],
        "cost_usd": spend.cost_usd,
        "input_tokens": spend.input_tokens,
        "output_tokens": spend.output_tokens,
    }
