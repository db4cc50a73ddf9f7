"""Knowledge graphs at coordinates: the layout CKG reads, and names for types and relations.

Layout (``protocol.json`` → ``ops.CKG.layout``)::

    edge       type.id.0 / relation.target_type.target_id / 0.0.0   (relation >= 1)
    attribute  type.id.attr / 0.0.0 / 0.0.0                         (attr >= 1)

An edge's value is free (:meth:`vtpu.Client.kg_put` stores empty bytes); CKG ignores it.
An entity exists when some scroll is stored under ``type.id.*`` or an edge points at it.
Relations, entity types and attributes are integers on the wire; a :class:`KgSchema`
gives them names so user code says ``"father"`` and ``"person"``. Queries follow a relation
forward (``"father"``: from a child to its father) or backward (``"~father"``: from a father
to his children).

>>> kg = KgSchema(types=["person"], relations=["father", "sister", "husband", "spouse"], attrs=["name"])
>>> kg.relation("sister"), kg.type("person"), kg.attr("name")
(2, 1, 1)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .coords import DIMS, _MAX
from .errors import ParamError
from .layout import Layout

__all__ = ["KgSchema", "LAYOUT_SPEC", "MAX_RELATION", "edge_coords", "start_coords", "hops_param", "relations_param"]

#: Largest relation id (relations are signed in queries: ``"~father"`` is -father).
MAX_RELATION = 2**31 - 1

#: The coordinate layout of knowledge-graph rows, component names as in :class:`vtpu.Layout`.
LAYOUT_SPEC = "type.id.attr/relation.target_type.target_id/*.*.*"


def _table(what: str, names: Sequence[str] | Mapping[str, int], first: int, last: int = _MAX) -> dict[str, int]:
    """Name → id: a sequence numbers from ``first``, a mapping is taken as given (checked)."""
    if isinstance(names, Mapping):
        table = {str(k): int(v) for k, v in names.items()}
    elif isinstance(names, (str, bytes)):
        raise ParamError("E_PARAM", f"{what} must be a sequence of names or a mapping, got a string")
    else:
        table = {str(k): j + first for j, k in enumerate(names)}
        if len(table) != len(names):
            raise ParamError("E_PARAM", f"{what} names repeat")
    bad = [k for k, v in table.items() if not first <= v <= last]
    if bad:
        raise ParamError("E_PARAM", f"{what} {bad[0]!r}: ids must lie in {first}..{last}")
    if any(k.startswith("~") or k == "*" for k in table):
        raise ParamError("E_PARAM", f"{what}: names may not start with '~' or be '*' (query syntax)")
    return table


class KgSchema:
    """Names for a knowledge graph's entity types, relations and attributes.

    Parameters
    ----------
    relations : sequence of str or mapping of str to int
        Relation names; a sequence numbers them from 1 (0 is the attribute space).
    types : sequence of str or mapping of str to int, optional
        Entity type names; a sequence numbers them from 1.
    attrs : sequence of str or mapping of str to int, optional
        Attribute names; a sequence numbers them from 1.

    Attributes
    ----------
    layout : Layout
        ``type.id.attr/relation.target_type.target_id/*.*.*`` with these names as symbols,
        for building coordinates and patterns by hand.
    """

    def __init__(self, relations: Sequence[str] | Mapping[str, int] = (), types: Sequence[str] | Mapping[str, int] = (),
                 attrs: Sequence[str] | Mapping[str, int] = ()) -> None:
        self.relations = _table("relations", relations, 1, MAX_RELATION)
        self.types = _table("types", types, 0 if isinstance(types, Mapping) else 1)
        self.attrs = _table("attrs", attrs, 1)
        self._rel_names = {v: k for k, v in self.relations.items()}
        self._type_names = {v: k for k, v in self.types.items()}
        self.layout = Layout(LAYOUT_SPEC, type=self.types, target_type=self.types, relation=self.relations, attr=self.attrs)

    def __repr__(self) -> str:
        return f"KgSchema(relations={list(self.relations)}, types={list(self.types)}, attrs={list(self.attrs)})"

    @staticmethod
    def _lookup(what: str, table: Mapping[str, int], v: Any, first: int, last: int = _MAX) -> int:
        if isinstance(v, str):
            if v not in table:
                known = f"known: {sorted(table)}" if table else "no names: pass schema=KgSchema(...)"
                raise ParamError("E_PARAM", f"unknown {what} {v!r} ({known})")
            return table[v]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not first <= int(v) <= last:
            raise ParamError("E_PARAM", f"a {what} is a name or an integer {first}..{last}, got {v!r}")
        return int(v)

    def relation(self, r: Any) -> int:
        """Relation id of a name (or an id, checked): ParamError naming an unknown name."""
        return self._lookup("relation", self.relations, r, 1, MAX_RELATION)

    def type(self, t: Any) -> int:
        """Entity type id of a name (or an id, checked)."""
        return self._lookup("entity type", self.types, t, 0)

    def attr(self, a: Any) -> int:
        """Attribute id of a name (or an id, checked); 0 is the entity's edge row."""
        return self._lookup("attribute", self.attrs, a, 0)

    def relation_name(self, r: int) -> str | int:
        """The name of relation id ``r`` (the id itself when unnamed)."""
        return self._rel_names.get(int(r), int(r))

    def type_name(self, t: int) -> str | int:
        """The name of entity type id ``t`` (the id itself when unnamed)."""
        return self._type_names.get(int(t), int(t))


_NO_SCHEMA = KgSchema()


def _ids(schema: KgSchema | None, col: Any, kind: str) -> np.ndarray:
    """An integer column with names resolved through the schema (``kind``: type or relation)."""
    s = schema or _NO_SCHEMA
    a = np.asarray(col)
    first = 1 if kind == "relation" else 0
    last = MAX_RELATION if kind == "relation" else _MAX
    if a.dtype.kind in "OUS":
        look = s.relation if kind == "relation" else s.type
        return np.array([look(x.item() if isinstance(x, np.generic) else x) for x in a.ravel()], np.int64)
    if a.dtype.kind not in "iu":
        raise ParamError("E_PARAM", f"{kind} values must be names or integers, got {a.dtype}")
    a = a.astype(np.int64).ravel()
    if a.size and (a.min() < first or a.max() > last):
        bad = a[(a < first) | (a > last)][0]
        raise ParamError("E_PARAM", f"{kind} id {bad} outside {first}..{last}")
    return a


def _int_col(col: Any, what: str) -> np.ndarray:
    a = np.asarray(col)
    if a.dtype == object:
        try:
            a = a.astype(np.int64)
        except (TypeError, ValueError, OverflowError):
            raise ParamError("E_PARAM", f"{what} must be integers") from None
    if a.dtype.kind not in "iu":
        raise ParamError("E_PARAM", f"{what} must be integers, got {a.dtype}")
    a = a.astype(np.int64).ravel()
    if a.size and (a.min() < 0 or a.max() > _MAX):
        raise ParamError("E_PARAM", f"{what} outside 0..2**32-1")
    return a


def _columns(rows: Any, width: int, what: str) -> list[Any]:
    """Columns of an (N, width) array or a sequence of width-tuples (names allowed)."""
    if isinstance(rows, np.ndarray) and rows.dtype.kind in "iu":
        if rows.ndim != 2 or rows.shape[1] != width:
            raise ParamError("E_PARAM", f"{what} must be an (N, {width}) array, got shape {rows.shape}")
        return [rows[:, j] for j in range(width)]
    rows = list(rows)
    if any(not isinstance(r, (tuple, list, np.ndarray)) or len(r) != width for r in rows):
        raise ParamError("E_PARAM", f"each of {what} must be {width} values")
    return [np.array([r[j] for r in rows], dtype=object) if rows else np.zeros(0, np.int64) for j in range(width)]


def edge_coords(edges: Any, schema: KgSchema | None = None) -> np.ndarray:
    """``(N, 9)`` coordinates of edges given as ``(src_type, src_id, relation, dst_type, dst_id)`` rows."""
    st, si, r, dt, di = _columns(edges, 5, "edges")
    out = np.zeros((len(st), DIMS), np.uint32)
    out[:, 0] = _ids(schema, st, "entity type")
    out[:, 1] = _int_col(si, "source ids")
    out[:, 3] = _ids(schema, r, "relation")
    out[:, 4] = _ids(schema, dt, "entity type")
    out[:, 5] = _int_col(di, "target ids")
    return out


def _is_pair(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and all(isinstance(v, (str, int, np.integer)) for v in x)


def start_coords(starts: Any, schema: KgSchema | None = None) -> tuple[np.ndarray, bool]:
    """``((N, 9) coords, single)`` of starts: one ``(type, id)`` tuple or a batch of them."""
    single = _is_pair(starts)
    t, i = _columns([starts] if single else starts, 2, "starts")
    out = np.zeros((len(t), DIMS), np.uint32)
    out[:, 0] = _ids(schema, t, "entity type")
    out[:, 1] = _int_col(i, "start ids")
    return out, single


def _signed(x: Any, schema: KgSchema | None) -> Any:
    """One query relation on the wire: ``"*"``/``"~*"`` (any forward/backward), a name or
    id (forward), ``"~name"`` or a negative id (backward)."""
    s = schema or _NO_SCHEMA
    if isinstance(x, str):
        if x in ("*", "~*", "-*"):
            return "*" if x == "*" else "-*"
        if x.startswith("~"):
            return -s.relation(x[1:])
        return s.relation(x)
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) and x < 0:
        return -s.relation(-int(x))
    return s.relation(x)


def relations_param(rels: Any, schema: KgSchema | None = None) -> list[Any]:
    """Wire relations of one query relation or a sequence of them (see :func:`hops_param`)."""
    seq = [rels] if isinstance(rels, (str, int, np.integer)) else list(rels)
    if not seq:
        raise ParamError("E_PARAM", "an empty relation list")
    return [_signed(x, schema) for x in seq]


def hops_param(path: Iterable[Any], schema: KgSchema | None = None) -> list[Any]:
    """The wire ``path``. Each hop: a relation name or id (followed forward), ``"~name"`` or
    ``-id`` (followed backward, target to source), ``"*"`` / ``"~*"`` (any relation forward /
    backward), or a list of these (any of them)."""
    if isinstance(path, (str, int, np.integer)):
        path = [path]
    hops = [relations_param(h, schema) for h in path]
    if not hops:
        raise ParamError("E_PARAM", "a path needs at least one hop")
    return [h[0] if len(h) == 1 else h for h in hops]
