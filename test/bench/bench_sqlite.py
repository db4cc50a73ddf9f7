"""CRANGE peer: SQLite (in memory) with an index on the constrained column, same data and patterns."""
from __future__ import annotations

import json
import sqlite3
import sys
import time

import numpy as np

import crange_data
from common import median


def run(path: str, repeats: int = 30) -> dict:
    coords = crange_data.load(path)
    db = sqlite3.connect(":memory:")
    cols = ", ".join(f"c{i} INTEGER" for i in range(9))
    db.execute(f"CREATE TABLE scrolls ({cols}, v BLOB)")
    value = bytes(16)
    db.executemany("INSERT INTO scrolls VALUES (?,?,?,?,?,?,?,?,?,?)",
                   ((*map(int, row), value) for row in coords))
    db.execute("CREATE INDEX by_c3 ON scrolls (c3)")
    order = ", ".join(f"c{i}" for i in range(9))
    out = {}
    for marker, count in crange_data.SELECT.items():
        q = f"SELECT {order}, v FROM scrolls WHERE c3 = ? ORDER BY {order}"
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = db.execute(q, (marker,)).fetchall()
            times.append(time.perf_counter() - t0)
        assert len(rows) == count, (marker, len(rows))
        out[str(count)] = {"median_us": median(times) * 1e6}
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1]), indent=1))
