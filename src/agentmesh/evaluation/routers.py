"""Routers to evaluate, built from a SPEC string through one registry.

``NAME`` or ``NAME:ARGUMENT``; :data:`ROUTERS` maps each name to a factory
``(argument, train rows) -> Scorer``:

- ``random[:SEED]``: uniform random scores (APGR 0.5 in expectation).
- ``oracle``: the test labels themselves (strong right and weak wrong first): the upper bound.
- ``length``: longer prompts to the strong model.
- ``subject-prior``: the training rows' average gain of the query's ``domain``
  column (shrunk to the mean). Uses a label the router does not see at route
  time: a reference, not a deployable router.
- ``learned:FILE``: a :class:`~agentmesh.routing.LearnedModel` file (what the
  ``learned`` strategy loads); ``learned`` alone trains one on ``--train``.
  Guarded as the strategy is by default: a prompt outside the file's training
  domain gets the safe strategy's score. ``learned-unguarded[:FILE]``: the
  same router's own scores everywhere.
- ``cascade``: the weak model answers first, the hand-weighted validators of
  :mod:`agentmesh.evaluation.cascade` score its response; ``cascade:FILE`` reads
  a trained judge, ``cascade:train`` fits one on ``--train``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from agentmesh.evaluation.cascade import CascadeModel
from agentmesh.evaluation.data import Row
from agentmesh.routing.strategies.adaptive import LearnedModel

__all__ = ["ROUTERS", "RouterSpecError", "Scorer", "build_router"]


class RouterSpecError(ValueError):
    """A router SPEC that names no router, or whose argument or data is unusable."""


@dataclass(frozen=True, slots=True)
class Scorer:
    """A router under evaluation.

    Attributes:
        name: The SPEC it was built from.
        score: Rows -> one score each (higher = strong model).
        weak_always: The weak model answers every query first (cascades).
        note: What it uses, for the report.
        threshold: The router's own operating threshold, when it has one.
        distances: Rows -> distance of each to the router's training domain
            (1 = its edge), for guarded learned routers.
    """

    name: str
    score: Callable[[Sequence[Row]], list[float]]
    weak_always: bool = False
    note: str = ""
    threshold: float | None = None
    distances: Callable[[Sequence[Row]], list[float]] | None = None


Factory = Callable[[str, str, Sequence[Row]], Scorer]


def _random(spec: str, arg: str, train: Sequence[Row]) -> Scorer:
    try:
        seed = int(arg) if arg else 0
    except ValueError:
        raise RouterSpecError(f"{spec}: the seed must be an integer") from None

    def score(rows: Sequence[Row]) -> list[float]:
        rng = random.Random(seed)
        return [rng.random() for _ in rows]

    return Scorer(spec, score, note=f"uniform random scores (seed {seed})")


def _oracle(spec: str, arg: str, train: Sequence[Row]) -> Scorer:
    def score(rows: Sequence[Row]) -> list[float]:
        return [(r.strong_value or 0.0) - (r.weak_value or 0.0) for r in rows]

    return Scorer(spec, score, note="knows the test labels: upper bound")


def _length(spec: str, arg: str, train: Sequence[Row]) -> Scorer:
    return Scorer(
        spec, lambda rows: [float(len(r.prompt)) for r in rows], note="prompt length in characters"
    )


def _subject_prior(spec: str, arg: str, train: Sequence[Row]) -> Scorer:
    labelled = [r for r in train if r.weak_value is not None and r.strong_value is not None]
    if not labelled or not any(r.domain for r in labelled):
        raise RouterSpecError(f"{spec}: needs --train rows with a 'domain' column")
    shrink = float(arg) if arg else 10.0
    gains: dict[str, list[float]] = {}
    for r in labelled:
        gains.setdefault(r.domain or "", []).append((r.strong_value or 0.0) - (r.weak_value or 0.0))
    mean = sum(sum(v) for v in gains.values()) / len(labelled)
    table = {d: (sum(v) + shrink * mean) / (len(v) + shrink) for d, v in gains.items()}

    def score(rows: Sequence[Row]) -> list[float]:
        return [table.get(r.domain or "", mean) for r in rows]

    return Scorer(spec, score, note="per-domain average gain (uses the domain column)")


def _learned_model(spec: str, arg: str, train: Sequence[Row]) -> tuple[LearnedModel, str]:
    if arg:
        try:
            model = LearnedModel.load(arg)
        except ValueError as exc:
            raise RouterSpecError(str(exc)) from None
        return model, f"learned router {arg} (version {model.version})"
    if not train:
        raise RouterSpecError(f"{spec}: give a model file (learned:FILE) or --train rows")
    from agentmesh.evaluation.trainer import train_router  # numpy: the eval extra

    return train_router(train).model, "learned router trained on --train"


def _learned(spec: str, arg: str, train: Sequence[Row]) -> Scorer:
    model, note = _learned_model(spec, arg, train)
    guard = model.domain
    if guard is None:
        return Scorer(
            spec,
            lambda rows: [model.score(r.prompt) for r in rows],
            note=note + "; no domain summary: unguarded",
            threshold=model.threshold,
        )

    def distances(rows: Sequence[Row]) -> list[float]:
        return [model.assess(r.prompt).distance or 0.0 for r in rows]

    return Scorer(
        spec,
        lambda rows: [model.assess(r.prompt).routed_score for r in rows],
        note=f"{note}; guard on (fallback {guard.fallback} beyond the {guard.quantile:.0%} domain"
        + ("" if guard.typical is None else f"; training median distance {guard.typical:.2f}")
        + ")",
        threshold=model.threshold,
        distances=distances,
    )


def _unguarded(spec: str, arg: str, train: Sequence[Row]) -> Scorer:
    model, note = _learned_model(spec, arg, train)
    return Scorer(
        spec,
        lambda rows: [model.score(r.prompt) for r in rows],
        note=note + "; guard off",
        threshold=model.threshold,
    )


def _cascade(spec: str, arg: str, train: Sequence[Row]) -> Scorer:
    if arg == "train":
        if not train:
            raise RouterSpecError(f"{spec}: needs --train rows with the weak model's responses")
        from agentmesh.evaluation.cascade_fit import fit_cascade  # numpy: the eval extra

        try:
            model = fit_cascade(train)
        except ValueError as exc:
            raise RouterSpecError(f"{spec}: {exc}") from None
        note = "cascade judge fitted on --train"
    elif arg:
        try:
            model = CascadeModel.load(arg)
        except ValueError as exc:
            raise RouterSpecError(str(exc)) from None
        note = f"cascade judge {arg}"
    else:
        model = CascadeModel.default()
        note = "cascade, hand-weighted validators"

    def score(rows: Sequence[Row]) -> list[float]:
        missing = sum(1 for r in rows if r.weak_response is None)
        if missing:
            raise RouterSpecError(
                f"{spec}: {missing} test rows have no weak-model response "
                "(a '<weak model>_response' column)"
            )
        return [model.escalate_score(r.weak_response or "", r.prompt) for r in rows]

    return Scorer(spec, score, weak_always=True, note=note, threshold=model.threshold)


ROUTERS: Mapping[str, Factory] = MappingProxyType(
    {
        "random": _random,
        "oracle": _oracle,
        "length": _length,
        "subject-prior": _subject_prior,
        "learned": _learned,
        "learned-unguarded": _unguarded,
        "cascade": _cascade,
    }
)
"""Router name -> factory ``(spec, argument, train rows) -> Scorer``."""


def build_router(spec: str, train: Sequence[Row] = ()) -> Scorer:
    """The router a SPEC names (``name`` or ``name:argument``).

    Raises:
        RouterSpecError: Unknown name, or an argument or data the router cannot use.
    """
    name, _, arg = spec.partition(":")
    factory = ROUTERS.get(name)
    if factory is None:
        raise RouterSpecError(f"unknown router {name!r}; known: {', '.join(ROUTERS)}")
    return factory(spec, arg, train)
