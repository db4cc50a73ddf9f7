"""CSYNC between two sidecars: 1,000,000 scrolls (--quick: 20,000) of 100-byte values, 100
changed on each side, synced with range hashes; beside it the peer, sending the whole range
(CRANGE from one sidecar, batched CPUT into a third), on the same data in the same run.

Figures per round (median over rounds): sync wall time as the client sees it, the bytes the
sync put on the wire between the sidecars (hash exchange and scroll data), the whole-range
transfer's time and bytes (the Arrow bodies read and written). Each side's hash tree is built
once (one xxh3 pass over the range, before the rounds) and then patched with the written
scrolls, so each sync figure includes re-digesting the changed scrolls, not the range.

Usage: python test/bench/bench_sync.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import vtpu
from common import median
from report_common import at_least, ratio_rounds

ALL = "*.*.*/*.*.*/*.*.*"
VALUE = 100
CHANGES = 100


def _grid(n: int) -> np.ndarray:
    c = np.ones((n, 9), np.uint32)
    c[:, 6] = np.arange(n) // 1000 + 1
    c[:, 7] = np.arange(n) // 1_000_000 + 1
    c[:, 8] = np.arange(n) % 1000 + 1
    return c


def _whole_range(src: vtpu.Client, dst: vtpu.Client) -> tuple[float, int]:
    """Sends the whole range src → dst the plain way; returns (seconds, Arrow bytes moved)."""
    t0 = time.perf_counter()
    res, frames = src.request("CRANGE", {"pattern": ALL})
    dst.request("CPUT", {"batch": True}, [frames[0]])
    return time.perf_counter() - t0, 2 * len(frames[0])


def run(quick: bool = False, rounds: int | None = None) -> dict:
    n = 20_000 if quick else 1_000_000
    rounds = rounds or (2 if quick else 3)
    rng = np.random.default_rng(3)
    coords = _grid(n)
    vals = rng.integers(0, 256, (n, VALUE), dtype=np.uint8)
    out: dict = {"scrolls": n, "value_bytes": VALUE, "changes_per_side": CHANGES, "rounds": rounds}
    # The whole-range peer writes into a third sidecar, so it does not disturb b's hash tree.
    with vtpu.Sidecar() as sa, vtpu.Sidecar() as sb, vtpu.Sidecar() as sc:
        with vtpu.connect(sa.address, timeout=600) as a, vtpu.connect(sb.address, timeout=600) as b, vtpu.connect(
            sc.address, timeout=600
        ) as c_:
            for c in (a, b):
                for i in range(0, n, 200_000):
                    c.cput_batch(coords[i : i + 200_000], vals[i : i + 200_000], kind="bytes")
            assert a.sync(sb.address, ALL, peer_timeout=120)["converged"]
            syncs, full = [], []
            for r in range(rounds):
                picks = rng.choice(n, 2 * CHANGES, replace=False)
                for client, idx in ((a, picks[:CHANGES]), (b, picks[CHANGES:])):
                    v = vals[idx].copy()
                    v[:, r % VALUE] ^= 0xFF
                    client.cput_batch(coords[idx], v, kind="bytes")
                t0 = time.perf_counter()
                st = a.sync(sb.address, ALL, peer_timeout=120)
                st["wall_s"] = time.perf_counter() - t0
                if not st["converged"] or a.range_hash(ALL)["root"] != b.range_hash(ALL)["root"]:
                    raise RuntimeError(f"sync did not converge: {st}")
                syncs.append(st)
                full.append(_whole_range(a, c_))
    out["sync"] = {
        "wall_s": median([s["wall_s"] for s in syncs]),
        "wall_rounds_s": [s["wall_s"] for s in syncs],
        "bytes": median([s["bytes_sent"] + s["bytes_received"] for s in syncs]),
        "hash_bytes": median([s["hash_bytes"] for s in syncs]),
        "data_bytes": median([s["data_bytes"] for s in syncs]),
        "rounds_trips": median([s["rounds"] for s in syncs]),
        "ranges_compared": median([s["ranges_compared"] for s in syncs]),
        "scrolls_moved": median([s["scrolls_sent"] + s["scrolls_received"] for s in syncs]),
    }
    out["whole_range"] = {"wall_s": median([f[0] for f in full]), "wall_rounds_s": [f[0] for f in full],
                          "bytes": median([f[1] for f in full])}
    out["changed_payload_bytes"] = 2 * CHANGES * (VALUE + 36)
    return out


def render(r: dict) -> list[str]:
    s, w = r["sync"], r["whole_range"]
    byte_ratio = w["bytes"] / s["bytes"]
    time_ratio = w["wall_s"] / s["wall_s"]
    speedups = ratio_rounds(s.get("wall_rounds_s", [s["wall_s"]]), w.get("wall_rounds_s", [w["wall_s"]]), higher_is_better=False)
    data_ok = s["data_bytes"] <= 3 * r["changed_payload_bytes"]
    lines = [
        f"## CSYNC: {r['scrolls']:,} scrolls, {r['changes_per_side']} changed on each side",
        f"Peer: sending the whole range ({r['value_bytes']}-byte values; `CRANGE` from one sidecar, batched `CPUT` into "
        f"another, Arrow bytes read plus written). Sync: range-hash descent between the two sidecars, then only the "
        f"differing scrolls, both ways. Median of {r['rounds']} rounds; each sync includes patching both hash trees "
        "with the writes.",
        "",
        "| figure | vTPU | peer | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| bytes on the wire | {s['bytes']:,.0f} | {w['bytes']:,.0f} | {byte_ratio:,.0f}× fewer | ≥ 100× fewer | "
        f"{'yes' if byte_ratio >= 100 else '**no**'} |",
        f"| time | {s['wall_s'] * 1000:,.0f} ms | {w['wall_s'] * 1000:,.0f} ms | {time_ratio:.1f}× faster | faster | "
        f"{at_least(speedups, 1.0, lambda lo, hi: f'{lo:.1f}–{hi:.1f}× over the rounds')} |",
        f"| scroll data vs changed payload | {s['data_bytes']:,.0f} | {r['changed_payload_bytes']:,} | "
        f"{s['data_bytes'] / r['changed_payload_bytes']:.2f}× | ≤ 3× | {'yes' if data_ok else '**no**'} |",
        "",
        f"Hash exchange {s['hash_bytes']:,.0f} bytes in {s['rounds_trips']:.0f} round trips, {s['ranges_compared']:,.0f} "
        f"ranges compared, {s['scrolls_moved']:.0f} scrolls moved.",
        "",
    ]
    if max(speedups) <= 1:
        lines += ["**Miss:** the sync was not faster than sending the whole range in this run: its fixed cost "
                  "(about ten peer round trips, each side's 16⁵-leaf tree walked level by level) exceeds copying a "
                  "range this small.", ""]
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=ap.parse_args().quick), indent=1))
