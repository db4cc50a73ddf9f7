"""Named coordinate layouts: user code says ``layer=3, qkv="key"``, the wire carries integers."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import numpy as np

from .coords import DIMS, _join, _MAX, component_text, coords_array
from .errors import CoordinateError, ParamError

__all__ = ["Layout"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Layout:
    """Names for the nine coordinate components.

    Parameters
    ----------
    spec : str
        Nine tokens in coordinate form, each a component name, ``*`` (unnamed: 0 in
        coordinates, any value in patterns) or an integer literal (fixed value), e.g.
        ``"layer.head.pos/qkv.batch.embed/*.*.*"``.
    **symbols : sequence of str or mapping of str to int
        Symbolic values per component: a sequence maps each string to its index
        (``qkv=["query", "key", "value"]`` makes ``"key"`` 1), a mapping gives the
        integers explicitly.

    Examples
    --------
    >>> lay = Layout("layer.head.pos/qkv.batch.embed/*.*.*", qkv=["query", "key", "value"])
    >>> format_coord(lay.coord(layer=0, head=3, pos=17, qkv="key"))
    '0.3.17/1.0.0/0.0.0'
    >>> lay.pattern(layer=0, qkv="key", pos=(0, 64))
    '0.*.[0:64]/1.*.*/*.*.*'
    """

    def __init__(self, spec: str, **symbols: Sequence[str] | Mapping[str, int]) -> None:
        if not isinstance(spec, str):
            raise ParamError("E_PARAM", f"a layout spec is a string, got {type(spec).__name__}")
        groups = spec.strip().split("/")
        tokens = [t for g in groups for t in g.split(".")]
        if len(groups) != 3 or len(tokens) != DIMS or any(len(g.split(".")) != 3 for g in groups):
            raise ParamError("E_PARAM", f"layout {spec!r} must have nine components a.b.c/d.e.f/g.h.i")
        self.spec = spec.strip()
        self.names: tuple[str | None, ...]
        names: list[str | None] = []
        self._fixed = np.zeros(DIMS, dtype=np.uint32)
        for i, t in enumerate(tokens):
            if t == "*":
                names.append(None)
            elif t.isdigit():
                if int(t) > _MAX:
                    raise ParamError("E_PARAM", f"layout literal {t} is over 2**32-1")
                names.append(None)
                self._fixed[i] = int(t)
            elif _NAME_RE.match(t):
                if t in names:
                    raise ParamError("E_PARAM", f"layout {spec!r} names {t!r} twice")
                names.append(t)
            else:
                raise ParamError("E_PARAM", f"bad layout component {t!r} in {spec!r}")
        self._literal = [t.isdigit() for t in tokens]
        self.names = tuple(names)
        self._index = {n: i for i, n in enumerate(names) if n is not None}
        self.symbols: dict[str, dict[str, int]] = {}
        self._reverse: dict[str, dict[int, str]] = {}
        for name, table in symbols.items():
            if name not in self._index:
                raise ParamError("E_PARAM", f"symbols given for {name!r}, which the layout does not name")
            if isinstance(table, Mapping):
                m = {str(k): int(v) for k, v in table.items()}
            elif isinstance(table, (str, bytes)):
                raise ParamError("E_PARAM", f"symbols for {name!r} must be a sequence of strings or a mapping")
            else:
                m = {str(k): j for j, k in enumerate(table)}
            if any(not 0 <= v <= _MAX for v in m.values()):
                raise ParamError("E_PARAM", f"symbol values for {name!r} must lie in 0..2**32-1")
            self.symbols[name] = m
            self._reverse[name] = {v: k for k, v in m.items()}

    def __repr__(self) -> str:
        syms = "".join(f", {k}={list(v)}" for k, v in self.symbols.items())
        return f"Layout({self.spec!r}{syms})"

    # -- values -----------------------------------------------------------------------
    def _value(self, name: str, v: Any) -> Any:
        """Scalar or array value of component ``name`` with symbols resolved."""
        table = self.symbols.get(name)
        if isinstance(v, str):
            if table is None or v not in table:
                raise CoordinateError("E_COORD", f"{v!r} is not a symbol of {name!r}")
            return table[v]
        if isinstance(v, np.ndarray) and v.dtype.kind in "OUS":
            if table is None:
                raise CoordinateError("E_COORD", f"{name!r} has no symbols; got strings")
            uniq, inv = np.unique(v, return_inverse=True)
            try:
                mapped = np.array([table[str(u)] for u in uniq], dtype=np.int64)
            except KeyError as e:
                raise CoordinateError("E_COORD", f"{e.args[0]!r} is not a symbol of {name!r}") from None
            return mapped[inv].reshape(v.shape)
        if isinstance(v, (list, tuple)):
            return self._value(name, np.asarray(v))
        return v

    def _check_names(self, kw: Mapping[str, Any]) -> None:
        unknown = [k for k in kw if k not in self._index]
        if unknown:
            raise ParamError("E_PARAM", f"layout {self.spec!r} has no component(s) {unknown}")

    def coord(self, **components: Any) -> np.ndarray:
        """One coordinate as a ``(9,)`` uint32 array.

        Unnamed components take the layout's literal (or 0); every named component must
        be given (as in the TypeScript ``Layout``).

        Raises
        ------
        ParamError
            For a name the layout does not have, or a named component left out.
        CoordinateError
            For an unknown symbol or an out-of-range value.
        """
        a = self.coords(**components)
        if a.shape[0] != 1:
            raise ParamError("E_PARAM", "coord() takes scalars; use coords() for arrays")
        return a[0]

    def coords(self, **components: Any) -> np.ndarray:
        """A batch of coordinates: components broadcast like numpy arrays.

        Returns
        -------
        numpy.ndarray
            ``(N, 9)`` uint32, C-contiguous, N the broadcast size (1 for scalars).

        Examples
        --------
        >>> lay.coords(layer=0, head=np.arange(4)[:, None], pos=np.arange(8)).shape
        (32, 9)
        """
        self._check_names(components)
        missing = [n for n in self._index if n not in components]
        if missing:
            raise ParamError("E_PARAM", f"layout component(s) {missing} missing")
        vals = {k: self._value(k, v) for k, v in components.items()}
        try:
            arrays = np.broadcast_arrays(*[np.asarray(v) for v in vals.values()]) if vals else []
        except ValueError as e:
            raise ParamError("E_PARAM", f"layout components do not broadcast: {e}") from None
        n = arrays[0].size if arrays else 1
        out = np.empty((n, DIMS), dtype=np.int64)
        out[:] = self._fixed
        for k, arr in zip(vals, arrays):
            out[:, self._index[k]] = _ints(k, arr).ravel()
        return coords_array(out)

    def pattern(self, **components: Any) -> str:
        """A range pattern: given components fixed, the rest ``*``.

        Parameters
        ----------
        **components
            An int or symbol fixes the component; an ``(a, b)`` tuple or ``slice(a, b)``
            gives the half-open range ``[a:b]``; ``None`` means any.

        Returns
        -------
        str
            Pattern text, e.g. ``"0.*.*/1.*.*/*.*.*"``.
        """
        self._check_names(components)
        parts = [str(int(self._fixed[i])) if self._literal[i] else "*" for i in range(DIMS)]
        for k, v in components.items():
            if isinstance(v, tuple):
                v = tuple(self._value(k, x) for x in v)
            elif isinstance(v, str):
                v = self._value(k, v)
            parts[self._index[k]] = component_text(v)
        return _join(parts)

    def offset(self, **deltas: int) -> list[int]:
        """Nine signed offsets for ``cdelta`` (named components given, the rest 0)."""
        self._check_names(deltas)
        off = [0] * DIMS
        for k, v in deltas.items():
            off[self._index[k]] = int(v)
        return off

    def describe(self, coord: Any) -> dict[str, Any]:
        """Named components of a coordinate, symbols as their names.

        Parameters
        ----------
        coord : str or array_like
            One coordinate.

        Returns
        -------
        dict
            ``{name: value}`` in layout order, e.g. ``{"layer": 0, "qkv": "key", ...}``.
        """
        c = coords_array(coord)
        if c.shape[0] != 1:
            raise CoordinateError("E_COORD", f"describe() takes one coordinate, got {c.shape[0]}")
        out: dict[str, Any] = {}
        for i, name in enumerate(self.names):
            if name is not None:
                v = int(c[0, i])
                out[name] = self._reverse.get(name, {}).get(v, v)
        return out


def _ints(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise CoordinateError("E_COORD", f"component {name!r} must be integers, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > _MAX):
        raise CoordinateError("E_COORD", f"component {name!r} outside 0..2**32-1")
    return arr.astype(np.int64)
