"""The cluster's route table: which shard owns which range of the first coordinate component.

Ownership is by ranges of the **first component**: shard ``s`` owns every coordinate whose
first component lies in one of its ranges ``[lo, hi)``. Why that key:

- a CRANGE or CNEAREST whose first component is fixed or bounded (a KV-cache layer, a phext
  library, a knowledge-graph entity type) goes to the one or few shards owning it;
- ranges of the first component are ranges of coordinate order, so the fan-out's
  coordinate-order merge is a concatenation of per-range answers in table order;
- each range is one pattern, ``[lo:hi].*.*/*.*.*/*.*.*``, so moving it is one CSYNC;
- :meth:`RouteTable.split` cuts at the data's median, so ranges follow real layouts.

The price: all scrolls sharing a first component live on one shard. A layout whose first
component takes few values spreads over at most that many shards; lead with the component
of high cardinality (``Layout("pos.layer.head/...")`` rather than ``"layer.head.pos"`` when
there are few layers and many shards).

The sidecars hold the same table in CROUTE (``engine/routes.ts``), in coordinate form.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..coords import DIMS, coords_array, pattern_bounds
from ..errors import ParamError

__all__ = ["RouteTable", "Range", "SPACE_END"]

#: One past the largest component (2**32).
SPACE_END = 1 << 32


@dataclass(frozen=True)
class Range:
    """One row: first components ``[lo, hi)`` owned by ``shard`` at ``address``."""

    lo: int
    hi: int
    shard: int
    address: str | None

    @property
    def pattern(self) -> str:
        """The pattern naming exactly this range."""
        hi = "" if self.hi == SPACE_END else str(self.hi)
        return f"[{self.lo}:{hi}].*.*/*.*.*/*.*.*"


def _coord_text(first: int) -> str:
    return f"{first}.0.0/0.0.0/0.0.0"


class RouteTable:
    """A versioned, gap-free list of first-component ranges, each owned by one shard.

    Parameters
    ----------
    ranges : sequence of Range
        Sorted, starting at 0, each ``hi`` the next ``lo``, the last ending at 2**32.
    version : int
        Bumped by every change; shards refuse requests routed by another version.

    Raises
    ------
    ParamError
        When the ranges leave a gap, overlap, or do not cover the space.
    """

    def __init__(self, ranges: Sequence[Range], version: int = 1) -> None:
        rs = list(ranges)
        if not rs or rs[0].lo != 0 or rs[-1].hi != SPACE_END:
            raise ParamError("E_PARAM", "a route table covers first components 0 .. 2**32 from its first range to its last")
        for a, b in zip(rs, rs[1:]):
            if a.hi != b.lo or not a.lo < a.hi:
                raise ParamError("E_PARAM", f"route table ranges must be ordered without gaps: [{a.lo}:{a.hi}) then [{b.lo}:{b.hi})")
        if not rs[-1].lo < rs[-1].hi:
            raise ParamError("E_PARAM", "a route table range must not be empty")
        self.ranges: tuple[Range, ...] = tuple(rs)
        self.version = int(version)
        self._starts = np.array([r.lo for r in rs], dtype=np.int64)
        self._start_list = [r.lo for r in rs]
        self._shards = np.array([r.shard for r in rs], dtype=np.int64)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def even(cls, addresses: Sequence[str], key_span: int = 1000, version: int = 1) -> "RouteTable":
        """Shard ``i`` of ``n`` owns first components ``[i*key_span/n, (i+1)*key_span/n)``; the
        last shard also owns everything from ``key_span`` up."""
        n = len(addresses)
        if n < 1:
            raise ParamError("E_PARAM", "a cluster needs at least one shard")
        if not isinstance(key_span, int) or key_span < n or key_span > SPACE_END:
            raise ParamError("E_PARAM", f"key_span must be an int from the shard count ({n}) to 2**32, got {key_span!r}")
        cuts = [i * key_span // n for i in range(n)] + [SPACE_END]
        return cls([Range(cuts[i], cuts[i + 1], i, addresses[i]) for i in range(n)], version)

    @classmethod
    def from_wire(cls, rows: Iterable[dict[str, Any]], version: int) -> "RouteTable":
        """The table a shard's CROUTE returns (its ``table`` and ``version``).

        Raises
        ------
        ParamError
            When a boundary is not of the form ``n.0.0/0.0.0/0.0.0`` (a table not made by a cluster).
        """
        ranges = []
        for row in rows:
            lo = _first_of(row["start"])
            hi = SPACE_END if row.get("end") is None else _first_of(row["end"])
            ranges.append(Range(lo, hi, int(row["shard"]), row.get("address")))
        return cls(ranges, version)

    def to_wire(self) -> list[dict[str, Any]]:
        """Rows for CROUTE ``{table}``."""
        return [
            {"start": _coord_text(r.lo), "end": None if r.hi == SPACE_END else _coord_text(r.hi), "shard": r.shard, "address": r.address}
            for r in self.ranges
        ]

    def replace(self, ranges: Sequence[Range]) -> "RouteTable":
        """A new table with ``ranges`` (neighbours of one shard merged) and the next version."""
        merged: list[Range] = []
        for r in ranges:
            if merged and merged[-1].shard == r.shard and merged[-1].hi == r.lo:
                merged[-1] = Range(merged[-1].lo, r.hi, r.shard, r.address)
            else:
                merged.append(r)
        return RouteTable(merged, self.version + 1)

    def with_address(self, shard: int, address: str) -> "RouteTable":
        """The next version, with ``shard`` reached at ``address``."""
        return self.replace([Range(r.lo, r.hi, r.shard, address if r.shard == shard else r.address) for r in self.ranges])

    # -- reading ----------------------------------------------------------------------------
    @property
    def shards(self) -> list[int]:
        """Shard ids owning at least one range, ascending."""
        return sorted({r.shard for r in self.ranges})

    def address(self, shard: int) -> str:
        """Where ``shard`` listens (E_PARAM when the table does not name it)."""
        for r in self.ranges:
            if r.shard == shard and r.address:
                return r.address
        raise ParamError("E_PARAM", f"route table version {self.version} has no address for shard {shard}")

    def owners(self, coords: np.ndarray) -> np.ndarray:
        """Owning shard per row of an ``(N, 9)`` coordinate array."""
        c = coords_array(coords)
        idx = np.searchsorted(self._starts, c[:, 0].astype(np.int64), side="right") - 1
        return self._shards[idx]

    def owner(self, coord: Any) -> int:
        """Owning shard of one coordinate."""
        return self.owner_of_first(_first_component(coord))

    def owner_of_first(self, first: int) -> int:
        """Owning shard of first component ``first`` (no numpy: the single-coordinate path)."""
        return self.ranges[bisect_right(self._start_list, first) - 1].shard

    def ranges_for(self, pattern: str) -> list[tuple[Range, str]]:
        """``(range, pattern clipped to it)`` for each range the pattern reaches, in table
        (= coordinate) order."""
        lo, hi = pattern_bounds(pattern)
        parts = _components(pattern)
        out = []
        for r in self.ranges:
            a, b = max(lo[0], r.lo), min(hi[0], r.hi)
            if a >= b:
                continue
            first = str(a) if b == a + 1 else (f"[{a}:]" if b == SPACE_END else f"[{a}:{b}]")
            out.append((r, _join([first, *parts[1:]])))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RouteTable) and other.version == self.version and other.ranges == self.ranges

    def __repr__(self) -> str:
        rows = ", ".join(f"[{r.lo}:{r.hi})→{r.shard}" for r in self.ranges)
        return f"<RouteTable v{self.version} {rows}>"


def _first_component(coord: Any) -> int:
    """The first component of one coordinate (a string, 9 integers or a (9,) array), checked."""
    if isinstance(coord, str):
        head = coord.split(".", 1)[0]
        if head.isdigit() and int(head) < SPACE_END:
            return int(head)
    elif isinstance(coord, (list, tuple)) and coord and isinstance(coord[0], int) and 0 <= coord[0] < SPACE_END:
        return int(coord[0])
    return int(coords_array(coord)[0, 0])  # validates (CoordinateError), arrays and the rest


def _first_of(text: str) -> int:
    c = coords_array(text)[0]
    if np.any(c[1:] != 0):
        raise ParamError("E_PARAM", f"cluster route boundaries are n.0.0/0.0.0/0.0.0, got {text}")
    return int(c[0])


def _components(pattern: str) -> list[str]:
    parts = [q for g in pattern.split("/") for q in g.split(".")]
    assert len(parts) == DIMS  # pattern_bounds validated it
    return parts


def _join(parts: Sequence[str]) -> str:
    return "/".join(".".join(parts[i : i + 3]) for i in (0, 3, 6))
