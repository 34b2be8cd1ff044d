"""The templates agentmesh ships, found in a wheel and in a checkout alike.

The repository's ``prompts/`` folder is the one source of the shipped
templates. A wheel carries it as package data at ``agentmesh/prompts/_shipped``
(hatch ``force-include`` in ``pyproject.toml``, so git holds no second copy);
a checkout (an editable install, or ``src`` on ``PYTHONPATH``) has no such
folder and uses the checkout's ``prompts/`` itself.
"""

from __future__ import annotations

from pathlib import Path

from agentmesh.prompts.errors import PromptError

__all__ = ["PACKAGED_FOLDER", "shipped_prompts"]

_HERE = Path(__file__).resolve().parent

PACKAGED_FOLDER = "agentmesh/prompts/_shipped"
"""Where a wheel holds the templates, relative to ``site-packages``."""


def _candidates() -> tuple[Path, ...]:
    packaged = _HERE / "_shipped"
    src = _HERE.parents[1]  # .../src when this file is src/agentmesh/prompts/shipped.py
    checkout = (src.parent / "prompts",) if src.name == "src" else ()
    return (packaged, *checkout)


def shipped_prompts() -> Path:
    """The folder of the shipped templates (``plan``, ``judge``, ``solve_math``...).

    Raises:
        PromptError: Neither the packaged folder nor a checkout's ``prompts/``
            exists (an install that lost its package data).
    """
    candidates = _candidates()
    for folder in candidates:
        if folder.is_dir():
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise PromptError(f"the shipped prompts are missing (looked in {tried}); reinstall agentmesh")
