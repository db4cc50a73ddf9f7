"""One client over every shard of a cluster: the store API of :class:`vtpu.Client`.

Batches are split by owner, the parts sent concurrently and reassembled in request order;
CRANGE asks each range the pattern reaches (its answers concatenate in coordinate order);
CNEAREST asks each range and keeps the global top k; CHIER sums the shards' counts. A batch
is atomic on each shard, not across shards.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .. import progress as _progress
from ..arrow import Values
from ..client import RangeResult, _single
from ..coords import DIMS, coords_array, pattern_string
from ..errors import ParamError, SidecarError
from ..launcher import find_cli, find_node
from ..program import Program, ProgramResult
from .fanout import Router
from .merge import concat_ranges, join_phext, merge_hier, merge_nearest, merge_values
from .table import RouteTable

__all__ = ["ClusterClient", "ALL"]

ALL = "*.*.*/*.*.*/*.*.*"


def _owned(nodes: list[dict[str, Any]], shard: int, table: RouteTable) -> list[dict[str, Any]]:
    """The CHIER nodes (below the root) whose first component ``shard`` owns by ``table``:
    a shard may still hold a copy of a range moved to it, or from it, until the move ends."""
    return [n for n in nodes if table.owner_of_first(int(n["prefix"][0])) == shard]


def _checksum(path: str | Path) -> str:
    """xxh3-128 of a phext file, by the sidecar's own command line (``vtpu phext checksum``)."""
    out = subprocess.run([find_node(), str(find_cli()), "phext", "checksum", str(path)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SidecarError("E_INTERNAL", f"vtpu phext checksum failed: {out.stderr.strip()[-500:]}")
    return out.stdout.strip()


def _take(values: Any, idx: np.ndarray) -> Any:
    """Rows ``idx`` of a batch of values (ndarray, torch tensor, or a list)."""
    if isinstance(values, np.ndarray):
        return values[idx]
    if hasattr(values, "detach"):  # torch
        import torch

        return values[torch.as_tensor(idx, dtype=torch.long)]
    return [values[int(i)] for i in idx]


class ClusterClient:
    """The store API over a cluster's shards (``Cluster.client()`` or :func:`vtpu.cluster.connect`).

    Parameters
    ----------
    seeds : sequence of str
        Addresses of one or more shards; the route table is read from them.
    timeout : float, optional
        Seconds per reply from a shard.
    stale_wait : float
        Seconds a request refused as stale (its range is moving) keeps being re-routed
        before :class:`vtpu.StaleTableError` reaches the caller.
    server_key : str, optional
        The shards' CURVE public key, when they serve with CURVE (``Cluster.server_key``).

    Notes
    -----
    A shard that does not answer fails only the requests (or parts) that need it, with
    :class:`vtpu.SidecarError`; the others go on. Safe to share between threads.
    """

    def __init__(self, seeds: Sequence[str], *, timeout: float | None = None, stale_wait: float = 60.0,
                 server_key: str | None = None) -> None:
        self._router = Router(seeds, timeout=timeout, stale_wait=stale_wait, server_key=server_key)

    # -- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close every shard connection. Idempotent; the shards keep running."""
        self._router.close()

    def __enter__(self) -> "ClusterClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the table ----------------------------------------------------------------------------
    def route_table(self, *, refresh: bool = True) -> RouteTable:
        """The route table (read again from the shards unless ``refresh`` is False)."""
        return self._router.refresh() if refresh else self._router.table  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"<vtpu.cluster.ClusterClient {self._router.table!r}>"

    def shard_of(self, coord: Any) -> int:
        """The shard owning ``coord`` by the client's current table."""
        return self._router.table.owner(coord)  # type: ignore[union-attr]

    def shard_sizes(self) -> dict[int, int]:
        """Scrolls stored per shard."""
        return {s: int(r["store"]["entries"]) for s, r in self._router.per_shard(lambda c, s, t: c.ping())}

    def ping(self) -> dict[int, dict[str, Any]]:
        """Each shard's PING answer, by shard."""
        return dict(self._router.per_shard(lambda c, s, t: c.ping()))

    # -- single coordinates -------------------------------------------------------------------
    def _one(self, coord: Any, run: Any) -> Any:
        return self._router.one(coord, run)

    def cget(self, coord: Any, *, timeout: float | None = None) -> Any:
        """Value at one coordinate, or None."""
        return self._one(coord, lambda c: c.cget(coord, timeout=timeout))

    def cput(self, coord: Any, value: Any, *, dtype: str | None = None, timeout: float | None = None) -> int:
        """Store one value on its owning shard; returns 1."""
        return self._one(coord, lambda c: c.cput(coord, value, dtype=dtype, timeout=timeout))

    def cdel(self, coord: Any, *, timeout: float | None = None) -> bool:
        """Delete one coordinate; True when it existed."""
        return self._one(coord, lambda c: c.cdel(coord, timeout=timeout))

    # -- batches ----------------------------------------------------------------------------
    def cget_batch(self, coords: Any, *, timeout: float | None = None) -> Values:
        """Values at many coordinates in request order: ``(values, found)`` as from one sidecar."""
        c = coords_array(coords)
        parts = self._router.scatter(c, lambda client, idx: client.cget_batch(c[idx], timeout=timeout))
        return merge_values(len(c), parts)

    def cput_batch(self, coords: Any, values: Any, *, kind: str | None = None, dtype: str | None = None,
                   timeout: float | None = None) -> int:
        """Store many values, each part on its owning shard (atomic per shard); returns the count."""
        c = coords_array(coords)
        if len(values) != len(c):
            raise ParamError("E_PARAM", f"{len(c)} coordinates but {len(values)} values")
        parts = self._router.scatter(
            c, lambda client, idx: client.cput_batch(c[idx], _take(values, idx), kind=kind, dtype=dtype, timeout=timeout))
        return sum(int(n) for _, n in parts)

    def cdel_batch(self, coords: Any, *, timeout: float | None = None) -> int:
        """Delete many coordinates; returns how many existed."""
        c = coords_array(coords)
        return sum(int(n) for _, n in self._router.scatter(c, lambda client, idx: client.cdel_batch(c[idx], timeout=timeout)))

    # -- fan-out reads ------------------------------------------------------------------------
    def crange(self, pattern: Any = ALL, limit: int | None = None, values: bool = True, *,
               timeout: float | None = None) -> RangeResult:
        """Stored coordinates matching ``pattern`` over all shards, in coordinate order."""
        text = pattern_string(pattern)
        if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
            raise ParamError("E_PARAM", f"limit must be an integer >= 1, got {limit!r}")
        parts = self._router.per_range(text, lambda c, r, p: c.crange(p, limit=limit, values=values, timeout=timeout))
        return concat_ranges([res for _, res in parts], limit, values)

    def cnearest(self, coords: Any, k: int, *, metric: str = "l2", pattern: Any = None,
                 timeout: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The global k stored coordinates nearest to each query (exact; see :meth:`vtpu.Client.cnearest`)."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ParamError("E_PARAM", f"CNEAREST: k must be an integer >= 1, got {k!r}")
        one = isinstance(coords, str) or np.asarray(coords).ndim == 1
        q = coords_array(coords)

        def ask(c: Any, r: Any, p: str) -> tuple[np.ndarray, np.ndarray] | None:
            n = len(c.crange(p, limit=int(k), values=False, timeout=timeout).coords)  # candidates, up to k
            if n == 0:
                return None
            got = c.cnearest(q, min(int(k), n), metric=metric, pattern=p, timeout=timeout)
            return got

        parts = [res for _, res in self._router.per_range(pattern_string(pattern) if pattern is not None else ALL, ask) if res]
        total = sum(p[1].shape[1] for p in parts)
        if total < k:
            raise ParamError("E_PARAM", f"CNEAREST: k = {k} but the cluster holds only {total} candidates")
        out, dist = merge_nearest(parts, int(k), q, metric)
        return (out[0], dist[0]) if one else (out, dist)

    def cnearest_vectors(self, queries: Any, k: int, pattern: Any, *, metric: str = "cosine", skip_mismatched: bool = False,
                         timeout: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The global k stored tensors within ``pattern`` nearest to each query vector (exact;
        see :meth:`vtpu.Client.cnearest_vectors`): each range's best k, merged."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ParamError("E_PARAM", f"CNEAREST: k must be an integer >= 1, got {k!r}")
        q = queries.detach().cpu().float().numpy() if hasattr(queries, "detach") else np.asarray(queries, dtype=np.float32)
        one = q.ndim == 1
        q2 = q.reshape(1, -1) if one else q

        def usable(c: Any, p: str) -> int:
            if not skip_mismatched:  # every value in the range is a candidate (or the call fails)
                return len(c.crange(p, limit=int(k), values=False, timeout=timeout).coords)
            vals = c.crange(p, timeout=timeout).values
            return sum(1 for v in vals if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size == q2.shape[1])

        def ask(c: Any, r: Any, p: str) -> tuple[np.ndarray, np.ndarray] | None:
            try:
                return c.cnearest_vectors(q2, int(k), p, metric=metric, skip_mismatched=skip_mismatched, timeout=timeout)
            except ParamError:
                n = usable(c, p)
                if n >= k:
                    raise  # not a matter of too few candidates
            return c.cnearest_vectors(q2, n, p, metric=metric, skip_mismatched=skip_mismatched, timeout=timeout) if n else None

        parts = [res for _, res in self._router.per_range(pattern_string(pattern), ask) if res]
        total = sum(p[1].shape[1] for p in parts)
        if total < k:
            raise ParamError("E_PARAM", f"CNEAREST: k = {k} but the range holds only {total} usable tensors")
        sign = 1.0 if metric == "l2" else -1.0  # cosine and ip: higher is nearer
        out, score = merge_nearest([(c, sign * s) for c, s in parts], int(k))
        score = (sign * score).astype(np.float32)
        return (out[0], score[0]) if one else (out, score)

    def chier(self, coord: Any, direction: str = "up", depth: int = 1, level: int = DIMS, *,
              timeout: float | None = None) -> list[dict[str, Any]]:
        """Ancestors or stored children with scroll counts, as one sidecar holding all the data
        would count them: a node below the root lies in one first component, so its owner
        answers; the root's children and count are each shard's own, summed."""
        if direction == "down" and level == 0:
            return merge_hier([nodes for _, nodes in self._router.per_shard(
                lambda c, s, t: _owned(c.chier(coord, direction, depth, level, timeout=timeout), s, t))], direction)
        nodes = self._one(coord, lambda c: c.chier(coord, direction, depth, level, timeout=timeout))
        for node in nodes:
            if node["level"] == 0:  # the root: every shard's own scrolls
                node["count"] = sum(n["count"] for n in self.chier(coord, "down", 1, 0, timeout=timeout))
        return nodes

    def cdelta(self, coords: Any, offset: Iterable[int], fetch: bool = False, *, timeout: float | None = None) -> Any:
        """Shift coordinates by ``offset`` (computed by any shard), fetching values from their owners."""
        # The shift itself reads no store: any shard computes it.
        shifted = self._router.client(self._router.addresses()[0]).cdelta(coords, offset, timeout=timeout)
        if not fetch:
            return shifted
        if _single(coords):
            return shifted, self.cget(shifted, timeout=timeout)
        v = self.cget_batch(shifted, timeout=timeout)
        return RangeResult(shifted, v.values, v.found, False)

    # -- on one shard -------------------------------------------------------------------------
    def run_program(self, steps: Program | Iterable[Any], *, at: Any, timeout: float | None = None) -> ProgramResult:
        """Run a program on the shard owning coordinate ``at``: its reads see that shard's
        data only and its writes outside the shard's ranges are refused (``OwnershipError``)."""
        return self._one(at, lambda c: c.run_program(steps, timeout=timeout))

    # -- phext --------------------------------------------------------------------------------
    def load_phext(self, path: str | Path, *, timeout: float | None = None) -> int:
        """Import a ``.phext`` file: each library range goes to its shard (atomic per shard)."""
        data = Path(path).read_bytes()
        pieces = list(_progress.split_phext_libraries(data))
        firsts = np.zeros((len(pieces), DIMS), np.uint32)
        firsts[:, 0] = [lib for lib, _ in pieces]

        def send(client: Any, idx: np.ndarray) -> int:
            return sum(int(client.request("PHEXT_IMPORT", {}, [pieces[i][1]], timeout=timeout)[0].get("written", 0)) for i in idx)

        return sum(n for _, n in self._router.scatter(firsts, send))

    def save_phext(self, path: str | Path, pattern: Any = ALL, *, timeout: float | None = None) -> str:
        """Export the scrolls matching ``pattern`` from every shard to one ``.phext`` file (the
        bytes one sidecar would write); returns its xxh3-128 checksum."""
        parts = self._router.per_range(pattern_string(pattern),
                                       lambda c, r, p: c.request("PHEXT_EXPORT", {"pattern": p}, timeout=timeout))
        pieces = [(res, bytes(frames[0]) if frames else b"") for _, (res, frames) in parts]
        data = join_phext([piece for _, piece in pieces])
        Path(path).write_bytes(data)
        filled = [res for res, piece in pieces if piece]
        if len(filled) <= 1:  # one shard's file is the whole file: its checksum is the file's
            return str(filled[0]["checksum"]) if filled else _checksum(path)
        return _checksum(path)
