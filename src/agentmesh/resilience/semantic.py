"""The opt-in semantic cache: one step of the attempt routine, beside the exact cache.

A call whose policy (or node policy) or catalog entry sets ``semantic_cache:
{model, threshold}`` is looked up, after the exact cache misses, among the
answers stored in its **namespace**: a digest of everything the exact key holds
(:func:`~agentmesh.resilience.cache.cache_key`: the model id, every message but
the last user message, the prompt template's hash, the parameters, tools and
response format), plus the node and the embeddings model. Only the last user
message differs inside a namespace, so another template, system prompt, node or
model can never share an answer. Its text is embedded through
:meth:`Gateway.embed <agentmesh.models.Gateway.embed>` (any ``kind: embeddings``
entry of the catalog); a stored answer serves the call when the cosine
similarity reaches ``threshold`` and, with ``guard`` (the default), both
messages carry the same numbers, in order, and the same negation words:
embeddings of "refund 12 euros" and "refund 120 euros" are close, their answers
are not interchangeable.

What is cached follows the exact cache's rule (:class:`~agentmesh.resilience.cache.CacheRule`):
``cache: false`` at any level turns this off too, sampled calls need ``cache:
sampled``, and only :func:`~agentmesh.resilience.cache.cacheable` answers are
stored. A hit costs nothing and is traced on its ``cache {model}`` span
(``agentmesh.cache.hit``, ``agentmesh.cache.semantic: true``,
``agentmesh.cache.similarity``); an embeddings call that fails is a miss, never
a failed call. Answers live in this process's memory, bounded per namespace.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from langchain_core.messages import BaseMessage, HumanMessage

from agentmesh.models.catalog import UnknownModel
from agentmesh.models.controls import SemanticCacheSetting
from agentmesh.models.errors import ModelError
from agentmesh.models.gateway import Gateway
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest, ModelResponse, last_user_text
from agentmesh.resilience.cache import CachedAnswer, CacheRule, cache_key, cacheable
from agentmesh.routing.policy import Policy
from agentmesh.tracing.controls import (
    CACHE_HIT,
    CACHE_SAVED_USD,
    CACHE_SEMANTIC,
    CACHE_SIMILARITY,
    cache_span,
)

__all__ = [
    "NEGATIONS",
    "Match",
    "SemanticIndex",
    "SemanticLookup",
    "SemanticStep",
    "guard_signature",
    "namespace_of",
]

_log = logging.getLogger("agentmesh.resilience")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[a-z']+")
NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot"}
)
"""Words whose presence flips a question's meaning (plus every ``...n't``)."""
MAX_NAMESPACES = 4096
"""Namespaces kept in memory (the least recently used leave first)."""


def guard_signature(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The numbers of ``text`` in order, and its negation words (sorted): equal or no hit."""
    lowered = text.lower()
    numbers = tuple(n.replace(",", "") for n in _NUMBER.findall(lowered))
    words = _WORD.findall(lowered.replace("\u2019", "'"))
    negations = tuple(sorted(w for w in words if w in NEGATIONS or w.endswith("n't")))
    return numbers, negations


def _without_last_user_message(messages: list[BaseMessage]) -> list[BaseMessage]:
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return [*messages[:index], HumanMessage(""), *messages[index + 1 :]]
    return messages


def namespace_of(model: str, node: str | None, embedder: str, request: ModelRequest) -> str:
    """The namespace of ``request``: its exact key without the last user message's text.

    The completion prompt of a base model (``request.prompt``) is left out: it
    is rendered from the same template (whose hash is in the key) and messages.
    """
    masked = replace(
        request, messages=_without_last_user_message(list(request.messages)), prompt=None
    )
    document = ["semantic-1", node, embedder, cache_key(model, masked)]
    return hashlib.sha256(json.dumps(document).encode()).hexdigest()


def _unit(vector: tuple[float, ...]) -> tuple[float, ...]:
    norm = math.sqrt(sum(v * v for v in vector))
    return tuple(v / norm for v in vector) if norm else vector


@dataclass(frozen=True, slots=True)
class _Entry:
    vector: tuple[float, ...]
    signature: tuple[tuple[str, ...], tuple[str, ...]]
    answer: CachedAnswer
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class Match:
    """The best stored answer of a lookup, and whether it may serve the call."""

    similarity: float
    answer: CachedAnswer | None
    guarded: bool = False


