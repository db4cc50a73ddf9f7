"""CRANGE peer: SQLite (in memory), same data and patterns, with the index a SQLite user would
build for this query: the constrained column first, then the nine columns of the ORDER BY, so the
rows come out of the index already in order (no sort step; the plan is kept in the result to show it).
Timed through Python's sqlite3 (the statement stepped and every row fetched as a tuple)."""
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
    order = ", ".join(f"c{i}" for i in range(9))
    rest = ", ".join(f"c{i}" for i in range(9) if i != 3)  # c3 is fixed by the WHERE: the rest orders
    db.execute(f"CREATE INDEX by_c3_ordered ON scrolls (c3, {rest})")
    out: dict = {}
    for marker, count in crange_data.SELECT.items():
        q = f"SELECT {order}, v FROM scrolls WHERE c3 = ? ORDER BY {order}"
        db.execute(q, (marker,)).fetchall()  # warm, as the vTPU figures beside it: a first query untimed
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = db.execute(q, (marker,)).fetchall()
            times.append(time.perf_counter() - t0)
        assert len(rows) == count, (marker, len(rows))
        plan = " / ".join(r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + q, (marker,)))
        out[str(count)] = {"median_us": median(times) * 1e6, "rounds_us": [t * 1e6 for t in times], "plan": plan}
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1]), indent=1))
