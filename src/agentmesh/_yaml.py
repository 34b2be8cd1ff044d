"""YAML of user files, parsed once into data and its node tree (for line numbers).

libyaml's parser (``CSafeLoader``) when PyYAML was built with it: about ten
times faster than the pure-Python one, which matters because every prompt
template's front matter, every catalog and every graph is parsed at start-up
(a ``PromptLibrary`` of the shipped templates parses 36 front matters). Same
safe constructors. libyaml places some error marks elsewhere (an unclosed
bracket at the end of the text rather than its line), so text that fails is
parsed again by the pure-Python parser, whose error is the one raised.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["LOADER", "parse"]

LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The safe loader used for user files."""


def parse(text: str) -> tuple[Any, yaml.Node | None]:
    """The data of one YAML document and its node tree (``(None, None)`` when empty).

    Raises:
        yaml.YAMLError: The text is not YAML (``problem_mark`` says where).
    """
    try:
        return _parse(text, LOADER)
    except yaml.YAMLError:
        if LOADER is yaml.SafeLoader:
            raise
        return _parse(text, yaml.SafeLoader)  # raises its own, better placed, error


def _parse(text: str, loader_class: type[yaml.SafeLoader]) -> tuple[Any, yaml.Node | None]:
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return data, root
