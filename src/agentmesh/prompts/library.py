"""`PromptLibrary`: one folder of sandboxed Jinja2 templates, rendered per model.

.. code-block:: python

    library = PromptLibrary()          # the shipped templates; or PromptLibrary("my/prompts")
    rendered = library.render("plan", spec, {"question": "Why is the sky blue?"})
    rendered.variant, rendered.hash     # 'plan.gemma.j2', '3f0c9a1e5b2d7c44'
    request = rendered.to_request(max_tokens=256)

Templates run in Jinja's immutable sandbox (no Python internals, no mutation
of inputs) with ``StrictUndefined`` (an undefined variable is an error, never
empty text) and autoescaping off (prompts are text, not HTML). Inputs are
passed as data: they are never parsed as templates.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from jinja2 import StrictUndefined, TemplateSyntaxError
from langchain_core.messages import BaseMessage, HumanMessage

from agentmesh.limits import RenderLimits
from agentmesh.models import ModelSpec
from agentmesh.prompts.bounded import BoundedSandbox, render_bounded
from agentmesh.prompts.errors import PromptError, from_render_error, from_syntax_error
from agentmesh.prompts.frontmatter import Format
from agentmesh.prompts.inputs import check_inputs
from agentmesh.prompts.messages import NONCE_KEY, MessageExtension, new_nonce, split_messages
from agentmesh.prompts.rendered import ModelInfo, RenderedPrompt, model_info
from agentmesh.prompts.shipped import shipped_prompts
from agentmesh.prompts.source import (
    SnapshotLoader,
    read_folder,
    references,
    split_template_file,
)
from agentmesh.prompts.templates import PromptTemplate, Resolution, build_templates, resolve

__all__ = ["PromptLibrary"]

_Shape = tuple[tuple[BaseMessage, ...], str | None]


def _chat(text: str, nonce: str, template: str, file: str) -> _Shape:
    messages = split_messages(text, nonce, template=template, file=file)
    if messages is None:
        messages = (HumanMessage(content=text.strip()),) if text.strip() else ()
    if not messages:
        raise PromptError(
            "rendered no messages (every message is empty)", template=template, file=file
        )
    return messages, None


def _completion(text: str, nonce: str, template: str, file: str) -> _Shape:
    if nonce in text:
        raise PromptError(
            "a completion template renders one prompt: message blocks are for format: chat",
            template=template,
            file=file,
        )
    prompt = text.strip()
    if not prompt:
        raise PromptError("rendered an empty prompt", template=template, file=file)
    return (HumanMessage(content=prompt),), prompt


_SHAPES: Mapping[Format, Callable[[str, str, str, str], _Shape]] = MappingProxyType(
    {"chat": _chat, "completion": _completion}
)


def _template_name(file_name: str) -> str | None:
    """The template a file belongs to (``plan`` for ``plan.gemma.j2``); ``None`` for partials."""
    parts = split_template_file(file_name)
    return parts[0] if parts and "/" not in file_name and not file_name.startswith("_") else None


class PromptLibrary:
    """The templates of one folder, loaded, checked and versioned once.

    Loading reads every file, validates every front matter, compiles every
    template and computes every version, so a broken file fails here, naming
    the file, the line and the field. The library is an immutable snapshot:
    build a new one to pick up edits.

    Whitespace: ``trim_blocks`` and ``lstrip_blocks`` are on (a tag alone on
    its line leaves no blank line), and each message or completion prompt is
    stripped of surrounding whitespace.
    """

    def __init__(
        self, folder: str | Path | None = None, *, limits: RenderLimits | None = None
    ) -> None:
        """Load the folder (``None``: the shipped templates, :func:`shipped_prompts`).

        Args:
            folder: The prompts folder.
            limits: What one render may cost (default:
                :meth:`RenderLimits.from_env`, so ``AGENTMESH_MAX_RENDER_*``
                variables raise them).

        Raises:
            PromptError: The folder is missing, or a file is invalid.
        """
        self._folder = shipped_prompts() if folder is None else Path(folder)
        self._limits = limits or RenderLimits.from_env()
        files = read_folder(self._folder)
        self._paths = MappingProxyType({f.path: f.name for f in files.values()})
        self._env = BoundedSandbox(
            loader=SnapshotLoader(MappingProxyType(files)),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,
            extensions=[MessageExtension],
        )
        try:
            direct = {
                name: references(self._env, f, files, template=_template_name(name))
                for name, f in files.items()
            }
            for name in files:
                self._env.get_template(name)
        except TemplateSyntaxError as exc:
            if exc.filename is None and exc.name is not None and exc.name in self._paths:
                # Jinja's lexer failures ("Missing end of comment tag") pass the
                # filename where the name goes: put each back in its place.
                exc.filename, exc.name = exc.name, self._paths[exc.name]
            raise from_syntax_error(exc, _template_name(exc.name or "")) from None
        self._templates = MappingProxyType(build_templates(self._folder, files, direct))
        # Memos of pure functions of a template and a model (a node renders for the
        # same few models every call): which variant serves it, what templates see.
        self._resolved: dict[tuple[str, str, str, str], Resolution] = {}
        self._infos: dict[str, tuple[ModelSpec, ModelInfo]] = {}

    def __repr__(self) -> str:
        return f"PromptLibrary({str(self._folder)!r}, templates={list(self._templates)!r})"

    @property
    def folder(self) -> Path:
        """The prompts folder, as given (the shipped one when none was)."""
        return self._folder

    @property
    def names(self) -> tuple[str, ...]:
        """Template names, sorted."""
        return tuple(self._templates)

    @property
    def templates(self) -> tuple[PromptTemplate, ...]:
        """Every template, sorted by name."""
        return tuple(self._templates.values())

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def template(self, name: str) -> PromptTemplate:
        """The template called ``name``.

        Raises:
            PromptError: No such template; the message lists the known ones.
        """
        try:
            return self._templates[name]
        except KeyError:
            known = ", ".join(self._templates) or "none"
            raise PromptError(
                f"unknown template {name!r} in {str(self._folder)!r}; known templates: {known}"
            ) from None

    def resolve(self, name: str, model: ModelSpec) -> Resolution:
        """Which variant of ``name`` serves ``model``, and why.

        Raises:
            PromptError: Unknown template.
        """
        key = (name, model.id, model.family, model.provider.value)
        found = self._resolved.get(key)
        if found is None:
            found = self._resolved[key] = resolve(self.template(name), model)
        return found

    def _model_info(self, model: ModelSpec) -> ModelInfo:
        """``model_info(model)``, made once per catalog entry (kept with the entry it is of)."""
        found = self._infos.get(model.id)
        if found is None or found[0] is not model:
            found = self._infos[model.id] = (model, model_info(model))
        return found[1]

    def render(
        self, name: str, model: ModelSpec, inputs: Mapping[str, object] | None = None
    ) -> RenderedPrompt:
        """Render template ``name`` for ``model`` (the one routing chose).

        Args:
            name: Template name (``plan``).
            model: The chosen model; its variant is used, and templates see it
                as ``model`` (a :class:`~agentmesh.prompts.ModelInfo`).
            inputs: Values of the declared inputs; strings are converted to the
                declared types.

        Raises:
            PromptError: Unknown template, bad inputs, or a render failure
                (undefined variable, sandbox violation, a render limit
                exceeded...), naming the template, the variable or limit
                and the file and line.
        """
        template = self.template(name)
        chosen = self.resolve(name, model)
        variant = chosen.variant
        values = check_inputs(
            template.inputs,
            inputs or {},
            template=name,
            file=template.generic.path,
            lines=template.input_lines(),
        )
        nonce = new_nonce()
        context = {**values, "model": self._model_info(model), NONCE_KEY: nonce}
        try:
            text = render_bounded(self._env.get_template(variant.file), context, self._limits)
        except Exception as exc:  # a template's failure, whatever raised it: report where
            error = from_render_error(exc, name, self._paths)
            if error.file is None and error.limit is not None:  # the output as a whole
                error = PromptError(
                    error.detail, template=name, file=variant.path, limit=error.limit
                )
            raise error from exc
        front = variant.front_matter
        messages, completion = _SHAPES[front.format](text, nonce, name, variant.path)
        schema = template.output_schema
        return RenderedPrompt(
            template=name,
            variant=variant.file,
            matched=chosen.matched,
            hash=variant.hash,
            format=front.format,
            messages=messages,
            completion=completion,
            model_id=model.id,
            output_schema=copy.deepcopy(dict(schema)) if schema is not None else None,
            stop=front.stop,
        )
