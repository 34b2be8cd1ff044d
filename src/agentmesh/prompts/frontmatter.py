"""Front matter: the YAML header of a template file.

A template file may start with a YAML block between a first line ``---`` and
the next ``---`` line::

    ---
    description: Break a question into research steps.
    format: chat                      # chat (default) | completion
    inputs:
      question: {type: str, description: The question to research}
      max_steps: {type: int, required: false, default: 5}
    output_schema: schemas/plan.json  # JSON Schema, relative to the prompts folder
    example: {question: Why is the sky blue?}
    stop: ["Question:"]               # stop sequences for requests built from it
    ---

The generic template (``plan.j2``) must have front matter with a
``description``; it owns the contract (inputs, output schema, example) of
every variant. A variant's front matter is optional and may only change
``description``, ``format`` and ``stop``. Before compiling, the block is
replaced by as many blank lines, so Jinja's line numbers are the file's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from agentmesh._validation import describe_errors
from agentmesh._yamlfile import parse_yaml
from agentmesh.prompts.errors import PromptError
from agentmesh.prompts.inputs import RESERVED_NAMES, InputSpec, check_inputs, valid_input_name

__all__ = [
    "FENCE",
    "Format",
    "FrontMatter",
    "VariantFrontMatter",
    "parse_front_matter",
    "split_front_matter",
]

FENCE = "---"
"""The line that opens and closes a front-matter block."""

Format = Literal["chat", "completion"]
"""``chat``: renders to messages; ``completion``: renders to one prompt string."""


class FrontMatter(BaseModel):
    """The contract of a template, from the front matter of its generic file.

    Attributes:
        description: What the template is for (required).
        format: ``chat`` renders to messages, ``completion`` to one prompt string.
        inputs: Declared inputs by name.
        output_schema: Path (relative to the prompts folder) of a JSON Schema
            the output must follow; requests built from the prompt ask for it.
        example: Sample input values; checked against ``inputs`` when loading.
        stop: Stop sequences for requests built from the prompt (few-shot
            completion prompts use them to end after one answer).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Annotated[str, Field(min_length=1)]
    format: Format = "chat"
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    output_schema: str | None = None
    example: dict[str, Any] = Field(default_factory=dict)
    stop: tuple[str, ...] = ()

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, InputSpec]) -> dict[str, InputSpec]:
        bad = [name for name in value if not valid_input_name(name)]
        if bad:
            raise ValueError(
                f"invalid input name(s) {', '.join(map(repr, bad))}: inputs are identifiers, "
                f"not starting with '_' and not one of {', '.join(sorted(RESERVED_NAMES))}"
            )
        return value

    @field_validator("example")
    @classmethod
    def _example_fits(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        inputs = info.data.get("inputs")
        if inputs is not None and value:
            try:
                check_inputs(inputs, value)
            except PromptError as exc:
                raise ValueError(exc.detail) from None
        return value


class VariantFrontMatter(BaseModel):
    """What a variant's front matter may change; the rest comes from the generic file.

    Attributes:
        description: Replaces the generic description.
        format: ``completion`` for few-shot variants of base models.
        stop: Replaces the generic stop sequences.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Annotated[str | None, Field(min_length=1)] = None
    format: Format | None = None
    stop: tuple[str, ...] | None = None

    def apply_to(self, generic: FrontMatter) -> FrontMatter:
        """The effective front matter of the variant: the generic one with these changes."""
        return generic.model_copy(update=self.model_dump(exclude_none=True))


def split_front_matter(text: str, file: str) -> tuple[str | None, str]:
    """Split a file into its front-matter YAML (or ``None``) and its template body.

    The body keeps the file's line numbers: the front-matter block, fences
    included, becomes blank lines.

    Raises:
        PromptError: The file opens a front-matter block that is never closed.
    """
    lines = text.split("\n")
    if lines[0].rstrip() != FENCE:
        return None, text
    for index in range(1, len(lines)):
        if lines[index].rstrip() == FENCE:
            header = "\n".join(lines[1:index])
            return header, "\n" * (index + 1) + "\n".join(lines[index + 1 :])
    raise PromptError("unterminated front matter: no closing '---' line", file=file, line=1)


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """File line of the deepest node along ``loc`` (the YAML starts on line 2)."""
    line, node = 1, root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 2, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 2
        else:
            break
    return line


def _key_lines(root: yaml.Node | None) -> dict[str, int]:
    """Line of each top-level key and of each input (as ``inputs.<name>``)."""
    lines: dict[str, int] = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        lines[str(key.value)] = key.start_mark.line + 2
        if key.value == "inputs" and isinstance(value, yaml.MappingNode):
            for name, _ in value.value:
                lines[f"inputs.{name.value}"] = name.start_mark.line + 2
    return lines


_VARIANT_HINT = (
    "a variant may set only description, format and stop; "
    "inputs, output_schema and example come from the generic template"
)

Model = TypeVar("Model", FrontMatter, VariantFrontMatter)


def parse_front_matter(
    header: str, schema: type[Model], *, file: str, template: str | None = None
) -> tuple[Model, dict[str, int]]:
    """Validate front-matter YAML against ``schema``.

    Returns:
        The front matter, and the line of each top-level field and of each
        input's declaration (keyed ``inputs.<name>``).

    Raises:
        PromptError: Invalid YAML, not a mapping, or an invalid field; the
            error names the file, the line and the field.
    """
    try:
        data, root = parse_yaml(header)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PromptError(
            f"front matter is not valid YAML: {problem}",
            template=template,
            file=file,
            line=mark.line + 2 if mark is not None else 1,
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PromptError(
            "front matter must be a YAML mapping", template=template, file=file, line=2
        )
    try:
        return schema.model_validate(data), _key_lines(root)
    except ValidationError as exc:
        errors = exc.errors()
        loc = tuple(errors[0]["loc"])
        variable = str(loc[1]) if len(loc) > 1 and loc[0] in ("inputs", "example") else None
        message = "front matter: " + describe_errors(exc)
        if schema is VariantFrontMatter and any(e["type"] == "extra_forbidden" for e in errors):
            message += f" ({_VARIANT_HINT})"
        raise PromptError(
            message,
            template=template,
            variable=variable,
            file=file,
            line=_line_of(root, loc),
        ) from None
