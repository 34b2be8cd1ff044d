"""Message blocks: how a chat template marks system, user and assistant turns.

.. code-block:: jinja

    {% system %}You plan research.{% endsystem %}
    {% user %}Question: Why is the sky blue?{% enduser %}        {# a few-shot example #}
    {% assistant %}{"steps": ["..."]}{% endassistant %}
    {% user %}Question: {{ question }}{% enduser %}
    {% message turn.role %}{{ turn.content }}{% endmessage %}      {# role from data #}

Each block renders its body between two markers carrying a nonce drawn for
that render (``secrets.token_hex(16)``); after rendering, the text is split on
those markers. An input cannot forge a role boundary: it would have to contain
the nonce, which is drawn after the inputs are given and never appears in any
output. Text outside blocks must be blank; a chat template without any block
renders to one user message. Each message's surrounding whitespace is
stripped and empty messages are dropped.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from types import MappingProxyType

from jinja2 import nodes
from jinja2.exceptions import TemplateRuntimeError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import Context
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agentmesh.prompts.errors import PromptError

__all__ = ["NONCE_KEY", "ROLES", "MessageExtension", "new_nonce", "split_messages"]

NONCE_KEY = "agentmesh:nonce"
"""Render variable holding the nonce; not an identifier, so no template can name it."""

ROLES: Mapping[str, type[BaseMessage]] = MappingProxyType(
    {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
)
"""Message roles a template can use, and the langchain-core message of each."""

_END = "end"


_MARKERS = re.compile(r"<\|([0-9a-f]+):(" + "|".join([*ROLES, _END]) + r")\|>")
"""Any marker; compiled once (a pattern per nonce cost ~100 µs per render)."""


def new_nonce() -> str:
    """A fresh random nonce for one render."""
    return secrets.token_hex(16)


def _marker(nonce: str, tag: str) -> str:
    return f"<|{nonce}:{tag}|>"


class MessageExtension(Extension):
    """Jinja tags ``system``, ``user``, ``assistant`` and ``message ROLE``, each a block."""

    tags = {"message", *ROLES}  # noqa: RUF012 (Jinja's Extension declares it this way)

    def parse(self, parser: Parser) -> nodes.Node:
        """Parse one message block; the role is the tag, or the expression after ``message``."""
        token = next(parser.stream)
        tag = str(token.value)
        role: nodes.Expr = nodes.Const(tag) if tag in ROLES else parser.parse_expression()
        body = parser.parse_statements((f"name:end{tag}",), drop_needle=True)
        call = self.call_method("_message", [nodes.ContextReference(), role])
        return nodes.CallBlock(call, [], [], body).set_lineno(token.lineno)

    def _message(self, context: Context, role: object, caller: Callable[[], str]) -> str:
        nonce = context.get(NONCE_KEY)
        if not isinstance(nonce, str):
            raise TemplateRuntimeError(
                "a message block needs the render context: import macros that hold "
                "message blocks 'with context'"
            )
        if not isinstance(role, str) or role not in ROLES:
            raise TemplateRuntimeError(
                f"unknown message role {role!r}; roles are {', '.join(ROLES)}"
            )
        return f"{_marker(nonce, role)}{caller()}{_marker(nonce, _END)}"


def split_messages(
    text: str, nonce: str, *, template: str | None = None, file: str | None = None
) -> tuple[BaseMessage, ...] | None:
    """Split rendered text on the markers of ``nonce`` into messages.

    Returns:
        The messages, or ``None`` when the text holds no message block.

    Raises:
        PromptError: Text outside the blocks, or nested blocks.
    """
    pairs: list[tuple[str, str]] = []
    role: str | None = None
    position = 0
    for match in _MARKERS.finditer(text):
        if match[1] != nonce:
            continue  # looks like a marker but is not this render's: plain text
        chunk, tag = text[position : match.start()], match[2]
        position = match.end()
        if role is not None and tag != _END:
            raise PromptError(
                f"message blocks cannot be nested ({tag!r} inside {role!r})",
                template=template,
                file=file,
            )
        if role is None:
            _check_blank(chunk, template=template, file=file)
            role = tag
        else:
            pairs.append((role, chunk))
            role = None
    if not pairs:
        return None
    _check_blank(text[position:], template=template, file=file)
    return tuple(ROLES[r](content=c.strip()) for r, c in pairs if c.strip())


def _check_blank(chunk: str, *, template: str | None, file: str | None) -> None:
    if chunk.strip():
        shown = chunk.strip().splitlines()[0][:60]
        raise PromptError(
            f"text outside a message block: {shown!r} (put it inside "
            "{% system %}, {% user %} or {% assistant %})",
            template=template,
            file=file,
        )
