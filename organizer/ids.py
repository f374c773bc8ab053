"""What counts as a row id when one arrives from outside (a CLI argument, a browser).

``int()`` is too forgiving for this: it turns ``2.5`` into 2, ``True`` into 1 and ``"3"``
into 3, so a malformed request would act on a face nobody picked; and SQLite cannot even
look up a number past 64 bits (an ``OverflowError`` instead of "not found"). Every entry
point that takes ids from a user goes through :func:`as_id`.
"""
from __future__ import annotations

from numbers import Integral
from typing import TypeGuard

from .errors import InvalidRequest

#: SQLite's largest integer; a bigger "id" cannot name a row
MAX_ID = 2**63 - 1


def is_id(value: object) -> TypeGuard[int]:
    """A Python int (not a bool, float or string) in SQLite's range, 1 or more: a value
    that can be used as a lookup key as it is."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def as_id(value: object, what: str = "valid id") -> int:
    """``value`` as a row id, or :class:`InvalidRequest` saying it is not one. NumPy
    integers are taken (ids read from an array of face ids are ids) and come back as int."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = int(value)
    if not is_id(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InvalidRequest(f"{shown} is not a {what}")
    return value
