r"""Cascade judges: score a weak model's answer, escalate the low ones to the strong model.

A cascade always calls the weak model first; validators read its answer and
the question, and a low combined score sends the query to the strong model.
Each validator is a function ``(response, prompt) -> float`` in ``[0, 1]``
(1 = nothing suspicious), registered by name in :data:`VALIDATORS`:

- ``answer_present``: a final answer is stated (``#### 18``, ``the answer is 18``).
- ``arithmetic``: every arithmetic step found (``16 - 3 = 13``, ``<<9*2=18>>``)
  re-evaluates to the value written (to 0.2%, or rounded), and every calculator
  annotation's result is the number written after it; one slip scores 0.
- ``consistent``: the final answer is a number the working computed (or the last result).
- ``complete``: the answer does not stop mid-computation (truncated output).
- ``no_hedging``: no hedging or second-guessing ("however", "assume", "approximately").
- ``uses_inputs``: share of the question's quantities (digits and number words:
  ``three``, ``twice``, ``half``) that the working uses; ``all_inputs``: all of them.
- ``concise``: not unusually long for its number of steps.
- ``integer_answer``: the answer (stated, else the last number) is a whole
  number, as word-problem answers about counts and money are.
- ``enough_steps``: at least one computation per quantity beyond the first.

Parsing is in :mod:`agentmesh.evaluation.answers`. :class:`CascadeModel` combines
the scores and four size signals (:data:`SIZES`): a logistic model, optionally
with pairwise products of signals, trained on rows with the weak model's
responses (:func:`agentmesh.evaluation.cascade_fit.fit_cascade`), or the hand-set
:data:`DEFAULT_WEIGHTS`. A version-3 judge also reads two inputs that are not
validators: :data:`PROMPT_SIGNAL`, the pre-call difficulty of the question (the
logit of a learned prompt router, :class:`~agentmesh.routing.LearnedModel`), and
weights of words of the response (:func:`response_terms`). Its
``escalate_score`` is higher when the answer looks wrong; scoring is pure Python
(well under a millisecond per answer).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agentmesh.evaluation.answers import (
    FINAL,
    annotation_mismatches,
    arithmetic_steps,
    close,
    final_answer,
    last_number,
    quantities,
    safe_eval,
)
from agentmesh.routing.strategies.adaptive import LearnedModel

__all__ = [
    "CASCADE_FORMAT",
    "DEFAULT_WEIGHTS",
    "NOTES",
    "PROMPT_SIGNAL",
    "SIGNALS",
    "SIZES",
    "VALIDATORS",
    "CascadeModel",
    "arithmetic_steps",
    "final_answer",
    "response_terms",
    "safe_eval",
    "signal_matrix",
    "signals",
]

CASCADE_FORMAT = "agentmesh-cascade-router"
_VERSIONS = (1, 2, 3)
_TERM = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")

_HEDGES = (
    "however",
    "assume",
    "assuming",
    "approximately",
    "approx",
    "roughly",
    "not possible",
    "can't",
    "cannot",
    "impossible",
    "unclear",
    "not enough information",
    "wait",
    "actually",
    "mistake",
    "i think",
    "round",
    "it seems",
    "likely",
    "estimate",
)


def _answer_present(response: str, prompt: str) -> float:
    return 1.0 if final_answer(response) is not None else 0.0


def _arithmetic(response: str, prompt: str) -> float:
    steps = [s for s in arithmetic_steps(response) if s[1] is not None]
    if annotation_mismatches(response):
        return 0.0
    if not steps:
        return 0.5
    wrong = sum(1 for _, computed, written in steps if not close(computed or 0.0, written))
    return 0.0 if wrong else 1.0


def _consistent(response: str, prompt: str) -> float:
    answer = final_answer(response)
    if answer is None:
        return 0.0
    steps = arithmetic_steps(response)
    if not steps:
        return 0.5
    results = [w for _, _, w in steps] + [c for _, c, _ in steps if c is not None]
    if any(close(answer, r) for r in results[-3:]) or close(answer, steps[-1][2]):
        return 1.0
    return 0.6 if any(close(answer, r) for r in results) else 0.0


def _complete(response: str, prompt: str) -> float:
    tail = response.rstrip()
    if not tail:
        return 0.0
    if FINAL.search(tail[-40:]) or final_answer(tail[-120:]) is not None:
        return 1.0
    if tail.endswith((".", "!", ")", "*")):
        return 0.6
    return 0.0


def _no_hedging(response: str, prompt: str) -> float:
    lower = response.lower()
    hits = sum(1 for h in _HEDGES if h in lower)
    return 1.0 / (1.0 + hits)


def _used(given: float, used: set[float]) -> bool:
    # "half" is used as 0.5 or as a division by 2; "a third" as 1/3 or 3
    return given in used or (0 < given < 1 and round(1 / given, 6) in used)


def _input_share(response: str, prompt: str) -> float:
    given = set(quantities(prompt))
    if not given:
        return 1.0
    used = {round(v, 6) for v in quantities(response)}
    return sum(1 for g in given if _used(round(g, 6), used)) / len(given)


def _uses_inputs(response: str, prompt: str) -> float:
    return _input_share(response, prompt)


def _all_inputs(response: str, prompt: str) -> float:
    return 1.0 if _input_share(response, prompt) >= 1.0 - 1e-9 else 0.0


def _concise(response: str, prompt: str) -> float:
    words = len(response.split())
    steps = max(1, len(arithmetic_steps(response)))
    return 1.0 / (1.0 + max(0.0, words / steps - 40.0) / 40.0)


def _integer_answer(response: str, prompt: str) -> float:
    answer = last_number(response)
    if answer is None:
        return 0.0
    return 1.0 if abs(answer - round(answer)) < 1e-9 else 0.0


def _enough_steps(response: str, prompt: str) -> float:
    need = max(1, len(quantities(prompt)) - 1)
    return min(1.0, len(arithmetic_steps(response)) / need)


VALIDATORS: Mapping[str, Callable[[str, str], float]] = MappingProxyType(
    {
        "answer_present": _answer_present,
        "arithmetic": _arithmetic,
        "consistent": _consistent,
        "complete": _complete,
        "no_hedging": _no_hedging,
        "uses_inputs": _uses_inputs,
        "all_inputs": _all_inputs,
        "concise": _concise,
        "integer_answer": _integer_answer,
        "enough_steps": _enough_steps,
    }
)
"""Validator name -> ``(response, prompt) -> score in [0, 1]`` (1 = looks right)."""

NOTES: Mapping[str, str] = MappingProxyType(
    {
        "answer_present": "no final answer is stated",
        "arithmetic": "a calculation does not check out",
        "consistent": "the final answer is not what the working computed",
        "complete": "the answer stops mid-computation",
        "no_hedging": "it hedges or second-guesses itself",
        "all_inputs": "not every quantity the question gives is used",
        "integer_answer": "the answer is not a whole number",
        "enough_steps": "too few calculations for the quantities given",
    }
)
"""What a low score of a validator means, for feedback to the model asked again."""

SIZES: tuple[str, ...] = ("log_steps", "log_words", "question_words", "question_numbers")
"""Size signals, not verdicts: the answer's steps and words, the question's words and numbers."""

SIGNALS: tuple[str, ...] = (*VALIDATORS, *SIZES)
"""Inputs of a :class:`CascadeModel`: the validators plus the size signals."""

PROMPT_SIGNAL = "prompt_difficulty"
"""The logit of a judge's prompt router (pre-call difficulty): a signal of version-3 judges."""


