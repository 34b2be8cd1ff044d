"""``json.loads`` for text from outside (model answers, provider bodies, inputs, files).

Python's JSON parser recurses once per nesting level: ``"[" * 100000`` raises
``RecursionError``, which no ``except ValueError`` catches. Here it is a
``ValueError`` like any other invalid JSON, so every caller's existing error
path (``MalformedResponse``, a failed validator, a located file error) applies.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(text: str | bytes) -> Any:
    """The JSON value in ``text``.

    Raises:
        ValueError: Invalid JSON, or nested too deeply to parse.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None
