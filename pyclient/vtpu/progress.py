"""Progress bars for long client operations, and the phext splitter that makes imports chunkable.

A bar is ``tqdm`` when it is installed (``pip install vtpu[notebook]``); without it a small
text bar is printed to stderr instead, so the ``progress=`` flags always work.
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any, Iterator

from ._schema import SCHEMA

__all__ = ["progress_bar", "split_phext"]

# Break byte per coordinate component, library (0) .. scroll (8): protocol.json's `phext`.
BREAK_BYTES: tuple[int, ...] = tuple(SCHEMA["phext"]["breaks"])
_LEVEL = {b: i for i, b in enumerate(BREAK_BYTES)}
_BREAK = re.compile(b"[" + b"".join(re.escape(bytes([b])) for b in BREAK_BYTES) + b"]")


class _TextBar:
    """A minimal stand-in for tqdm: ``desc: 40% 4/10 unit`` lines on stderr, at most 4 per second."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self._last = 0.0

    def update(self, n: int) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= 0.25 or self.n >= self.total:
            self._last = now
            pct = 100.0 * self.n / self.total if self.total else 100.0
            sys.stderr.write(f"\r{self.desc}: {pct:5.1f}% {self.n}/{self.total} {self.unit}")
            sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()

    def __enter__(self) -> "_TextBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, desc: str, unit: str = "it", *, enabled: bool = True) -> Any:
    """A context-managed bar with ``update(n)``: tqdm (notebook-aware) when installed, else text.

    ``enabled=False`` returns a bar that shows nothing.
    """
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total, desc, unit)
    scale = unit == "B"
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000)


class _Silent:
    def update(self, n: int) -> None:
        pass

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _prefix(coord: list[int]) -> bytes:
    """Breaks that move a reader from 1.1.1/1.1.1/1.1.1 to ``coord`` (highest level first)."""
    return b"".join(bytes([BREAK_BYTES[level]]) * (coord[level] - 1) for level in range(9))


def split_phext(data: bytes, chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Split a phext file into self-contained pieces of about ``chunk_bytes`` each.

    Cuts fall on break bytes only; each later piece starts with the breaks that lead from
    1.1.1/1.1.1/1.1.1 to the coordinate where it was cut, so importing the pieces one by one
    stores exactly the scrolls the whole file would. Yields ``(piece, source_bytes)``, where
    ``source_bytes`` is how much of ``data`` the piece covers (for progress).
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be >= 1")
    cur = [1] * 9
    start, start_coord = 0, [1] * 9
    for m in _BREAK.finditer(data):
        p = m.start()
        if p - start >= chunk_bytes:
            yield _prefix(start_coord) + data[start:p], p - start
            start, start_coord = p, list(cur)
        level = _LEVEL[data[p]]
        cur[level] += 1
        for lower in range(level + 1, 9):
            cur[lower] = 1
    yield _prefix(start_coord) + data[start:], len(data) - start


def split_phext_libraries(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Split a phext file into one self-contained piece per library (first component).

    Yields ``(library, piece)``; each piece starts with the breaks that lead from
    1.1.1/1.1.1/1.1.1 to its library, so importing the pieces anywhere, in any grouping,
    stores exactly the scrolls the whole file would (a cluster sends each to its owner).
    """
    library, start = 1, 0
    for m in _BREAK.finditer(data):
        p = m.start()
        if _LEVEL[data[p]] != 0:
            continue
        if p > start:
            yield library, _prefix([library] + [1] * 8) + data[start:p]
        library, start = library + 1, p + 1
    if len(data) > start:
        yield library, _prefix([library] + [1] * 8) + data[start:]
