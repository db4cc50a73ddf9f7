"""Knowledge-graph methods of :class:`vtpu.Client`: store edges, follow relation paths, BFS.

>>> kg = vtpu.KgSchema(types=["person"], relations=["father", "sister", "husband", "spouse"])
>>> client.kg_put([("person", 1001, "father", "person", 1002), ...], schema=kg)
>>> client.ckg_path(("person", 1001), ["father", "sister", "husband", "spouse"], schema=kg)
array([[   1, 1005]])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import arrow
from .errors import ProtocolError
from .kg import KgSchema, edge_coords, hops_param, relations_param, start_coords
from ._host import ClientHost

__all__ = ["KgMixin", "KgTree", "KgResults"]

class KgTree(NamedTuple):
    """One BFS from a start, rows in discovery order (the start first).

    ``nodes`` (k, 2) int64 ``(type, id)``; ``depth`` (k,) hops from the start; ``parent``
    (k,) index into ``nodes`` of the node it was reached from (-1 for the start);
    ``relation`` (k,) relation id followed, negative when followed backwards (0 for the
    start); ``truncated``: ``max_nodes`` left reachable nodes out.
    """

    nodes: np.ndarray
    depth: np.ndarray
    parent: np.ndarray
    relation: np.ndarray
    truncated: bool


class KgResults(list):
    """A list with one result per start, plus ``truncated`` (bool per start),
    ``elapsed_us`` (engine-side time of the op) and ``build_us`` (of which bringing the
    adjacency up to date after writes)."""

    truncated: list[bool]
    elapsed_us: int
    build_us: int


#: A BFS row's value: depth, parent row (-1 for a start), relation followed (negative when
#: followed backwards; 0 for a start).
BFS_ROW = np.dtype([("depth", "<i4"), ("parent", "<i4"), ("relation", "<i4")])


def _body(frames: list[Any]) -> Any:
    if not frames:
        raise ProtocolError("E_FRAME", "CKG reply lacks its body")
    return arrow.read_table(frames[0])


def _bfs_rows(table: Any) -> np.ndarray:
    """The 12-byte row values of a BFS reply as a BFS_ROW array (one buffer view, no per-row work)."""
    col = table.column("value").combine_chunks()
    n = len(col)
    offs = np.frombuffer(col.buffers()[1], np.int32, n + 1, col.offset * 4) if n else np.zeros(1, np.int32)
    if n and not np.array_equal(np.diff(offs), np.full(n, BFS_ROW.itemsize, np.int32)):
        raise ProtocolError("E_FRAME", "CKG bfs rows must carry 12-byte values")
    return np.frombuffer(col.buffers()[2], BFS_ROW, n, int(offs[0])) if n else np.zeros(0, BFS_ROW)


def _results(items: list[Any], res: dict[str, Any]) -> KgResults:
    out = KgResults(items)
    out.truncated = [bool(x) for x in res.get("truncated", [])]
    out.elapsed_us = int(res.get("elapsed_us", 0))
    out.build_us = int(res.get("build_us", 0))
    return out


class KgMixin(ClientHost):
    """CKG methods; mixed into :class:`vtpu.Client` (uses its ``request``)."""

    def _ckg(self, starts: Any, params: dict[str, Any], schema: KgSchema | None, timeout: float | None):
        coords, single = start_coords(starts, schema)
        if single:  # one start travels in the header: no Arrow body to encode and decode
            params, bodies = {**params, "start": coords[0].tolist()}, []
        else:
            params, bodies = {**params, "batch": True}, [arrow.encode_coords(coords)]
        res, frames = self.request("CKG", params, bodies, timeout=timeout)
        table = _body(frames)
        ents = arrow.decode_coords(table)[:, :2].astype(np.int64)
        return res, ents, table, np.asarray(res["offsets"], np.int64), single

    def kg_put(self, edges: Any, *, schema: KgSchema | None = None, timeout: float | None = None) -> int:
        """Store edges in one batched CPUT (empty bytes values; existing edges are kept).

        Parameters
        ----------
        edges : (N, 5) int array or sequence of 5-tuples
            ``(src_type, src_id, relation, dst_type, dst_id)`` rows; types and relations may
            be names of ``schema``. Relation ids are ≥ 1.
        schema : KgSchema, optional
            Resolves names.

        Returns
        -------
        int
            Edges written.

        Raises
        ------
        ParamError
            For an unknown name, a relation 0 or an id outside 0..2**32-1.
        """
        c = edge_coords(edges, schema)
        return self.cput_batch(c, np.zeros((len(c), 0), np.uint8), kind="bytes", timeout=timeout)

    def kg_delete(self, edges: Any, *, schema: KgSchema | None = None, timeout: float | None = None) -> int:
        """Delete edges (same rows as :meth:`kg_put`); returns how many existed."""
        return self.cdel_batch(edge_coords(edges, schema), timeout=timeout)

    def ckg_path(self, starts: Any, path: Any, *, paths: bool = False, limit: int | None = None,
                 schema: KgSchema | None = None, timeout: float | None = None) -> Any:
        """Entities reached from each start along a relation path, in one round trip.

        Parameters
        ----------
        starts : tuple or sequence of tuples or (N, 2) int array
            One ``(type, id)`` start, or a batch of them.
        path : sequence
            Hops, e.g. ``["father", "sister", "husband", "spouse"]``. ``"~father"`` (or a
            negative id) follows a relation backwards, from target to source; ``"*"`` /
            ``"~*"`` is any relation forward / backward; a list allows any of its items.
        paths : bool
            False (default): the distinct end entities. True: every matching path.
        limit : int, optional
            Most ends (or paths) per start; see ``truncated``.
        schema : KgSchema, optional
            Resolves type and relation names.

        Returns
        -------
        numpy.ndarray or KgResults
            Per start a ``(k, 2)`` int64 array of ``(type, id)`` in (type, id) order, or with
            ``paths`` a ``(p, len(path) + 1, 2)`` array (start first, depth-first order). A
            single start gives its array; a batch gives a :class:`KgResults` list. A start
            that does not exist, or a relation without edges, gives an empty array.

        Raises
        ------
        ParamError
            For an unknown relation or type name, or a bad hop.
        """
        params: dict[str, Any] = {"mode": "path", "path": hops_param(path, schema), "paths": bool(paths)}
        if limit is not None:
            params["limit"] = int(limit)
        res, ents, _, off, single = self._ckg(starts, params, schema, timeout)
        items = []
        for s in range(len(off) - 1):
            if paths:
                w = int(res["hops"]) + 1
                items.append(ents[off[s] * w: off[s + 1] * w].reshape(-1, w, 2))
            else:
                items.append(ents[off[s]: off[s + 1]])
        return items[0] if single else _results(items, res)

    def ckg_bfs(self, starts: Any, depth: int, *, relations: Any = None, max_nodes: int | None = None,
                multi_source: bool = False, schema: KgSchema | None = None, timeout: float | None = None) -> Any:
        """Bounded breadth-first search from each start, in one round trip.

        Parameters
        ----------
        starts : tuple or sequence of tuples or (N, 2) int array
            One ``(type, id)`` start, or a batch of them (one BFS each).
        depth : int
            Most hops from the start (0..65535).
        relations : str, int or sequence, optional
            Relations to follow, as path hops are written (default ``"*"``: any, forward;
            ``["*", "~*"]`` walks both ways).
        max_nodes : int, optional
            Most nodes per start, the start included; ``truncated`` says when reachable
            nodes were left out.
        multi_source : bool
            One BFS from all starts together (each node once, at its distance from the
            nearest start; the starts come first): returns a single :class:`KgTree`.
        schema : KgSchema, optional
            Resolves names.

        Returns
        -------
        KgTree or KgResults
            A :class:`KgTree` for one start (or ``multi_source``), a :class:`KgResults`
            list of them for a batch. A start that does not exist gives an empty tree.
        """
        params: dict[str, Any] = {"mode": "bfs", "depth": int(depth) if isinstance(depth, (int, np.integer)) else depth}
        if relations is not None:
            params["relations"] = relations_param(relations, schema)
        if max_nodes is not None:
            params["limit"] = int(max_nodes)
        if multi_source:
            params["multi_source"] = True
        res, ents, table, off, single = self._ckg(starts, params, schema, timeout)
        single = single or bool(multi_source)
        meta = _bfs_rows(table)
        dep = meta["depth"].astype(np.int32)
        par = meta["parent"].astype(np.int64)
        rel = meta["relation"].astype(np.int64)
        trunc = res.get("truncated", [])
        items = []
        for s in range(len(off) - 1):
            a, b = int(off[s]), int(off[s + 1])
            p = par[a:b]
            items.append(KgTree(ents[a:b], dep[a:b], np.where(p >= 0, p - a, -1), rel[a:b], bool(trunc[s])))
        return items[0] if single else _results(items, res)
