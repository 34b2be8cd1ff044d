"""Templates, their variants, and which variant serves a model.

For template ``name`` and the model chosen by routing, the first file that
exists wins::

    name.<model-id>.j2  >  name.<family>.j2  >  name.<provider>.j2  >  name.j2

Candidates are exact file names (ids with dots such as ``gpt-4.1`` work); the
characters ``/`` and ``:``, which model ids may contain but portable file
names cannot, are written ``_`` in the file name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentmesh.models import ModelSpec
from agentmesh.prompts.errors import PromptError
from agentmesh.prompts.frontmatter import FrontMatter, VariantFrontMatter, parse_front_matter
from agentmesh.prompts.inputs import InputSpec
from agentmesh.prompts.rendered import Match
from agentmesh.prompts.source import PromptFile, closure, content_hash, split_template_file

__all__ = [
    "PromptTemplate",
    "PromptVariant",
    "Resolution",
    "build_templates",
    "resolve",
    "variant_key",
]


@dataclass(frozen=True, slots=True)
class PromptVariant:
    """One file of a template, with its effective front matter and version.

    Attributes:
        template: Template name (``plan``).
        file: File name in the folder (``plan.gemma.j2``).
        path: The file's display path (``prompts/plan.gemma.j2``).
        key: What the variant matches (``gemma``); ``None`` for the generic file.
        front_matter: The generic front matter with this file's changes.
        hash: Version (see :class:`~agentmesh.prompts.RenderedPrompt`).
        files: Every file the version covers: this one and all it extends,
            includes or imports, transitively.
    """

    template: str
    file: str
    path: str
    key: str | None
    front_matter: FrontMatter
    hash: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A template name with its generic file and its variants.

    Attributes:
        name: Template name.
        generic: The ``<name>.j2`` file, which owns the contract.
        variants: The other files by key (model id, family or provider).
        output_schema: The loaded JSON Schema of ``output_schema``, if declared.
        lines: Line of each front-matter field of the generic file
            (inputs keyed ``inputs.<name>``), for errors.
    """

    name: str
    generic: PromptVariant
    variants: Mapping[str, PromptVariant]
    output_schema: Mapping[str, Any] | None
    lines: Mapping[str, int]

    @property
    def description(self) -> str:
        """What the template is for."""
        return self.generic.front_matter.description

    @property
    def inputs(self) -> Mapping[str, InputSpec]:
        """The declared inputs, shared by every variant."""
        return self.generic.front_matter.inputs

    @property
    def example(self) -> Mapping[str, Any]:
        """Sample input values from the front matter."""
        return self.generic.front_matter.example

    @property
    def all_variants(self) -> tuple[PromptVariant, ...]:
        """The generic file, then the variants by key."""
        return (self.generic, *self.variants.values())

    def input_lines(self) -> dict[str, int]:
        """Line of each input's declaration in the generic file."""
        return {name: self.lines[f"inputs.{name}"] for name in self.inputs}


@dataclass(frozen=True, slots=True)
class Resolution:
    """Which variant serves a model, and why.

    Attributes:
        variant: The chosen file.
        matched: The level that matched (``model-id``, ``family``, ``provider``, ``generic``).
        reason: One line for humans: ``matched family 'gemma'``.
    """

    variant: PromptVariant
    matched: Match
    reason: str


def variant_key(model_id: str) -> str:
    """The part of a variant's file name that matches ``model_id``."""
    return model_id.replace("/", "_").replace(":", "_")


def resolve(template: PromptTemplate, model: ModelSpec) -> Resolution:
    """The variant of ``template`` for ``model``: model id > family > provider > generic."""
    candidates: tuple[tuple[Match, str], ...] = (
        ("model-id", variant_key(model.id)),
        ("family", model.family),
        ("provider", model.provider.value),
    )
    for matched, key in candidates:
        if key in template.variants:
            return Resolution(template.variants[key], matched, f"matched {matched} {key!r}")
    return Resolution(
        template.generic,
        "generic",
        f"generic: no variant for model id {model.id!r}, family {model.family!r} "
        f"or provider {model.provider.value!r}",
    )


def _load_schema(folder: Path, ref: str, *, template: str, file: str, line: int | None) -> Any:
    def fail(detail: str) -> PromptError:
        return PromptError(
            f"output_schema {ref!r}: {detail}",
            template=template,
            variable="output_schema",
            file=file,
            line=line,
        )

    path = folder / ref
    if Path(ref).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise fail("must be a path inside the prompts folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise fail(f"file not found ({path})") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise fail(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise fail("a JSON Schema is a JSON object")
    return data


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _build_one(
    name: str,
    group: Mapping[str | None, PromptFile],
    folder: Path,
    files: Mapping[str, PromptFile],
    direct: Mapping[str, tuple[str, ...]],
) -> PromptTemplate:
    base = group.get(None)
    if base is None:
        first = next(iter(group.values()))
        raise PromptError(
            f"a variant needs the generic template {name}.j2", template=name, file=first.path
        )
    if base.header is None:
        raise PromptError(
            "missing front matter: a generic template starts with a '---' block "
            "giving at least 'description'",
            template=name,
            file=base.path,
            line=1,
        )
    front, lines = parse_front_matter(base.header, FrontMatter, file=base.path, template=name)
    schema = None
    if front.output_schema is not None:
        schema = _load_schema(
            folder,
            front.output_schema,
            template=name,
            file=base.path,
            line=lines.get("output_schema"),
        )

    def variant(file: PromptFile, key: str | None, effective: FrontMatter) -> PromptVariant:
        covered = closure(file.name, direct)
        version = content_hash(
            [files[n] for n in covered],
            _canonical(effective.model_dump(mode="json")),
            _canonical(schema),
        )
        return PromptVariant(name, file.name, file.path, key, effective, version, covered)

    variants: dict[str, PromptVariant] = {}
    for key in sorted(k for k in group if k is not None):
        file = group[key]
        effective = front
        if file.header is not None:
            own, _ = parse_front_matter(
                file.header, VariantFrontMatter, file=file.path, template=name
            )
            effective = own.apply_to(front)
        variants[key] = variant(file, key, effective)
    return PromptTemplate(name, variant(base, None, front), variants, schema, lines)


def build_templates(
    folder: Path, files: Mapping[str, PromptFile], direct: Mapping[str, tuple[str, ...]]
) -> dict[str, PromptTemplate]:
    """Group the template files by name and load their front matter and versions.

    Args:
        folder: The prompts folder (for ``output_schema`` files).
        files: Every file of the folder, by name.
        direct: The files each file extends/includes/imports directly.

    Raises:
        PromptError: A variant without a generic file, a generic file without
            front matter, invalid front matter, or a bad ``output_schema``.
    """
    groups: dict[str, dict[str | None, PromptFile]] = {}
    for file in files.values():
        parts = split_template_file(file.name) if file.is_template else None
        if parts is not None:
            groups.setdefault(parts[0], {})[parts[1]] = file
    return {
        name: _build_one(name, group, folder, files, direct)
        for name, group in sorted(groups.items())
    }
