"""Coordinates: parsing, formatting, batches and range patterns.

A coordinate is nine unsigned 32-bit components written ``a.b.c/d.e.f/g.h.i``. In
memory it is a ``(9,)`` ``uint32`` array and a batch is a C-contiguous ``(N, 9)``
``uint32`` array (the layout of the Arrow ``coords`` column, so it crosses the wire
without a copy). Phext files use the subset 1..999 per component (``phext=True``).

A pattern names a set of coordinates: each component is ``n``, ``*`` or ``[a:b]``
(half-open, like a Python slice; ``[a:]`` and ``[:b]`` leave an end open). The grammar is
the sidecar's; ``test/conformance/patterns.json`` holds the cases both sides test against.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import CoordinateError, PatternError

__all__ = ["DIMS", "parse_coord", "format_coord", "coords_array", "pattern_string", "pattern_bounds"]

#: Components in a coordinate.
DIMS = 9
_MAX = 2**32 - 1
_COORD_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)/(\d+)\.(\d+)\.(\d+)/(\d+)\.(\d+)\.(\d+)$")
_SPACE_END = _MAX + 1  # what an open end means: one past the largest component
# n, *, or [a:b] with either end optional; ASCII digits only (\d would take any script's)
_COMPONENT_RE = re.compile(r"([0-9]+)|\*|\[([0-9]*):([0-9]*)\]")


def parse_coord(s: str, phext: bool = False) -> np.ndarray:
    """Parse ``"a.b.c/d.e.f/g.h.i"`` into a ``(9,)`` uint32 array.

    Parameters
    ----------
    s : str
        The coordinate text.
    phext : bool, optional
        Restrict components to phext's 1..999 (default: the engine range 0..2**32-1).

    Returns
    -------
    numpy.ndarray
        Shape ``(9,)``, dtype ``uint32``.

    Raises
    ------
    CoordinateError
        When ``s`` is not nine dot/slash separated integers in range.
    """
    if not isinstance(s, str):
        raise CoordinateError("E_COORD", f"a coordinate string is required, got {type(s).__name__}")
    m = _COORD_RE.match(s.strip())
    if m is None:
        raise CoordinateError("E_COORD", f"malformed coordinate {s!r}; expected a.b.c/d.e.f/g.h.i")
    parts = [int(g) for g in m.groups()]
    lo, hi = (1, 999) if phext else (0, _MAX)
    for p in parts:
        if not lo <= p <= hi:
            raise CoordinateError("E_COORD", f"component {p} of {s!r} is outside {lo}..{hi}")
    return np.array(parts, dtype=np.uint32)


_FORMATTED: dict[str, str] = {}  # coordinate text -> its canonical form (bounded cache)
_FMT = "{}.{}.{}/{}.{}.{}/{}.{}.{}"


def format_coord(c: Any) -> str:
    """Format one coordinate (9 integers, or a string, validated) as ``a.b.c/d.e.f/g.h.i``."""
    if type(c) is str:  # the common single-coordinate call: no numpy on this path
        done = _FORMATTED.get(c)
        if done is not None:
            return done
        m = _COORD_RE.match(c.strip())
        if m is not None:
            parts = [int(g) for g in m.groups()]
            if max(parts) <= _MAX:
                done = _FMT.format(*parts)
                if len(_FORMATTED) >= 4096:
                    _FORMATTED.clear()
                _FORMATTED[c] = done
                return done
        # malformed or out of range: the general path raises the precise error
    a = coords_array(c)
    if a.shape[0] != 1:
        raise CoordinateError("E_COORD", f"one coordinate expected, got {a.shape[0]}")
    return _FMT.format(*a[0].tolist())


def coords_array(x: Any) -> np.ndarray:
    """Convert coordinates to a C-contiguous ``(N, 9)`` uint32 array.

    Parameters
    ----------
    x : array_like or str or sequence of str
        An ``(N, 9)`` or ``(9,)`` integer array (range-checked to 0..2**32-1), a
        coordinate string, or a sequence of coordinate strings.

    Returns
    -------
    numpy.ndarray
        ``(N, 9)`` uint32, C-contiguous. A uint32 C-contiguous input is returned as is.

    Raises
    ------
    CoordinateError
        On malformed strings, non-integer arrays, wrong shapes or out-of-range values.
    """
    if isinstance(x, str):
        return parse_coord(x)[None, :]
    if isinstance(x, np.ndarray) and x.dtype == np.uint32:
        a = x
    elif isinstance(x, np.ndarray) and x.dtype.kind in "OSU":
        return _from_strings(x.ravel().tolist())
    elif isinstance(x, np.ndarray):
        a = x
    elif hasattr(x, "numpy") and hasattr(x, "dtype"):  # a torch tensor
        a = x.detach().cpu().numpy()
    else:
        seq = list(x) if isinstance(x, Iterable) else None
        if seq is None:
            raise CoordinateError("E_COORD", f"cannot read coordinates from {type(x).__name__}")
        if seq and all(isinstance(s, str) for s in seq):
            return _from_strings(seq)
        if not seq:
            return np.empty((0, DIMS), dtype=np.uint32)
        try:
            a = np.asarray(seq)
        except (ValueError, TypeError) as e:
            raise CoordinateError("E_COORD", f"cannot read coordinates: {e}") from None
    if a.dtype != np.uint32:
        if a.dtype.kind not in "iu":
            if a.size == 0:
                a = a.astype(np.int64)
            else:
                raise CoordinateError("E_COORD", f"coordinates must be integers, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() > _MAX):
            raise CoordinateError("E_COORD", f"coordinate components must lie in 0..{_MAX}")
        a = a.astype(np.uint32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != DIMS:
        raise CoordinateError("E_COORD", f"coordinates must have shape (N, 9) or (9,), got {a.shape}")
    return np.ascontiguousarray(a)


def _from_strings(items: Sequence[Any]) -> np.ndarray:
    out = np.empty((len(items), DIMS), dtype=np.uint32)
    for i, s in enumerate(items):
        out[i] = parse_coord(s.decode() if isinstance(s, bytes) else s)
    return out


def pattern_string(p: Any) -> str:
    """Validate or build a range pattern.

    Parameters
    ----------
    p : str or sequence
        A pattern string such as ``"1.*.[0:8]/*.*.*/*.*.*"``, or nine components,
        each an int, ``None`` or ``"*"`` (any), an ``(a, b)`` tuple or a ``slice(a, b)``
        (half-open range).

    Returns
    -------
    str
        The pattern text sent on the wire.

    Raises
    ------
    PatternError
        When the pattern is malformed.
    """
    if isinstance(p, str):
        pattern_bounds(p)  # validates
        return p
    try:
        items = list(p)
    except TypeError:
        raise PatternError("E_PATTERN", f"cannot read a pattern from {type(p).__name__}") from None
    if len(items) != DIMS:
        raise PatternError("E_PATTERN", f"a pattern has 9 components, got {len(items)}")
    return _join([component_text(v) for v in items])


def pattern_bounds(text: str) -> tuple[list[int], list[int]]:
    """The box a pattern string names: ``(lo, hi)``, nine bounds each, ``hi`` exclusive.

    Raises
    ------
    PatternError
        When ``text`` is not nine components ``a.b.c/d.e.f/g.h.i``, each ``n``, ``*`` or
        ``[a:b]`` (either end optional) with ``a < b`` inside 0..2**32.
    """
    if not isinstance(text, str):
        raise PatternError("E_PATTERN", f"a pattern must be a string, got {type(text).__name__}")
    groups = text.split("/")
    parts = [q for g in groups for q in g.split(".")]
    if len(groups) != 3 or len(parts) != DIMS or any(g.count(".") != 2 for g in groups):
        raise PatternError("E_PATTERN", f"malformed pattern {text!r}; expected nine components a.b.c/d.e.f/g.h.i")
    lo, hi = [], []
    for i, q in enumerate(parts):
        m = _COMPONENT_RE.fullmatch(q)
        if m is None:
            raise PatternError("E_PATTERN", f"bad pattern {text!r}: component {i + 1} {q!r} is not n, *, or [a:b]")
        if m.group(1) is not None:
            a = int(m.group(1))
            b = a + 1
        elif q == "*":
            a, b = 0, _SPACE_END
        else:
            a = int(m.group(2)) if m.group(2) else 0
            b = int(m.group(3)) if m.group(3) else _SPACE_END
        if not (a <= _MAX and b <= _SPACE_END and a < b):
            raise PatternError("E_PATTERN", f"bad pattern {text!r}: component {i + 1} {q!r} is out of range 0..2**32, empty or reversed")
        lo.append(a)
        hi.append(b)
    return lo, hi


def component_text(v: Any) -> str:
    """Text of one pattern component (int, ``None``/``"*"``, ``(a, b)`` or ``slice``)."""
    if v is None or (isinstance(v, str) and v == "*"):
        return "*"
    if isinstance(v, slice):
        if v.step not in (None, 1):
            raise PatternError("E_PATTERN", f"pattern slices take no step: {v}")
        a = 0 if v.start is None else v.start
        if v.stop is None:
            a = _int(a)
            _check_range(a, _SPACE_END, v)
            return "*" if a == 0 else f"[{a}:]"
        v = (a, v.stop)
    if isinstance(v, tuple):
        if len(v) != 2:
            raise PatternError("E_PATTERN", f"a range component is (start, stop), got {v!r}")
        a, b = (_int(x) for x in v)
        _check_range(a, b, v)
        return f"[{a}:{b}]"
    n = _int(v)
    _check_range(n, n + 1, v)
    return str(n)


def _int(v: Any) -> int:
    if isinstance(v, (bool, float)) or not isinstance(v, (int, np.integer)):
        raise PatternError("E_PATTERN", f"pattern components are integers, got {v!r}")
    return int(v)


def _check_range(a: int, b: int, src: Any) -> None:
    if not (0 <= a <= _MAX and 0 <= b <= _MAX + 1 and a < b):
        raise PatternError("E_PATTERN", f"pattern range outside 0..2**32, empty or reversed: {src!r}")


def _join(parts: Sequence[str]) -> str:
    return "/".join(".".join(parts[i : i + 3]) for i in (0, 3, 6))
