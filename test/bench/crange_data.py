"""The CRANGE data set, shared by the engine bench (JS) and the SQLite peer: 1,000,000
coordinates where component 3 equals 7, 8 or 9 on exactly 10, 100 and 1000 rows."""
from __future__ import annotations

import numpy as np

N = 1_000_000
SELECT = {7: 10, 8: 100, 9: 1000}


def pattern(marker: int) -> str:
    return f"*.*.*/{marker}.*.*/*.*.*"


def make(path: str, n: int = N, seed: int = 11) -> None:
    """Write n*9 little-endian uint32 (coords) to path; values are derived from the row id."""
    rng = np.random.default_rng(seed)
    coords = rng.integers(0, 1 << 20, size=(n, 9), dtype=np.uint32)
    coords[:, 8] = np.arange(n, dtype=np.uint32)
    coords[:, 3] = rng.integers(10, 1 << 20, size=n, dtype=np.uint32)
    rows = rng.permutation(n)
    start = 0
    for marker, count in SELECT.items():
        coords[rows[start:start + count], 3] = marker
        start += count
    coords.astype("<u4").tofile(path)


def load(path: str) -> np.ndarray:
    return np.fromfile(path, dtype="<u4").reshape(-1, 9)
