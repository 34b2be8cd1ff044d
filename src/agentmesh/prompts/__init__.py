"""Prompts: one library of Jinja2 templates, rendered per model after routing.

:class:`PromptLibrary` loads a folder of sandboxed templates (by default the
shipped ones, :func:`shipped_prompts`: the repository's ``prompts/``);
``render(name, model, inputs)`` picks the variant for the chosen model
(``name.<model-id>.j2`` > ``name.<family>.j2`` > ``name.<provider>.j2`` >
``name.j2``), checks the inputs against the front matter, and returns a
:class:`RenderedPrompt`: chat messages or one completion prompt, with the
template name, the variant file and a content hash for tracing.
"""

from agentmesh.prompts.errors import PromptError
from agentmesh.prompts.frontmatter import Format, FrontMatter, VariantFrontMatter
from agentmesh.prompts.inputs import InputSpec, InputType
from agentmesh.prompts.library import PromptLibrary
from agentmesh.prompts.messages import ROLES, MessageExtension
from agentmesh.prompts.rendered import Match, ModelInfo, RenderedPrompt, model_info
from agentmesh.prompts.shipped import shipped_prompts
from agentmesh.prompts.templates import PromptTemplate, PromptVariant, Resolution, variant_key

__all__ = [
    "ROLES",
    "Format",
    "FrontMatter",
    "InputSpec",
    "InputType",
    "Match",
    "MessageExtension",
    "ModelInfo",
    "PromptError",
    "PromptLibrary",
    "PromptTemplate",
    "PromptVariant",
    "RenderedPrompt",
    "Resolution",
    "VariantFrontMatter",
    "model_info",
    "shipped_prompts",
    "variant_key",
]
