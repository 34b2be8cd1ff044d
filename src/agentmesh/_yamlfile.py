"""Read YAML files within :class:`~agentmesh.limits.FileLimits`, with located errors.

PyYAML's safe loader refuses Python objects but leaves three things to the
caller: bytes that are not UTF-8 (``UnicodeDecodeError``), deep nesting
(``RecursionError``) and aliases that expand exponentially ("billion laughs":
the loaded objects share memory until something walks them, then grow past
any bound). Every loader of the package reads through :func:`read_text` and
:func:`parse_yaml`, which turn each into a :class:`YamlFileError` naming the
file and line, and never build more than the limits allow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.error import Mark

from agentmesh.limits import FileLimits

__all__ = ["YamlFileError", "parse_yaml", "read_text"]


class YamlFileError(ValueError):
    """A file that cannot be read within the limits; the message names file and line.

    Attributes:
        path: The file.
        line: 1-based line of the problem, if there is one.
        detail: What is wrong, without the location.
    """

    def __init__(self, path: Path, detail: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.detail = detail
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {detail}")


def read_text(path: Path, what: str, limits: FileLimits | None = None) -> str:
    """The UTF-8 text of ``path``, refused if it is larger than ``limits.max_bytes``.

    Args:
        path: The file.
        what: What the file is, for the message (``graph``, ``catalog``).
        limits: The limits (default: :meth:`FileLimits.from_env`).

    Raises:
        YamlFileError: Unreadable, too large or not UTF-8; names the file and,
            for bad bytes, the line and column.
    """
    limits = limits or FileLimits.from_env()
    try:
        with path.open("rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise YamlFileError(path, f"cannot read {what}: {exc.strerror or exc}") from None
    if len(raw) > limits.max_bytes:
        raise YamlFileError(
            path,
            f"{what} file is larger than {limits.max_bytes} bytes "
            "(raise the limit with AGENTMESH_MAX_FILE_BYTES)",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlFileError(
            path,
            f"{what} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column}",
            line,
        ) from None


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than ``max_depth``."""

    def __init__(self, text: str, max_depth: int) -> None:
        super().__init__(text)
        self._max_depth = max_depth
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                # types-PyYAML leaves peek_event unannotated; it returns the next Event.
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _too_deep(self._max_depth, getattr(event, "start_mark", None))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _too_deep(max_depth: int, mark: Mark | None) -> ComposerError:
    return ComposerError(
        None,
        None,
        f"nested deeper than {max_depth} levels (raise the limit with AGENTMESH_MAX_YAML_DEPTH)",
        mark,
    )


def _expanded_size(root: yaml.Node, max_nodes: int, max_depth: int | None = None) -> None:
    """Raise if ``root`` has more than ``max_nodes`` values with aliases expanded, or a cycle.

    With ``max_depth`` (a tree composed without a depth bound, by libyaml) the
    same walk also refuses nesting deeper than that, before it recurses further.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        if max_depth is not None and depth > max_depth:
            raise _too_deep(max_depth, node.start_mark)
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ComposerError(
                None, None, "an alias refers to a value that contains it", node.start_mark
            )
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for name, value in node.value:
                total += size(name, depth + 1) + size(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
        open_nodes.discard(key)
        if total > max_nodes:
            raise ComposerError(
                None,
                None,
                f"aliases expand to more than {max_nodes} values "
                "(raise the limit with AGENTMESH_MAX_YAML_NODES)",
                node.start_mark,
            )
        sizes[key] = total
        return total

    size(root, 1)


_FAST: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
"""libyaml's safe loader when PyYAML was built with it (about ten times faster)."""


def _flow_depth(text: str) -> int:
    """An upper bound of the flow (``[`` / ``{``) nesting of ``text``; quotes are not parsed.

    Brackets inside strings count too, so the bound may be high, never low.
    """
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        depth += 1 if match[0] in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


_BRACKETS = re.compile(r"[\[\]{}]")


def _fast_parse(text: str, limits: FileLimits) -> tuple[Any, yaml.Node | None] | None:
    """Libyaml's parse within the limits, or ``None`` to use the pure-Python loader.

    libyaml composes in C, recursively: only text whose flow nesting is within
    the depth limit is given to it (block nesting needs a line per level and is
    bounded by the file size). Text it refuses goes to the pure-Python loader,
    whose error marks are placed better.
    """
    if _FAST is None or _flow_depth(text) > limits.max_depth:
        return None
    loader = _FAST(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError:
            return None
        if root is None:
            return None, None
        _expanded_size(root, limits.max_nodes, limits.max_depth)
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def parse_yaml(text: str, limits: FileLimits | None = None) -> tuple[Any, yaml.Node | None]:
    """The document in ``text`` and its node tree (for line numbers), within the limits.

    Parsed by libyaml when PyYAML has it and the text is within the limits,
    else by the pure-Python safe loader that refuses nesting as it goes.

    Raises:
        yaml.YAMLError: Invalid YAML, nesting deeper than ``max_depth`` or
            aliases expanding past ``max_nodes`` (``problem`` says which,
            ``problem_mark`` where).
    """
    limits = limits or FileLimits.from_env()
    fast = _fast_parse(text, limits)
    if fast is not None:
        return fast
    loader = _BoundedLoader(text, limits.max_depth)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _expanded_size(root, limits.max_nodes)
        return loader.construct_document(root), root
    finally:
        loader.dispose()


def describe_yaml_error(exc: yaml.YAMLError, path: Path | str, *, line_offset: int = 0) -> str:
    """``path:line: not valid YAML: problem`` for a PyYAML error."""
    mark = getattr(exc, "problem_mark", None)
    where = f":{mark.line + 1 + line_offset}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{path}{where}: not valid YAML: {problem}"
