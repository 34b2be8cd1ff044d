"""Fast ``__init__`` for frozen slotted dataclasses built on every routing decision.

A frozen dataclass's generated ``__init__`` sets each field through
``object.__setattr__`` (its own ``__setattr__`` raises). A class written with
``@dataclass(frozen=True, slots=True, init=False)`` and its own ``__init__`` can
call each slot's descriptor instead: one C call a field, the same result; the
class stays frozen (assignment still raises ``FrozenInstanceError``) and a
dataclass (``replace``, ``fields``, equality, ``repr``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

__all__ = ["slot_setters"]


def slot_setters(cls: type[Any]) -> tuple[Callable[[Any, Any], None], ...]:
    """The ``__set__`` of each field's slot of dataclass ``cls``, in field order."""
    return tuple(cls.__dict__[f.name].__set__ for f in fields(cls))
