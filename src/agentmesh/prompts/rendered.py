"""What templates see of the model, and what a render produces.

Templates get the chosen model as :class:`ModelInfo`, a read-only view built
from its :class:`~agentmesh.models.ModelSpec` (never the spec itself, which
holds provider settings). A render returns a :class:`RenderedPrompt`: the
messages (or one completion prompt), plus the template name, the variant file
and a content hash for tracing, and a bridge to a
:class:`~agentmesh.models.ModelRequest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import BaseMessage

from agentmesh.models import ModelRequest, ModelSpec, ResponseFormat
from agentmesh.models.types import message_text
from agentmesh.prompts.frontmatter import Format

__all__ = ["Match", "ModelInfo", "RenderedPrompt", "model_info"]

Match = Literal["model-id", "family", "provider", "generic"]
"""Which level of the resolution order chose a variant."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The chosen model, as templates see it (``model.family``, ``model.tier``...).

    Attributes:
        id: Catalog id.
        family: Model family (``gpt``, ``claude``, ``gemma``...).
        provider: Provider name (``openai``, ``anthropic``, ``llamacpp``...).
        tier: 1 is the cheapest/weakest.
        capabilities: Sorted capability names (``json``, ``tools``...).
        context_window: Total tokens the model accepts.
        max_output_tokens: Largest completion the model produces.
        tags: Sorted free labels from the catalog.
        prompt_style: ``chat`` or ``completion`` (base models).
    """

    id: str
    family: str
    provider: str
    tier: int
    capabilities: tuple[str, ...]
    context_window: int
    max_output_tokens: int
    tags: tuple[str, ...]
    prompt_style: str


def model_info(spec: ModelSpec) -> ModelInfo:
    """The view of a catalog entry that templates get as ``model``."""
    return ModelInfo(
        id=spec.id,
        family=spec.family,
        provider=spec.provider.value,
        tier=spec.tier,
        capabilities=tuple(sorted(c.value for c in spec.capabilities)),
        context_window=spec.context_window,
        max_output_tokens=spec.max_output_tokens,
        tags=tuple(sorted(spec.tags)),
        prompt_style=spec.prompt_style,
    )


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """One rendered prompt, ready to send, with what a trace needs to identify it.

    Attributes:
        template: Template name (``plan``).
        variant: File used, relative to the prompts folder (``plan.gemma.j2``).
        matched: Which level of the resolution order chose it.
        hash: Version of the prompt: 16 hex digits of a SHA-256 over the variant
            file, every file it extends/includes/imports (transitively) and its
            effective front matter. Independent of the inputs.
        format: ``chat`` or ``completion``.
        messages: The messages; for a completion prompt, one human message
            holding it.
        completion: The whole prompt of a ``completion`` template, else ``None``.
        model_id: Catalog id of the model it was rendered for.
        output_schema: The JSON Schema the output must follow, if declared.
        stop: Stop sequences declared by the template.
    """

    template: str
    variant: str
    matched: Match
    hash: str
    format: Format
    messages: tuple[BaseMessage, ...]
    completion: str | None
    model_id: str
    output_schema: Mapping[str, Any] | None = None
    stop: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The prompt as plain text (the completion, or the messages' contents)."""
        if self.completion is not None:
            return self.completion
        return "\n\n".join(message_text(m) for m in self.messages)

    def trace_attributes(self) -> dict[str, str]:
        """Span attributes identifying the prompt (``agentmesh.prompt.*``)."""
        return {
            "agentmesh.prompt.template": self.template,
            "agentmesh.prompt.variant": self.variant,
            "agentmesh.prompt.hash": self.hash,
        }

    def to_request(self, **options: Any) -> ModelRequest:
        """A :class:`~agentmesh.models.ModelRequest` carrying this prompt.

        Completion prompts are also set as ``prompt=``, so base models
        (``prompt_style: completion``) receive them verbatim. The template's
        stop sequences and output schema (as ``response_format``) apply unless
        ``options`` sets ``stop`` or ``response_format`` (``None`` included).

        Args:
            **options: Further :class:`~agentmesh.models.ModelRequest` fields
                (``max_tokens``, ``temperature``, ``timeout``...).
        """
        options.setdefault("stop", self.stop)
        if self.output_schema is not None:
            options.setdefault(
                "response_format", ResponseFormat(schema=self.output_schema, name=self.template)
            )
        if self.completion is not None:
            options.setdefault("prompt", self.completion)
        options.setdefault("labels", self.trace_attributes())
        return ModelRequest(messages=self.messages, **options)
