"""Int handles for the objects behind the integrations' custom ops (``vtpu::experts``,
``vtpu::linear``): an op's schema takes an int, not a Python object, so dynamo and inductor see a
constant. Held weakly: an op called after its module is gone raises instead of keeping it alive."""

from __future__ import annotations

import itertools
import weakref
from typing import Any

__all__ = ["register", "lookup"]

_OBJECTS: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
_ids = itertools.count(1)


def register(obj: Any) -> int:
    """A new handle under which :func:`lookup` finds ``obj``."""
    h = next(_ids)
    _OBJECTS[h] = obj
    return h


def lookup(handle: int, what: str) -> Any:
    """The object of ``handle``; ``RuntimeError`` naming ``what`` when it no longer exists."""
    obj = _OBJECTS.get(int(handle))
    if obj is None:
        raise RuntimeError(f"{what} {handle} no longer exists (its module was unbound, unhooked or collected)")
    return obj
