"""Redaction of what is sent to a model: one step of the attempt routine, before the call.

``redact: true`` on a catalog entry means that model never receives what the
built-in patterns match; ``redact: package.module:function`` uses any callable
instead (``function(text) -> text``, e.g. a Presidio anonymizer). On a policy,
``redact:`` applies to the models tagged ``external``; an entry's own
``redact`` (``false`` included) wins over the policy's.

The built-in patterns (:data:`PATTERNS`): e-mail addresses, card numbers
(13-19 digits passing the Luhn check), phone numbers, and API keys of the
common shapes (``sk-...``, ``AKIA...``, ``ghp_...``, ``xox?-...``,
``key=...``). Each match becomes a placeholder such as ``<EMAIL_1>``, the same
value the same placeholder within one call, so the model can still refer to
it; with ``unredact: true`` on the policy, placeholders in the answer are put
back before the caller sees it (never in traces or caches of the request).

Because the request is redacted before the gateway sends and traces it, the
``chat`` span's captured content holds the redacted text too.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from langchain_core.messages import BaseMessage

from agentmesh.models.controls import RedactSetting
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import ModelRequest, ModelResponse
from agentmesh.routing.policy import Policy

__all__ = [
    "PATTERNS",
    "RedactStep",
    "Redaction",
    "RedactionError",
    "load_redactor",
    "redact_text",
]

EXTERNAL_TAG = "external"


class RedactionError(ValueError):
    """A ``redact: package.module:function`` that cannot be imported or called."""


def _luhn(digits: str) -> bool:
    total, odd = 0, False
    for char in reversed(digits):
        n = int(char)
        if odd:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
        odd = not odd
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", match.group(0))
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _always(match: re.Match[str]) -> bool:
    return True


PATTERNS: Mapping[str, tuple[re.Pattern[str], Callable[[re.Match[str]], bool]]] = MappingProxyType(
    {
        "EMAIL": (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b"), _always),
        "API_KEY": (
            re.compile(
                r"\b(?:sk-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}"
                r"|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})"
                r"|(?<=api_key=)[^\s&\"']{8,}|(?<=apikey=)[^\s&\"']{8,}"
            ),
            _always,
        ),
        "CARD": (re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), _card),
        "PHONE": (
            re.compile(
                r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})"
                r"[ .-]\d{3,4}[ .-]\d{3,4}(?![ .-]?\d)"
            ),
            _always,
        ),
    }
)
"""Placeholder kind -> (pattern, check of a match), applied in this order."""


@dataclass(slots=True)
class Redaction:
    """The placeholders of one call: placeholder -> original value."""

    values: dict[str, str] = field(default_factory=dict)
    _by_value: dict[str, str] = field(default_factory=dict)

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder of ``value`` (the same one each time within the call)."""
        found = self._by_value.get(value)
        if found is None:
            count = sum(1 for p in self.values if p.startswith(f"<{kind}_")) + 1
            found = f"<{kind}_{count}>"
            self._by_value[value] = found
            self.values[found] = value
        return found

    def restore(self, text: str) -> str:
        """``text`` with every placeholder put back."""
        for placeholder, value in self.values.items():
            text = text.replace(placeholder, value)
        return text


def redact_text(text: str, redaction: Redaction) -> str:
    """``text`` with every built-in pattern's match replaced by its placeholder."""
    for kind, (pattern, check) in PATTERNS.items():

        def swap(match: re.Match[str], kind: str = kind, check: Any = check) -> str:
            return redaction.placeholder(kind, match.group(0)) if check(match) else match.group(0)

        text = pattern.sub(swap, text)
    return text


def load_redactor(path: str) -> Callable[[str], str]:
    """The callable ``package.module:function`` names.

    Raises:
        RedactionError: It cannot be imported or is not callable.
    """
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise RedactionError(f"redact: {path}: cannot import it ({exc})") from None
    if not callable(target):
        raise RedactionError(f"redact: {path}: is not callable")
    return target  # type: ignore[no-any-return]  # a user's callable: checked at call time


class RedactStep:
    """The redaction step: which calls are redacted, how, and the answer restored."""

    def __init__(self) -> None:
        self._loaded: dict[str, Callable[[str], str]] = {}

    @staticmethod
    def setting(policy: Policy | None, spec: ModelSpec) -> RedactSetting | None:
        """The redaction that applies to ``spec`` under ``policy`` (``None``/false: none)."""
        if spec.redact is not None:
            return spec.redact
        if policy is not None and policy.redact and EXTERNAL_TAG in spec.tags:
            return policy.redact
        return None

    def _function(self, setting: RedactSetting) -> Callable[[str], str] | None:
        if setting is True or setting is False:
            return None
        found = self._loaded.get(setting)
        if found is None:
            found = self._loaded[setting] = load_redactor(setting)
        return found

    def apply(
        self, policy: Policy | None, spec: ModelSpec, request: ModelRequest
    ) -> tuple[ModelRequest, Redaction | None]:
        """``request`` as ``spec`` may receive it, and its placeholders (``None``: untouched).

        Raises:
            RedactionError: A custom redactor failed to import, or returned no text.
        """
        setting = self.setting(policy, spec)
        if not setting:
            return request, None
        redaction = Redaction()
        custom = self._function(setting)

        def clean(text: str) -> str:
            if custom is None:
                return redact_text(text, redaction)
            out = custom(text)
            if not isinstance(out, str):
                raise RedactionError(f"redact: {setting}: returned {type(out).__name__}, not text")
            return out

        messages = [_message(m, clean) for m in request.messages]
        prompt = None if request.prompt is None else clean(request.prompt)
        return replace(request, messages=messages, prompt=prompt), redaction

    @staticmethod
    def restore(
        policy: Policy | None, response: ModelResponse, redaction: Redaction | None
    ) -> ModelResponse:
        """The answer with placeholders put back, when the policy says ``unredact: true``."""
        if redaction is None or not redaction.values or policy is None or not policy.unredact:
            return response
        return replace(response, text=redaction.restore(response.text))


def _message(message: BaseMessage, clean: Callable[[str], str]) -> BaseMessage:
    content = message.content
    if isinstance(content, str):
        return message.model_copy(update={"content": clean(content)})
    parts: list[Any] = []
    for part in content:
        if isinstance(part, str):
            parts.append(clean(part))
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append({**part, "text": clean(str(part.get("text", "")))})
        else:
            parts.append(part)
    return message.model_copy(update={"content": parts})
