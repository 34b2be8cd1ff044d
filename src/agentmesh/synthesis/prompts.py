"""The prompts of synthesis steps: library templates per model, or built-in plain ones.

Each step names a template (``refine``, ``summarize``, ``pick_best``) and its
inputs. With a :class:`~agentmesh.prompts.PromptLibrary` that has the
template, the request is rendered for each model the resilient caller tries
(so a fallback to another family gets its own variant); otherwise built-in
plain instructions are used, so a synthesis works without the prompts folder.
The plain prompts take the same inputs as the shipped templates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from langchain_core.messages import BaseMessage

from agentmesh.models.spec import ModelSpec
from agentmesh.models.tokens import MESSAGE_OVERHEAD_TOKENS
from agentmesh.models.types import ModelRequest, ResponseFormat, message_text
from agentmesh.prompts import PromptLibrary
from agentmesh.resilience.call import RequestBuilder

__all__ = [
    "PICK_BEST_SCHEMA",
    "PLAIN_PROMPTS",
    "StepPrompt",
    "request_tokens",
]

PICK_BEST_SCHEMA: Mapping[str, Any] = MappingProxyType(
    {
        "type": "object",
        "properties": {
            "best": {"type": "integer", "minimum": 1},
            "reasons": {"type": "string"},
        },
        "required": ["best", "reasons"],
        "additionalProperties": False,
    }
)
"""The judge's answer: the 1-based number of the best candidate and why
(the same schema as ``prompts/schemas/pick_best.json``)."""


def _optional(inputs: Mapping[str, Any], name: str, heading: str) -> str:
    value = str(inputs.get(name) or "").strip()
    return f"\n\n{heading}:\n{value}" if value else ""


def _refine(inputs: Mapping[str, Any]) -> ModelRequest:
    return ModelRequest.of(
        f"Question: {inputs['question']}\n\nAnswer so far:\n{inputs['answer']}\n\n"
        f"New material:\n{inputs['material']}" + _optional(inputs, "feedback", "Feedback"),
        system=(
            "You refine answers. Given a question, the answer so far and new material, write "
            "an improved answer: keep what is correct, add what the material contributes, fix "
            "what it contradicts. Reply with the improved answer only."
        ),
    )


def _summarize(inputs: Mapping[str, Any]) -> ModelRequest:
    return ModelRequest.of(
        f"Question: {inputs['question']}\n\nSources:\n{inputs['texts']}",
        system=(
            "You combine sources into one answer. Using only the numbered sources, write one "
            "answer to the question that keeps every important point, resolves overlaps and "
            "notes real disagreements. Reply with the answer only."
        ),
    )


def _pick_best(inputs: Mapping[str, Any]) -> ModelRequest:
    criteria = str(inputs.get("criteria") or "").strip()
    return ModelRequest.of(
        f"Question: {inputs['question']}\n\nCandidates:\n{inputs['candidates']}"
        + (f"\n\nCriteria: {criteria}" if criteria else ""),
        system=(
            "You are a strict judge. Compare the numbered candidate answers to the question "
            "and pick the best one: the most correct, then the most complete. Reply with a "
            'single JSON object: {"best": <candidate number>, "reasons": "<why>"}.'
        ),
        response_format=ResponseFormat(schema=PICK_BEST_SCHEMA, name="pick_best"),
    )


PLAIN_PROMPTS: Mapping[str, Callable[[Mapping[str, Any]], ModelRequest]] = MappingProxyType(
    {"refine": _refine, "summarize": _summarize, "pick_best": _pick_best}
)
"""Built-in prompts by template name, used when no library provides the template."""


def request_tokens(request: ModelRequest, count: Callable[[str], int]) -> int:
    """Prompt tokens of ``request`` counted with ``count`` (chat formatting included).

    With the default estimate this equals
    :func:`~agentmesh.models.estimate_message_tokens`.
    """
    messages: tuple[BaseMessage, ...] = tuple(request.messages)
    return sum(count(message_text(m)) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 2


@dataclass(frozen=True, slots=True)
class StepPrompt:
    """The prompt of one synthesis step: a template name and its inputs.

    Attributes:
        template: Template name in the library and in :data:`PLAIN_PROMPTS`.
        inputs: The template's inputs.
    """

    template: str
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def with_inputs(self, **changes: Any) -> StepPrompt:
        """The same template with some inputs replaced."""
        return StepPrompt(self.template, {**self.inputs, **changes})

    def plain(self, max_tokens: int) -> ModelRequest:
        """The built-in request (model-independent)."""
        request = PLAIN_PROMPTS[self.template](self.inputs)
        return ModelRequest(
            messages=request.messages,
            max_tokens=max_tokens,
            response_format=request.response_format,
        )

    def builder(self, library: PromptLibrary | None, max_tokens: int) -> RequestBuilder:
        """A request builder for ``ResilientCaller.call``: renders per model tried."""
        if library is None or self.template not in library:
            plain = self.plain(max_tokens)
            return lambda spec: plain
        name, inputs = self.template, dict(self.inputs)

        def build(spec: ModelSpec) -> ModelRequest:
            return library.render(name, spec, inputs).to_request(max_tokens=max_tokens)

        return build

    @property
    def text(self) -> str:
        """The inputs as plain text, for the router's classifier."""
        return "\n\n".join(str(v) for v in self.inputs.values() if v)
