"""The synthesis contract: items in, one answer out, with the evidence of how.

A merge node hands a :class:`Synthesizer` the :class:`Item` s its branches
produced and a :class:`SynthesisContext` (the shared caller, the prompt
library, the question, and a routing policy per *stage* of the synthesis).
The synthesizer returns a :class:`SynthesisResult`: the text, its
:class:`Provenance` (which branches and models contributed, votes and
agreement) and one :class:`StepRecord` per model call it made.

A synthesizer is a small class with a ``name`` (its YAML name), a ``Params``
pydantic model, the ``stages`` it routes separately, and one method,
:meth:`Synthesizer.synthesize`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from agentmesh.models.tokens import estimate_tokens
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience.call import Attempt, Billed, Spend
from agentmesh.resilience.caller import ResilientCaller
from agentmesh.resilience.policy import ResiliencePolicy
from agentmesh.routing.policy import Policy
from agentmesh.tracing.attributes import MERGE_BRANCHES, MERGE_MODELS

__all__ = [
    "ATTR_ITEMS",
    "ATTR_LEVEL",
    "ATTR_STAGE",
    "ATTR_STRATEGY",
    "Contributor",
    "Item",
    "NoParams",
    "NothingToSynthesize",
    "Provenance",
    "StepRecord",
    "SynthesisContext",
    "SynthesisError",
    "SynthesisParams",
    "SynthesisResult",
    "Synthesizer",
    "prepare_items",
]

ATTR_STRATEGY = "agentmesh.synthesis.strategy"
"""Span attribute: the synthesis strategy of a call (``refine``, ``vote``...)."""
ATTR_STAGE = "agentmesh.synthesis.stage"
"""Span attribute: the stage of the synthesis a call belongs to (``leaf``, ``root``...)."""
ATTR_LEVEL = "agentmesh.synthesis.level"
"""Span attribute: the level of a tree summarization (0 = leaves)."""
ATTR_ITEMS = "agentmesh.synthesis.items"
"""Span attribute: how many pieces of input the call's prompt holds."""


@dataclass(frozen=True, slots=True)
class Item:
    """One input of a synthesis: what a branch (or model) answered.

    Attributes:
        text: The answer or document.
        source: Which branch, node or document it came from (``#1``, ``#2``...
            when not given).
        model: Catalog id of the model that produced it, if known (quality
            weights and "strongest model" choices use it).
        score: A judge's score of the item in [0, 1], if it was judged; the
            quality-weighted vote uses it for models the catalog does not know.
    """

    text: str
    source: str = ""
    model: str | None = None
    score: float | None = None


class Contributor(NamedTuple):
    """A branch that contributed to a result, and the model that answered it."""

    source: str
    model: str | None


@dataclass(frozen=True, slots=True)
class StepRecord(Billed):
    """One model call of a synthesis (or one that failed), derived from its ``CallResult``.

    Attributes:
        stage: The stage it served (``refine``, ``leaf``, ``root``, ``judge``...).
        model: Catalog id of the model that answered; ``None`` when none did.
        attempts: Every attempt of the resilient call (fallbacks and retries included).
        sources: The item sources whose text (or summaries of it) was in the prompt.
        decision_id: The routing decision of the call.
        reason: Why the router chose the model.
        error: ``CallFailed.kind`` when no model served the call.
        level: Tree level (0 = leaves), for tree summarization.
        spend: Tokens and cost of every attempt (derived).
    """

    stage: str
    model: str | None
    attempts: tuple[Attempt, ...]
    sources: tuple[str, ...] = ()
    decision_id: str = ""
    reason: str = ""
    error: str | None = None
    level: int | None = None
    spend: Spend = field(init=False)

    def __post_init__(self) -> None:
        # Derived once from the attempts: tokens and cost are never copied by hand.
        object.__setattr__(self, "spend", Spend.total(a.spend for a in self.attempts))

    @property
    def ok(self) -> bool:
        """A model answered the call."""
        return self.error is None

    @property
    def tokens(self) -> int:
        """Input and output tokens together."""
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "stage": self.stage,
            "model": self.model,
            **self.spend.to_dict(),
            "attempts": [a.to_dict() for a in self.attempts],
            "sources": list(self.sources),
            "decision_id": self.decision_id,
            "reason": self.reason,
            "error": self.error,
            "level": self.level,
        }