class SemanticIndex:
    """Answers by namespace, in memory: a bounded list of (unit vector, guard, answer) each.

    Args:
        clock: Epoch-seconds clock for lifetimes (tests inject one).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._namespaces: OrderedDict[str, deque[_Entry]] = OrderedDict()
        self._clock = clock

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._namespaces.values())

    def best(
        self,
        namespace: str,
        vector: tuple[float, ...],
        signature: tuple[tuple[str, ...], tuple[str, ...]],
        setting: SemanticCacheSetting,
    ) -> Match:
        """The most similar live answer of ``namespace`` (``answer`` set only when it may serve)."""
        entries = self._namespaces.get(namespace)
        if not entries:
            return Match(0.0, None)
        self._namespaces.move_to_end(namespace)
        now = self._clock()
        best: _Entry | None = None
        similarity = -1.0
        for entry in entries:
            if entry.expires_at is not None and entry.expires_at <= now:
                continue
            if len(entry.vector) != len(vector):
                continue  # another embedder's vectors (a changed entry): never comparable
            found = sum(a * b for a, b in zip(entry.vector, vector, strict=True))
            if found > similarity:
                best, similarity = entry, found
        if best is None or similarity < setting.threshold:
            return Match(max(similarity, 0.0), None)
        if setting.guard and best.signature != signature:
            return Match(similarity, None, guarded=True)
        return Match(similarity, best.answer)

    def add(
        self,
        namespace: str,
        vector: tuple[float, ...],
        signature: tuple[tuple[str, ...], tuple[str, ...]],
        answer: CachedAnswer,
        *,
        ttl_s: float | None,
        max_entries: int,
    ) -> None:
        """Keep ``answer`` (the namespace's oldest leaves past ``max_entries``)."""
        entries = self._namespaces.get(namespace)
        if entries is None or entries.maxlen != max_entries:
            entries = deque(entries or (), maxlen=max_entries)
            self._namespaces[namespace] = entries
        self._namespaces.move_to_end(namespace)
        expires = None if ttl_s is None else self._clock() + ttl_s
        entries.append(_Entry(vector, signature, answer, expires))
        while len(self._namespaces) > MAX_NAMESPACES:
            self._namespaces.popitem(last=False)


@dataclass(slots=True)
class SemanticLookup:
    """One call's semantic lookup: where, what text, and (once embedded) its vector."""

    setting: SemanticCacheSetting
    rule: CacheRule
    namespace: str
    text: str
    signature: tuple[tuple[str, ...], tuple[str, ...]]
    vector: tuple[float, ...] | None = None


class SemanticStep:
    """The semantic cache step: after the exact cache misses, look up; store good answers.

    Args:
        gateway: Embeds the prompts (the caller's gateway: the same catalog).
        index: Where answers are kept (default: a new one in memory).
    """

    def __init__(self, gateway: Gateway, index: SemanticIndex | None = None) -> None:
        self._gateway = gateway
        self.index = index if index is not None else SemanticIndex()

    def plan(
        self, policy: Policy | None, spec: ModelSpec, request: ModelRequest, node: str | None
    ) -> SemanticLookup | None:
        """The lookup of ``request`` to ``spec``, or ``None`` when it is not semantically cached.

        The policy's ``semantic_cache`` wins over the entry's; the exact cache's
        rule (``cache: false``, sampled calls) applies to it as well.
        """
        setting = (policy.semantic_cache if policy is not None else None) or spec.semantic_cache
        if setting is None:
            return None
        rule = CacheRule.of(default=True, policy=policy, spec=spec, request=request)
        text = last_user_text(request.messages).strip()
        if not rule.enabled or not text:
            return None
        return SemanticLookup(
            setting,
            rule,
            namespace_of(spec.id, node, setting.model, request),
            text,
            guard_signature(text),
        )

    async def lookup(
        self, plan: SemanticLookup, model: str, node: str | None
    ) -> ModelResponse | None:
        """A paraphrase's stored answer served free (traced on ``cache {model}``), or ``None``."""
        started = time.perf_counter()
        with cache_span(model, node) as scope:
            scope.set(CACHE_SEMANTIC, True)
            try:
                found = await self._gateway.embed(plan.setting.model, [plan.text])
            except (ModelError, UnknownModel) as exc:
                _log.warning("semantic cache of %s: embeddings failed: %s", model, exc)
                scope.set("error.type", "embeddings_failed")
                scope.set("agentmesh.cache.error", str(exc))
                scope.set(CACHE_HIT, False)
                return None
            plan.vector = _unit(found.vectors[0])
            match = self.index.best(plan.namespace, plan.vector, plan.signature, plan.setting)
            scope.set(CACHE_SIMILARITY, round(match.similarity, 6))
            if match.guarded:
                scope.set("agentmesh.cache.guarded", True)
            scope.set(CACHE_HIT, match.answer is not None)
            if match.answer is None:
                return None
            scope.set(CACHE_SAVED_USD, match.answer.response.cost_usd)
        return match.answer.served((time.perf_counter() - started) * 1000)

    def store(self, plan: SemanticLookup, response: ModelResponse, *, allow_empty: bool) -> None:
        """Keep ``response`` under the call's vector if it is a good answer (and was embedded)."""
        if plan.vector is None or not cacheable(response, allow_empty=allow_empty):
            return
        self.index.add(
            plan.namespace,
            plan.vector,
            plan.signature,
            CachedAnswer(response, time.time()),
            ttl_s=plan.rule.ttl_s,
            max_entries=plan.setting.max_entries,
        )
