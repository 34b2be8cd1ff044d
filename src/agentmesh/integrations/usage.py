"""`NodeUsageHandler`: per-node tokens and cost of `RoutedChatModel` calls in any LangGraph graph.

For LangGraph users who do not run graphs with agentmesh's runner: pass the
handler as a callback and it adds up, per graph node, what each chat model
call used::

    usage = NodeUsageHandler()
    graph.invoke(inputs, config={"callbacks": [usage], "configurable": {"thread_id": "t1"}})
    usage.nodes()["researcher"].cost_usd        # tokens, calls, errors, models too
    usage.nodes(thread_id="t1")                 # one thread's (run's) share

A call's node is the LangGraph node it ran in (``langgraph_node`` in the
callback metadata, which LangGraph sets on every node's config), else the
``node`` of the :class:`~agentmesh.integrations.RoutedChatModel` that made it,
else ``"-"``. Tokens come from the answer's ``usage_metadata`` (any chat model
that reports it); cost, the serving model and the attempts from a
``RoutedChatModel``'s ``response_metadata`` (other models add tokens, no cost).
The handler is thread-safe and runs inline (no executor hop) under async code.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

__all__ = ["NodeUsage", "NodeUsageHandler"]

_NO_NODE = "-"


@dataclass
class NodeUsage:
    """What the chat model calls of one node (optionally of one thread) used.

    Attributes:
        calls: Finished calls (failed ones included).
        errors: Calls that raised.
        input_tokens: Prompt tokens, as the answers report them.
        output_tokens: Completion tokens.
        cost_usd: Money spent, from ``RoutedChatModel`` answers (others add nothing).
        attempts: Model attempts behind the calls (retries and fallbacks count).
        models: Calls per serving model (the catalog id for ``RoutedChatModel``).
        simulated: Some answer came from a scripted (simulated) model.
    """

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 0
    models: Counter[str] = field(default_factory=Counter)
    simulated: bool = False

    def add(self, other: NodeUsage) -> None:
        """Add ``other``'s figures to these."""
        self.calls += other.calls
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.attempts += other.attempts
        self.models.update(other.models)
        self.simulated = self.simulated or other.simulated

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "calls": self.calls,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 9),
            "attempts": self.attempts,
            "models": dict(self.models.most_common()),
            "simulated": self.simulated,
        }


def _copy(usage: NodeUsage) -> NodeUsage:
    out = NodeUsage()
    out.add(usage)
    return out


class NodeUsageHandler(BaseCallbackHandler):
    """A LangChain callback handler adding up token usage and cost per LangGraph node.

    Use one per graph run, or one for many runs and read them apart with
    ``nodes(thread_id=...)``.
    """

    run_inline = True  # update under the lock in the caller's thread; no executor hop

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: dict[UUID, tuple[str, str | None]] = {}
        self._usage: dict[tuple[str, str | None], NodeUsage] = {}

    # --- callbacks -----------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note the call's node and thread until it ends."""
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        node = meta.get("langgraph_node") or params.get("node") or _NO_NODE
        thread = meta.get("thread_id")
        with self._lock:
            self._pending[run_id] = (str(node), str(thread) if thread is not None else None)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Add the answer's tokens, cost, model and attempts to its node."""
        used = NodeUsage(calls=1)
        for generations in response.generations:
            for generation in generations:
                if isinstance(generation, ChatGeneration) and isinstance(
                    generation.message, AIMessage
                ):
                    _add_message(used, generation.message)
        self._finish(run_id, used)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Count a failed call (and its attempts, when it says them) against its node."""
        attempts = getattr(error, "attempts", None)
        used = NodeUsage(calls=1, errors=1, attempts=len(attempts) if attempts else 0)
        self._finish(run_id, used)

    def _finish(self, run_id: UUID, used: NodeUsage) -> None:
        with self._lock:
            key = self._pending.pop(run_id, (_NO_NODE, None))
            found = self._usage.get(key)
            if found is None:
                self._usage[key] = used
            else:
                found.add(used)

    # --- reading -------------------------------------------------------------------

    def nodes(self, *, thread_id: str | None = None) -> dict[str, NodeUsage]:
        """Usage per node (copies), of every thread or of ``thread_id``'s."""
        out: dict[str, NodeUsage] = {}
        with self._lock:
            for (node, thread), usage in self._usage.items():
                if thread_id is not None and thread != thread_id:
                    continue
                if node in out:
                    out[node].add(usage)
                else:
                    out[node] = _copy(usage)
        return dict(sorted(out.items()))

    def total(self, *, thread_id: str | None = None) -> NodeUsage:
        """Everything (or ``thread_id``'s) added up."""
        total = NodeUsage()
        for usage in self.nodes(thread_id=thread_id).values():
            total.add(usage)
        return total

    def threads(self) -> list[str]:
        """The thread ids seen (LangGraph's ``configurable.thread_id``)."""
        with self._lock:
            return sorted({t for _, t in self._usage if t is not None})

    def to_dict(self, *, thread_id: str | None = None) -> dict[str, Any]:
        """``{"nodes": {...}, "total": {...}}``, JSON-ready."""
        return {
            "nodes": {n: u.to_dict() for n, u in self.nodes(thread_id=thread_id).items()},
            "total": self.total(thread_id=thread_id).to_dict(),
        }

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._usage.clear()


def _add_message(used: NodeUsage, message: AIMessage) -> None:
    usage = message.usage_metadata
    if usage:
        used.input_tokens += int(usage.get("input_tokens", 0))
        used.output_tokens += int(usage.get("output_tokens", 0))
    meta: Mapping[str, Any] = message.response_metadata or {}
    cost = meta.get("cost_usd")
    if isinstance(cost, int | float):
        used.cost_usd += float(cost)
    model = meta.get("model_id") or meta.get("model_name")
    if isinstance(model, str) and model:
        used.models[model] += 1
    attempts = meta.get("attempts")
    used.attempts += len(attempts) if isinstance(attempts, list) else 1
    used.simulated = used.simulated or bool(meta.get("simulated"))