def response_terms(response: str) -> frozenset[str]:
    """The distinct terms of an answer that a judge's word weights read.

    Lower-case words, digit runs as ``0``, single punctuation characters (``$``, ``=``).
    """
    return frozenset("0" if t.isdigit() else t for t in _TERM.findall(response.lower()))


def signals(response: str, prompt: str) -> dict[str, float]:
    """Every validator's score plus the size signals (log counts scaled to ~[0, 1])."""
    values = {name: check(response, prompt) for name, check in VALIDATORS.items()}
    values["log_steps"] = math.log1p(len(arithmetic_steps(response))) / 3.0
    values["log_words"] = math.log1p(len(response.split())) / 6.0
    values["question_words"] = math.log1p(len(prompt.split())) / 6.0
    values["question_numbers"] = math.log1p(len(quantities(prompt))) / 3.0
    return values


DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "answer_present": 1.5,
        "arithmetic": 2.0,
        "consistent": 1.5,
        "complete": 1.0,
        "no_hedging": 1.0,
        "uses_inputs": 1.0,
        "concise": 0.5,
    }
)
"""Hand-set weights of the untrained cascade (each validator's vote for "looks right")."""


@dataclass(frozen=True, slots=True)
class CascadeModel:
    """Logistic judge over validator scores: ``p(answer wrong)``; high = escalate.

    ``z = bias + sum(w_s * signal_s) + sum(w_ab * signal_a * signal_b)`` over the
    listed signals and pairs. File format (JSON), version 1 (no pairs)::

        {"format": "agentmesh-cascade-router", "version": 1,
         "signals": ["answer_present", ...], "weights": [...], "bias": 1.2,
         "threshold": 0.5, "meta": {...}}

    Version 2 adds ``"pairs": [["arithmetic", "integer_answer", -0.4], ...]``.
    Version 3 may add ``"response_words": {"however": 0.2, ...}`` (added to ``z``
    for each of :func:`response_terms` of the answer) and ``"prompt_router":
    "gsm8k.json"``: a learned prompt router file, its path relative to the
    judge's file, whose logit is the signal :data:`PROMPT_SIGNAL`. All three
    versions load.
    """

    signals: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float = 0.5
    meta: Mapping[str, Any] = field(default_factory=dict)
    pairs: tuple[tuple[str, str, float], ...] = ()
    words: Mapping[str, float] = field(default_factory=dict)
    prompt_router: LearnedModel | None = None
    prompt_router_file: str | None = None

    def __post_init__(self) -> None:
        named = [*self.signals, *(p[0] for p in self.pairs), *(p[1] for p in self.pairs)]
        known = (*SIGNALS, PROMPT_SIGNAL)
        unknown = sorted({s for s in named if s not in known})
        if unknown:
            raise ValueError(f"unknown cascade signals {unknown}; known: {list(known)}")
        if len(self.signals) != len(self.weights):
            raise ValueError(f"{len(self.signals)} signals but {len(self.weights)} weights")
        if PROMPT_SIGNAL in named and self.prompt_router is None:
            raise ValueError(f"signal {PROMPT_SIGNAL!r} needs a prompt router")

    @property
    def version(self) -> int:
        """1 for a linear judge, 2 with pairwise products, 3 with words or a prompt router."""
        if self.words or self.prompt_router is not None:
            return 3
        return 2 if self.pairs else 1

    @classmethod
    def default(cls) -> CascadeModel:
        """The untrained judge: :data:`DEFAULT_WEIGHTS` as votes against escalation."""
        names = tuple(DEFAULT_WEIGHTS)
        weights = tuple(-w for w in DEFAULT_WEIGHTS.values())
        return cls(names, weights, bias=sum(DEFAULT_WEIGHTS.values()) * 0.8)

    def logit(self, values: Mapping[str, float]) -> float:
        """The linear score of already computed :func:`signals`."""
        z = self.bias + sum(w * values[s] for s, w in zip(self.signals, self.weights, strict=True))
        return z + sum(w * values[a] * values[b] for a, b, w in self.pairs)

    def escalate_score(self, response: str, prompt: str) -> float:
        """Probability-like score in (0, 1) that the weak answer is wrong."""
        return self.judge(response, prompt)[0]

    def judge(self, response: str, prompt: str) -> tuple[float, list[str]]:
        """:meth:`escalate_score` and what looks wrong: :data:`NOTES` of validators under 0.5."""
        values = signals(response, prompt)
        if self.prompt_router is not None:
            values[PROMPT_SIGNAL] = self.prompt_router.logit(prompt)
        z = self.logit(values)
        if self.words:
            z += sum(self.words.get(t, 0.0) for t in response_terms(response))
        notes = [note for name, note in NOTES.items() if values[name] < 0.5]
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))), notes

    def save(self, path: str | Path) -> None:
        """Write the model file (the lowest version that holds it).

        Raises:
            ValueError: A prompt router without ``prompt_router_file`` (the file names it).
        """
        document: dict[str, Any] = {
            "format": CASCADE_FORMAT,
            "version": self.version,
            "signals": list(self.signals),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "meta": dict(self.meta),
        }
        if self.pairs:
            document["pairs"] = [list(p) for p in self.pairs]
        if self.words:
            document["response_words"] = dict(self.words)
        if self.prompt_router is not None:
            if not self.prompt_router_file:
                raise ValueError("a judge with a prompt router needs prompt_router_file to save")
            document["prompt_router"] = self.prompt_router_file
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CascadeModel:
        """Read a model file (version 1, 2 or 3; a version-3 prompt router file too).

        Raises:
            ValueError: Not a cascade model file, or its prompt router is unreadable
                (names the file and the problem).
        """
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: deep nesting
            raise ValueError(f"{path}: cannot read cascade router: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != CASCADE_FORMAT:
            raise ValueError(f"{path}: not a cascade router (format must be {CASCADE_FORMAT!r})")
        if doc.get("version", 1) not in _VERSIONS:
            raise ValueError(
                f"{path}: unsupported cascade router version {doc.get('version')!r} "
                "(this agentmesh reads versions 1, 2 and 3)"
            )
        router_file = doc.get("prompt_router")
        router = None
        if router_file is not None:
            router = LearnedModel.load(Path(path).parent / str(router_file))
        try:
            words = doc.get("response_words") or {}
            if not isinstance(words, dict):
                raise TypeError("response_words must be an object of term -> weight")
            return cls(
                signals=tuple(doc["signals"]),
                weights=tuple(float(w) for w in doc["weights"]),
                bias=float(doc["bias"]),
                threshold=float(doc.get("threshold", 0.5)),
                meta=dict(doc.get("meta") or {}),
                pairs=tuple((str(a), str(b), float(w)) for a, b, w in doc.get("pairs") or ()),
                words={str(t): float(w) for t, w in words.items()},
                prompt_router=router,
                prompt_router_file=None if router_file is None else str(router_file),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None


def signal_matrix(pairs: Sequence[tuple[str, str]]) -> list[list[float]]:
    """Signals of ``(response, prompt)`` pairs as rows in :data:`SIGNALS` order."""
    out = []
    for response, prompt in pairs:
        values = signals(response, prompt)
        out.append([values[s] for s in SIGNALS])
    return out
