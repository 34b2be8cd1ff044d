"""The prompts folder as an immutable snapshot: files, loader, references, versions.

A :class:`~agentmesh.prompts.PromptLibrary` reads every ``*.j2`` file of its
folder once, so what it renders always matches the hash it reports; build a
new library to pick up edits. Jinja loads templates only from that snapshot
(:class:`SnapshotLoader`): absolute paths, ``..`` and anything outside the
folder are simply not there.

Top-level files not starting with ``_`` are templates: ``<name>.j2`` (the
generic variant) and ``<name>.<variant>.j2``. Every other ``*.j2`` file (in
``_partials/`` or any subfolder, or starting with ``_``) is a partial, reachable
only through ``extends``, ``include`` and ``import``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from jinja2 import BaseLoader, Environment, TemplateNotFound, nodes

from agentmesh._yamlfile import YamlFileError, read_text
from agentmesh.prompts.errors import PromptError
from agentmesh.prompts.frontmatter import split_front_matter

__all__ = [
    "HASH_LENGTH",
    "PromptFile",
    "SnapshotLoader",
    "closure",
    "content_hash",
    "read_folder",
    "references",
    "split_template_file",
]

HASH_LENGTH = 16
"""Hex digits of the SHA-256 kept as a prompt's version."""

_TEMPLATE_FILE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)(?:\.(?P<variant>.+))?\.j2$")


@dataclass(frozen=True, slots=True)
class PromptFile:
    """One ``*.j2`` file of the folder.

    Attributes:
        name: Path relative to the folder, with ``/`` (``plan.gemma.j2``,
            ``_partials/json.j2``); what ``include`` and ``extends`` use.
        path: The folder joined with ``name``, as given (``prompts/plan.j2``);
            the filename errors and Jinja tracebacks show.
        text: The file's text, line ends normalised to LF.
        header: Front-matter YAML of a template file, if any.
        body: What Jinja compiles: ``text`` with the front matter blanked out.
    """

    name: str
    path: str
    text: str
    header: str | None
    body: str

    @property
    def is_template(self) -> bool:
        """Whether the file is a template (or variant) rather than a partial."""
        return "/" not in self.name and not self.name.startswith("_")


def split_template_file(file_name: str) -> tuple[str, str | None] | None:
    """``plan.gemma.j2`` -> ``("plan", "gemma")``; ``plan.j2`` -> ``("plan", None)``.

    Everything between the first dot and ``.j2`` is the variant, so model ids
    with dots (``plan.gpt-4.1.j2``) work. ``None`` for names that are not valid.
    """
    match = _TEMPLATE_FILE.match(file_name)
    return (match["name"], match["variant"]) if match else None


def _normalise(text: str) -> str:
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def read_folder(folder: Path) -> dict[str, PromptFile]:
    """Read every ``*.j2`` file under ``folder`` (hidden files and folders skipped).

    Raises:
        PromptError: The folder is missing, a file cannot be read, lies outside
            the folder (a symlink), has an invalid template name or an
            unterminated front matter.
    """
    if not folder.is_dir():
        raise PromptError(f"prompts folder {str(folder)!r} does not exist or is not a folder")
    root = folder.resolve()
    files: dict[str, PromptFile] = {}
    for path in sorted(folder.rglob("*.j2")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        name, shown = relative.as_posix(), str(path)
        if not path.resolve().is_relative_to(root):
            raise PromptError("the file links outside the prompts folder", file=shown)
        try:
            text = _normalise(read_text(path, "template"))
        except YamlFileError as exc:
            raise PromptError(exc.detail, file=shown, line=exc.line) from None
        file = PromptFile(name=name, path=shown, text=text, header=None, body=text)
        if file.is_template:
            if split_template_file(name) is None:
                raise PromptError(
                    "not a valid template file name: use <name>.j2 or <name>.<variant>.j2 "
                    "with a name of letters, digits, '_' and '-'",
                    file=shown,
                )
            header, body = split_front_matter(text, shown)
            file = PromptFile(name=name, path=shown, text=text, header=header, body=body)
        files[name] = file
    return files


def _always_fresh() -> bool:
    return True


class SnapshotLoader(BaseLoader):
    """A Jinja loader over the files read once from the folder (nothing else exists)."""

    def __init__(self, files: Mapping[str, PromptFile]) -> None:
        self._files = files

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        """The compiled body of a file of the snapshot, under its display path."""
        file = self._files.get(template)
        if file is None:
            raise TemplateNotFound(template)
        return file.body, file.path, _always_fresh

    def list_templates(self) -> list[str]:
        """Every file of the snapshot."""
        return sorted(self._files)


def _referenced(ast: nodes.Template) -> Iterator[tuple[str | None, int]]:
    """Names of the files a template extends/includes/imports, with their lines.

    Follows the rules of ``jinja2.meta.find_referenced_templates`` (a constant
    name, or a list or tuple of constant names) but keeps line numbers;
    ``None`` stands for a name computed at render time.
    """
    kinds = (nodes.Extends, nodes.FromImport, nodes.Import, nodes.Include)
    for node in ast.find_all(kinds):
        target = getattr(node, "template", None)
        if isinstance(target, nodes.Const) and isinstance(target.value, str):
            yield target.value, node.lineno
        elif isinstance(target, nodes.Tuple | nodes.List) and all(
            isinstance(item, nodes.Const) and isinstance(item.value, str) for item in target.items
        ):
            for item in target.items:
                yield str(item.as_const()), node.lineno
        else:
            yield None, node.lineno


def references(
    environment: Environment,
    file: PromptFile,
    known: Iterable[str],
    *,
    template: str | None = None,
) -> tuple[str, ...]:
    """The files ``file`` extends, includes or imports directly, sorted.

    Raises:
        jinja2.TemplateSyntaxError: The file does not parse.
        PromptError: A name computed at render time (the version hash must
            cover every file a prompt uses) or a file that is not in the folder.
    """
    ast = environment.parse(file.body, name=file.name, filename=file.path)
    available = set(known)
    found: set[str] = set()
    for name, line in _referenced(ast):
        if name is None:
            raise PromptError(
                "extends/include/import needs a literal file name: the prompt's version "
                "must cover every file it uses",
                template=template,
                file=file.path,
                line=line,
            )
        if name not in available:
            raise PromptError(
                f"{name!r} is not a file of the prompts folder "
                "(names are relative to the folder; nothing outside it can be loaded)",
                template=template,
                file=file.path,
                line=line,
            )
        found.add(name)
    return tuple(sorted(found))


def closure(start: str, direct: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """``start`` and every file it reaches through ``direct`` references, sorted."""
    seen = {start}
    pending = [start]
    while pending:
        for name in direct[pending.pop()]:
            if name not in seen:
                seen.add(name)
                pending.append(name)
    return tuple(sorted(seen))


def content_hash(files: Iterable[PromptFile], *extra: str) -> str:
    """Version of a prompt: SHA-256 over the files (by name) and ``extra`` texts.

    Stable across processes and machines: names are folder-relative, newlines
    are normalised, and nothing depends on inputs or paths on disk.
    """
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.name):
        for part in (file.name, file.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
    for part in extra:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:HASH_LENGTH]
