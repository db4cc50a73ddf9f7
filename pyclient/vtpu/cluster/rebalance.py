"""Moving ranges between shards while clients keep writing.

A move of first components ``[lo, hi)`` from shard A to shard B:

1. **copy**: A syncs the range to B (CSYNC; B accepts it past its ownership check, as sync
   applies do) while A still owns it and clients keep writing there;
2. **hand over at A**: A gets table version v+1, in which B owns the range. From now on A
   refuses writes there (``E_SHARD``) and any request routed by v (``E_STALE``); clients read
   v+1 and send to B, which refuses them (``E_STALE``: it still has v) until step 4, so
   nothing is written to, or read from, the range while it is in flight;
3. **catch up**: A syncs the range to B again: the writes A acknowledged during the copy;
4. **hand over at B**, then the other shards: B serves the range;
5. **prune**: A deletes its copy.

Clients only see retries (``E_STALE`` re-routed by :class:`vtpu.cluster.fanout.Router`); no
acknowledged write is lost, because every write to the range before step 2 is on A and
reaches B in step 3, and every write after step 4 goes to B. A failure in step 3 or 4 (before
B takes over) rolls the move back: A owns the range again under the next version; B never
served it, so A holds every write.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import ParamError, PeerError
from .table import SPACE_END, Range

if TYPE_CHECKING:
    from .ray_cluster import Cluster

__all__ = ["move_range", "add_shard", "remove_shard", "split_point"]

_SYNC_BYTES = ("bytes_sent", "bytes_received")


def _ray() -> Any:
    import ray

    return ray


def move_range(cluster: "Cluster", lo: int, hi: int, dst: int) -> dict[str, Any]:
    """Move first components ``[lo, hi)`` (inside one range) to shard ``dst``; returns
    ``{range, src, dst, scrolls, bytes, seconds, version}``.

    Raises
    ------
    PeerError
        When a step before the destination took the range over failed: the move is rolled
        back (the source owns the range again, under a newer table version) and nothing
        written there is lost; the message says so.
    """
    t0 = time.perf_counter()
    table = cluster.route_table()
    src = table.owner([lo] + [0] * 8)
    if table.owner([hi - 1] + [0] * 8) != src or any(r.lo < hi and r.hi > lo and r.shard != src for r in table.ranges):
        raise ParamError("E_PARAM", f"[{lo}:{hi}) must lie inside ranges of one shard")
    if src == dst:
        raise ParamError("E_PARAM", f"[{lo}:{hi}) is already on shard {dst}")
    dst_address = cluster.call(dst, "address")
    pattern = Range(lo, hi, dst, None).pattern
    copy = cluster.call(src, "sync_to", dst_address, pattern)
    ranges = []
    for r in table.ranges:  # cut [lo, hi) out of its range and give it to dst
        for a_lo, a_hi, owner in ((r.lo, min(r.hi, lo), r.shard), (max(r.lo, lo), min(r.hi, hi), dst), (max(r.lo, hi), r.hi, r.shard)):
            if a_lo < a_hi:
                ranges.append(Range(a_lo, a_hi, owner, dst_address if owner == dst else r.address))
    new = table.replace(ranges)
    cluster._install(new, [src])
    try:
        catch_up = cluster.call(src, "sync_to", dst_address, pattern)
        for _ in range(3):  # quiescent now: one pass converges unless the peer failed mid-way
            if catch_up.get("converged"):
                break
            catch_up = cluster.call(src, "sync_to", dst_address, pattern)
        if not catch_up.get("converged"):
            raise PeerError("E_PEER", f"the sync of {pattern} from shard {src} to {dst} did not converge")
        cluster._install(new, [dst])  # dst serves the range from here on: no way back
    except Exception as e:
        raise _roll_back(cluster, table, new, src, dst, pattern, e) from e
    cluster._install(new, [s for s in new.shards if s not in (src, dst)])
    pruned = cluster.call(src, "prune")
    return {
        "range": [lo, hi], "src": src, "dst": dst, "version": new.version, "pruned": pruned,
        "scrolls": int(copy["scrolls_sent"]) + int(catch_up["scrolls_sent"]),
        "bytes": sum(int(s[k]) for s in (copy, catch_up) for k in _SYNC_BYTES),
        "seconds": time.perf_counter() - t0,
    }


def _roll_back(cluster: "Cluster", old: Any, new: Any, src: int, dst: int, pattern: str, why: Exception) -> PeerError:
    """Give the range back to ``src`` (which kept every write to it: ``dst`` never served it)
    under the version after ``new``; the error to raise."""
    back = new.replace(old.ranges)
    try:
        cluster._install(back, [src])
    except Exception as e:  # noqa: BLE001 - reported in the error: the range stays refused
        return PeerError("E_PEER", f"moving {pattern} from shard {src} to {dst} failed ({why}) and so did handing it back "
                                   f"({e}): the range is refused until it is moved")
    for s in back.shards:  # the others learn it when they can; meanwhile they refuse stale requests
        if s != src:
            try:
                cluster._install(back, [s])
            except Exception:  # noqa: BLE001 - a shard that is down installs it when asked next
                pass
    try:
        cluster.call(dst, "prune")  # its partial copy
    except Exception:  # noqa: BLE001 - the copy is never read (reads ask owners only)
        pass
    cluster._table = back
    return PeerError("E_PEER", f"moving {pattern} from shard {src} to {dst} failed ({why}); rolled back: shard {src} "
                               f"owns it again (route table version {back.version}), nothing written there is lost")


def split_point(counts: dict[int, int], lo: int, hi: int) -> int:
    """Where to cut ``[lo, hi)`` so that about half its scrolls move: the first component
    that has at least half of them below it (the middle of the keys when the data cannot
    be split).

    Raises
    ------
    ParamError
        When the range holds a single first component.
    """
    if hi - lo < 2:
        raise ParamError("E_PARAM", f"range [{lo}:{hi}) holds one first component: it cannot be split")
    keys = sorted(k for k in counts if lo <= k < hi)
    total = sum(counts[k] for k in keys)
    below = 0
    for k in keys:
        if k > lo and below * 2 >= total:
            return k
        below += counts[k]
    return lo + (min(hi, SPACE_END) - lo) // 2 if len(keys) < 2 else max(keys)


def add_shard(cluster: "Cluster") -> dict[str, Any]:
    """Start a shard and move to it the upper half (by scrolls) of the fullest shard's
    fullest range; returns the move's figures with ``shard``, the new id."""
    table = cluster.route_table()
    new_id = max(cluster._actors) + 1
    cluster._actors[new_id] = cluster._spawn(new_id)
    cluster.call(new_id, "address")
    cluster._install(table, [new_id])  # knows the table, owns nothing yet
    sizes = cluster.shard_sizes()
    src = max((s for s in table.shards), key=lambda s: sizes.get(s, 0))
    counts = cluster.call(src, "first_counts")
    ranges = [r for r in table.ranges if r.shard == src]
    best = max(ranges, key=lambda r: (sum(n for k, n in counts.items() if r.lo <= k < r.hi), r.hi - r.lo))
    cut = split_point(counts, best.lo, best.hi)
    return {"shard": new_id, **move_range(cluster, cut, best.hi, new_id)}


def remove_shard(cluster: "Cluster", shard: int) -> dict[str, Any]:
    """Move each range of ``shard`` to the shard owning the range before it (after it for
    the first) and stop it; returns the summed figures."""
    table = cluster.route_table()
    if shard not in table.shards:
        raise ParamError("E_PARAM", f"shard {shard} is not in the route table")
    if len(table.shards) == 1:
        raise ParamError("E_PARAM", "the last shard of a cluster cannot be removed")
    moves = []
    while True:
        table = cluster.route_table()
        mine = [i for i, r in enumerate(table.ranges) if r.shard == shard]
        if not mine:
            break
        i = mine[0]
        dst = table.ranges[i - 1].shard if i > 0 else table.ranges[i + 1].shard
        moves.append(move_range(cluster, table.ranges[i].lo, table.ranges[i].hi, dst))
    cluster.call(shard, "stop")
    _ray().kill(cluster._actors.pop(shard), no_restart=True)
    return {
        "shard": shard, "moves": moves, "scrolls": sum(m["scrolls"] for m in moves), "bytes": sum(m["bytes"] for m in moves),
        "seconds": sum(m["seconds"] for m in moves),
    }