def _frozen_votes(votes: Mapping[str, Sequence[str]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({answer: tuple(sources) for answer, sources in votes.items()})


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a result came from.

    Attributes:
        strategy: The synthesizer's name.
        contributors: Every item used, as ``(source, model)``, in input order.
        selected: Sources whose answer was chosen (vote winners, the best of N).
        answer: Vote only: the winning normalised answer (the extractor's match
            key); the result's text is a winning member's original reply.
        votes: Vote only: normalised answer -> sources that gave it, in order
            of first appearance.
        weights: Vote only: normalised answer -> its total vote weight.
        abstained: Vote only: sources from which no answer could be extracted.
        agreement: Vote only: the winner's share of the total vote weight.
        tie_broken_by: Vote only: ``judge`` or ``strongest`` when the top
            answers tied, else ``None``.
        decided_by: How the answer was chosen (``majority``, ``quality``,
            ``judge``, ``strongest``); empty for strategies that write one.
        reasons: The judge's reasons, when a judge decided.
        notes: What else happened (items split to fit a window, blank items
            dropped, a judge's invalid answer and the fallback taken...).
    """

    strategy: str
    contributors: tuple[Contributor, ...]
    selected: tuple[str, ...] = ()
    answer: str | None = None
    votes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    abstained: tuple[str, ...] = ()
    agreement: float | None = None
    tie_broken_by: str | None = None
    decided_by: str = ""
    reasons: str = ""
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "votes", _frozen_votes(self.votes))
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "strategy": self.strategy,
            "contributors": [{"source": c.source, "model": c.model} for c in self.contributors],
            "selected": list(self.selected),
            "answer": self.answer,
            "votes": {answer: list(sources) for answer, sources in self.votes.items()},
            "weights": dict(self.weights),
            "abstained": list(self.abstained),
            "agreement": self.agreement,
            "tie_broken_by": self.tie_broken_by,
            "decided_by": self.decided_by,
            "reasons": self.reasons,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    """The synthesized answer, its provenance, and every call it took.

    Attributes:
        text: The answer.
        provenance: Which items and models contributed, and how it was decided.
        calls: One record per model call of the synthesis, in the order they ended.
    """

    text: str
    provenance: Provenance
    calls: tuple[StepRecord, ...] = ()

    @property
    def cost_usd(self) -> float:
        """What the synthesis itself cost (every attempt of every call)."""
        return sum(c.cost_usd for c in self.calls)

    @property
    def tokens(self) -> int:
        """Input plus output tokens of every call of the synthesis."""
        return sum(c.tokens for c in self.calls)

    @property
    def models(self) -> tuple[str, ...]:
        """The models that answered a call of the synthesis, in order of first use."""
        return tuple(dict.fromkeys(c.model for c in self.calls if c.model is not None))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (what a merge node keeps in graph state)."""
        return {
            "text": self.text,
            "provenance": self.provenance.to_dict(),
            "calls": [c.to_dict() for c in self.calls],
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
        }

    def trace_attributes(self) -> dict[str, str | int | float | list[str]]:
        """Attributes for the merge node's span.

        ``agentmesh.synthesis.*``, and ``agentmesh.merge.branches`` /
        ``agentmesh.merge.models``: the merged answers and who wrote them, as arrays.
        """
        prov = self.provenance
        attributes: dict[str, str | int | float | list[str]] = {
            MERGE_BRANCHES: [c.source for c in prov.contributors],
            MERGE_MODELS: list(dict.fromkeys(c.model for c in prov.contributors if c.model)),
            ATTR_STRATEGY: prov.strategy,
            "agentmesh.synthesis.calls": len(self.calls),
            "agentmesh.synthesis.cost_usd": self.cost_usd,
            "agentmesh.synthesis.tokens": self.tokens,
            "agentmesh.synthesis.contributors": ",".join(c.source for c in prov.contributors),
            "agentmesh.synthesis.models": ",".join(self.models),
        }
        branch_models = dict.fromkeys(c.model for c in prov.contributors if c.model)
        if branch_models:  # who answered the branches merged here
            attributes["agentmesh.synthesis.contributor_models"] = ",".join(branch_models)
        if prov.selected:
            attributes["agentmesh.synthesis.selected"] = ",".join(prov.selected)
        if prov.agreement is not None:
            attributes["agentmesh.synthesis.agreement"] = prov.agreement
        if prov.decided_by:
            attributes["agentmesh.synthesis.decided_by"] = prov.decided_by
        return attributes


class SynthesisError(Exception):
    """A synthesis could not produce an answer; carries what it did until then.

    Attributes:
        strategy: The synthesizer's name.
        stage: The stage that failed, if a call failed.
        provenance: The partial provenance (items seen, votes so far, notes).
        calls: Every call made, the failed one last.
    """

    def __init__(
        self,
        message: str,
        *,
        strategy: str,
        stage: str | None = None,
        provenance: Provenance | None = None,
        calls: Sequence[StepRecord] = (),
    ) -> None:
        super().__init__(message)
        self.strategy = strategy
        self.stage = stage
        self.provenance = provenance or Provenance(strategy, ())
        self.calls = tuple(calls)

    @property
    def cost_usd(self) -> float:
        """What the calls made before the failure cost."""
        return sum(c.cost_usd for c in self.calls)


class NothingToSynthesize(SynthesisError):
    """The synthesis received no item with text (no branch produced anything)."""


@dataclass(frozen=True, slots=True)
class SynthesisContext:
    """Everything a synthesis needs besides its items; one per merge-node run.

    Attributes:
        caller: The shared resilient caller (its router and gateway).
        prompts: Templates to render per chosen model; ``None`` uses built-in
            plain instructions (and so does a library without the template).
        question: The question the branches answered (or what to synthesize).
        instructions: Extra instructions for every step (format, language...).
        node: The merge node's name (``RouteRequest.node``, traces).
        run_id: The workflow run, so the router's per-run budget applies.
        task: Task label for routing and quality weights; ``None`` lets the
            router's classifier decide.
        policy: Routing policy of stages without their own (``None``: the router's).
        stages: Routing policy per stage (``leaf``, ``root``, ``judge``...).
        max_output_tokens: Output tokens each step may produce.
        resilience: Resilience policy of each call (``None``: the caller's).
        count_tokens: Counts the tokens of a text; the calibrated estimate by
            default. Plug a model's tokenizer here for exact packing.
        token_margin: Share of the free window left unused when packing, to
            absorb counting error (0 with an exact tokenizer).
        remaining_budget_usd: Money the node still has; passed to each route.
        run_budget_usd: The run's budget (``RouteRequest.run_budget_usd``).
    """

    caller: ResilientCaller
    prompts: PromptLibrary | None = None
    question: str = ""
    instructions: str = ""
    node: str = "merge"
    run_id: str | None = None
    task: str | None = None
    policy: Policy | None = None
    stages: Mapping[str, Policy] = field(default_factory=dict)
    max_output_tokens: int = 1024
    resilience: ResiliencePolicy | None = None
    count_tokens: Callable[[str], int] = estimate_tokens
    token_margin: float = 0.1
    remaining_budget_usd: float | None = None
    run_budget_usd: float | None = None

    def __post_init__(self) -> None:
        if self.max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be positive, got {self.max_output_tokens}")
        if not 0 <= self.token_margin < 1:
            raise ValueError(f"token_margin must be in [0, 1), got {self.token_margin}")

    def policy_for(self, stage: str) -> Policy | None:
        """The routing policy of ``stage`` (its own, else the context's default)."""
        return self.stages.get(stage, self.policy)

    @property
    def goal(self) -> str:
        """The question plus the instructions, as the prompts show it."""
        parts = [p.strip() for p in (self.question, self.instructions) if p.strip()]
        return "\n".join(parts) or "Combine the material into one complete, correct answer."


class SynthesisParams(BaseModel):
    """Base of synthesizer parameter models: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NoParams(SynthesisParams):
    """For synthesizers without options."""


P = TypeVar("P", bound=SynthesisParams)


class Synthesizer(ABC, Generic[P]):
    """Turns the items of several branches into one answer.

    Class attributes:
        name: The name YAML merge nodes use (``strategy: vote``).
        Params: The parameter model (validated from a merge node's ``params``).
        stages: The stages it routes separately (keys of ``SynthesisContext.stages``).
    """

    name: ClassVar[str]
    Params: ClassVar[type[SynthesisParams]] = NoParams
    stages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: P | None = None) -> None:
        self.params: P = params if params is not None else cast(P, self.Params())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    @abstractmethod
    async def synthesize(
        self, items: Sequence[Item | str], ctx: SynthesisContext
    ) -> SynthesisResult:
        """Synthesize ``items`` into one answer.

        Raises:
            NothingToSynthesize: No item has text.
            SynthesisError: A step failed (after resilience), with the partial provenance.
        """


def prepare_items(
    items: Sequence[Item | str], strategy: str
) -> tuple[tuple[Item, ...], tuple[str, ...]]:
    """Items with a source each and some text, plus notes on what was dropped.

    Plain strings become items; a missing source becomes ``#<position>``
    (1-based); blank items are dropped with a note.

    Raises:
        NothingToSynthesize: Nothing with text is left.
    """
    kept: list[Item] = []
    notes: list[str] = []
    for position, raw in enumerate(items, start=1):
        item = Item(raw) if isinstance(raw, str) else raw
        if not item.source:
            item = Item(item.text, f"#{position}", item.model, item.score)
        if item.text.strip():
            kept.append(item)
        else:
            notes.append(f"dropped blank item {item.source}")
    if not kept:
        what = "no items" if not items else f"{len(items)} blank item(s)"
        raise NothingToSynthesize(
            f"{strategy}: nothing to synthesize ({what})",
            strategy=strategy,
            provenance=Provenance(strategy, (), notes=tuple(notes)),
        )
    return tuple(kept), tuple(notes)
