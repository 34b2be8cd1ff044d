"""What the spans opened inside a run know of it: a context variable bound by the run's spans.

:func:`~agentmesh.tracing.workflow_span` and :func:`~agentmesh.tracing.node_span`
bind a :class:`RunScope` (conversation id, workflow, node) while their block
runs; every agentmesh span opened inside takes ``gen_ai.conversation.id`` from
it (:func:`with_conversation`), and tool spans their node. LangGraph's tasks
copy the context, so fan-out branches inherit it. :func:`conversation` binds a
conversation id outside a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace

from opentelemetry.util.types import AttributeValue

from agentmesh.tracing.attributes import GEN_AI_CONVERSATION_ID

__all__ = ["RunScope", "bind_run", "conversation", "current_run", "reset_run", "with_conversation"]


@dataclass(frozen=True, slots=True)
class RunScope:
    """What the spans opened inside a run or node know of it (a context variable).

    Attributes:
        conversation_id: ``gen_ai.conversation.id``: the run (thread) id.
        workflow: The workflow's name.
        node: The node executing, inside a node's span.
    """

    conversation_id: str | None = None
    workflow: str | None = None
    node: str | None = None


_NO_RUN = RunScope()
_RUN: ContextVar[RunScope] = ContextVar("agentmesh_run_scope", default=_NO_RUN)


def current_run() -> RunScope:
    """The run scope bound where the caller runs (empty outside a run)."""
    return _RUN.get()


@contextmanager
def conversation(conversation_id: str) -> Iterator[None]:
    """Put ``gen_ai.conversation.id`` on every agentmesh span opened inside the block.

    What :func:`workflow_span` does for a run; for code that calls models
    without agentmesh's runner (a LangGraph graph of its own, a chat loop).
    """
    token = _RUN.set(replace(_RUN.get(), conversation_id=conversation_id))
    try:
        yield
    finally:
        _RUN.reset(token)


def with_conversation(
    attributes: dict[str, AttributeValue], run_id: object = None
) -> dict[str, AttributeValue]:
    """``attributes`` with ``gen_ai.conversation.id`` added when known and not set.

    The id is ``run_id`` when given (a string), else the bound run scope's.
    """
    if GEN_AI_CONVERSATION_ID not in attributes:
        conversation_id = run_id if isinstance(run_id, str) else _RUN.get().conversation_id
        if conversation_id is not None:
            attributes[GEN_AI_CONVERSATION_ID] = conversation_id
    return attributes


def bind_run(scope: RunScope) -> Token[RunScope]:
    """Bind ``scope`` in the current context; :func:`reset_run` the token to undo it."""
    return _RUN.set(scope)


def reset_run(token: Token[RunScope]) -> None:
    """Undo a :func:`bind_run` (a no-op when left in another context than it was entered in)."""
    with suppress(ValueError):
        _RUN.reset(token)
