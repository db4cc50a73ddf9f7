"""CRANGE end to end from Python on the CRANGE data set (crange_data.py): the figure timed the
same way as the SQLite peer (bench_sqlite.py) — a call from Python that returns every selected
row — so the two can be set side by side. Values are 16 zero bytes, as in SQLite's table."""
from __future__ import annotations

import json
import sys
import time

import numpy as np

import crange_data
import vtpu
from common import child, ipc_address, median

LOAD_CHUNK = 100_000


def run(path: str, repeats: int = 30) -> dict:
    coords = crange_data.load(path)
    values = np.zeros((len(coords), 16), np.uint8)
    addr = ipc_address("crange")
    out: dict = {}
    with child(["node", "bin/vtpu.js", "serve", "--address", addr], "vtpu sidecar listening"):
        with vtpu.connect(addr, timeout=600) as client:
            for i in range(0, len(coords), LOAD_CHUNK):
                client.cput_batch(coords[i:i + LOAD_CHUNK], values[i:i + LOAD_CHUNK], kind="bytes")
            for marker, count in crange_data.SELECT.items():
                pattern = crange_data.pattern(marker)
                client.crange(pattern)  # the first range query after a load builds the index: not timed
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    res = client.crange(pattern)
                    times.append(time.perf_counter() - t0)
                    if len(res.coords) != count:
                        raise RuntimeError(f"CRANGE {pattern}: {len(res.coords)} rows, expected {count}")
                out[str(count)] = {"median_us": median(times) * 1e6, "rounds_us": [t * 1e6 for t in times]}
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], repeats=5), indent=1))
