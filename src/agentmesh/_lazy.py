"""PEP 562 lazy exports for package ``__init__`` modules.

A package lists which submodule defines each public name; the submodule is
imported the first time the name is looked up, so importing the package (or
one light submodule of it, which runs the package's ``__init__`` first) does
not import LangChain, LangGraph or OpenTelemetry through its siblings. Type
checkers see ordinary imports under ``TYPE_CHECKING`` instead.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> the module that defines it, or ``module:attribute``
            when the public name is another module attribute's alias.

    Returns:
        ``(__getattr__, __dir__)``: the first imports a name's module on first
        use and keeps the value in the package's namespace (later lookups do
        not reach it); the second lists the public names.
    """

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
