"""The doorbell: CEXPERTS runs through a region of a connection's shared-memory link, not the socket.

Experts runs (:meth:`Bell.run`) and dense-layer runs (:meth:`Bell.run_dense`, ``k`` 0 on the wire).

A decode step of a hooked MoE model makes one experts call per layer; through ZeroMQ each costs
1–2 ms beyond the kernel on a small VM (encoding, the I/O threads of both sides, the sidecar's
event loop). With a bell the client writes x and the routing into its ``.in`` arena, wakes the
sidecar's bell thread with a futex, and sleeps on another until y is there: two wake-ups.

``protocol.json``'s ``bell`` is the region's layout (shared with native/experts_bell_answer.h). A
run the bell does not answer (a layer it does not hold: not on a native kernel, not complete; an
expert id out of range; a region too small) comes back as ``None`` and the caller sends it through
the socket, which validates it and raises the typed error. Linux on x86-64 only (futexes, and the
stores of both sides seen in program order); elsewhere :func:`supported` is false.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import platform
import sys
import time
from typing import Any, Callable

import numpy as np

from .errors import TimeoutError, VtpuError
from .protocol import SCHEMA

__all__ = ["Bell", "supported", "BELL_BYTES"]

_L = SCHEMA["bell"]
_W = _L["words"]
_DATA = int(_L["data"])
#: Bytes of a link's ``.in`` arena kept for its bell: at width 2048 and top-8, runs of up to ~60 tokens;
#: a dense run of one row into up to ~260,000 outputs (an lm_head's vocabulary).
BELL_BYTES = 1 << 20
_TICK = 0.25  # longest blind wait (the caller re-checks the sidecar and the client)
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # not private: the word is shared with another process

_sys_futex = 202 if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64") else None
if _sys_futex is not None:
    _syscall = ctypes.CDLL(None, use_errno=True).syscall
    _syscall.restype = ctypes.c_long


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def supported() -> bool:
    """True where this client can ring a bell (Linux on x86-64)."""
    return _sys_futex is not None


def _align64(n: int) -> int:
    return (n + 63) & ~63


class Bell:
    """One link's bell: a region of its ``.in`` arena and the sidecar thread that answers it.

    Used by one thread at a time (the transport's per-thread connection holds it).
    """

    def __init__(self, mem: mmap.mmap, offset: int, length: int) -> None:
        self.offset, self.length = offset, length
        self._bytes = np.frombuffer(mem, np.uint8, length, offset)
        self._words = self._bytes[:_DATA].view(np.uint32)
        self._addr = self._bytes.ctypes.data
        self._words[:] = 0
        self._words[_W["magic"]] = int(_L["magic"])
        self._seq = 0
        self._views: dict[tuple[int, int, int], tuple[Any, ...]] = {}
        #: Why the last run was not answered (``protocol.json`` bell.why), 0 when it was.
        self.last_why = 0

    @classmethod
    def open(cls, mem: mmap.mmap, offset: int, length: int, request: Callable[[dict[str, Any]], dict[str, Any]]) -> "Bell":
        """Lay out the region at ``offset`` of the arena ``mem`` and ask the sidecar to answer it
        (``request`` sends SHM ``bell`` params). Raises what the request raises."""
        bell = cls(mem, offset, length)
        res = request({"mode": "bell", "offset": offset, "length": length})
        if res.get("words") != _W or res.get("data") != _DATA or res.get("magic") != _L["magic"]:
            raise ValueError(f"the sidecar's bell layout {res!r} is not this client's")
        return bell

    @classmethod
    def on_link(cls, link: Any, request: Callable[[dict[str, Any]], dict[str, Any]]) -> "Bell | bool":
        """A bell in a region :meth:`vtpu.shm.Link.keep` gives, or False: the arena is full or the
        sidecar has no bell (old, no addon). ``request`` sends SHM params on the link's connection."""
        mem, off = link.keep(BELL_BYTES)
        if off < 0:
            return False
        try:
            return cls.open(mem, off, BELL_BYTES, request)
        except VtpuError:  # refused: no bell watches the region, it may hold bodies again
            link.release([off])
            return False
        except ValueError:  # a bell of another layout watches it: the region stays out of use
            return False

    def _layout(self, T: int, H: int, k: int) -> tuple[Any, ...] | None:
        key = (T, H, k)
        v = self._views.get(key)
        if v is None:
            io = _DATA + 4 * T * H
            wo = io + 4 * T * k
            yo = _align64(wo + 4 * T * k)
            co = yo + 4 * T * H
            if co > self.length or T > int(_L["max_rows"]):
                return None
            b = self._bytes
            v = (b[_DATA:io].view(np.float32).reshape(T, H), b[io:wo].view(np.int32).reshape(T, k),
                 b[wo : wo + 4 * T * k].view(np.float32).reshape(T, k), b[yo:co].view(np.float32).reshape(T, H), co)
            if len(self._views) > 64:
                self._views.clear()
            self._views[key] = v
        return v

    def run(self, layer: int, x: np.ndarray, ids: np.ndarray, weights: np.ndarray, deadline: float,
            check: Callable[[], None]) -> tuple[np.ndarray, np.ndarray, float] | None:
        """``(y, counts, elapsed_ms)`` of one run, or ``None``: send it through the socket.

        ``x`` (T, H) float32, ``ids`` (T, k) int32, ``weights`` (T, k) float32. ``check`` is
        called after each whole tick without an answer and raises when the client closed, the sidecar died or
        no longer holds the link; past ``deadline`` this raises TimeoutError and the bell must not
        be used again (the sidecar may still write into the region).
        """
        T, H = x.shape
        k = ids.shape[1]
        v = self._layout(T, H, k)
        if v is None:
            self.last_why = 3
            return None
        xv, iv, wv, yv, co = v
        xv[...] = x
        iv[...] = ids
        wv[...] = weights
        if not self._ring(layer, T, k, H, deadline, check):
            return None
        E = int(self._words[_W["E"]])
        counts = self._bytes[co : co + 4 * E].view(np.int32).astype(np.int64)
        return yv.copy(), counts, int(self._words[_W["us"]]) / 1000.0

    def run_dense(self, layer: int, x: np.ndarray, n_out: int, deadline: float, check: Callable[[], None]) -> np.ndarray | None:
        """``y`` (T, ``n_out``) float32 of a dense layer's run (``k`` 0 on the wire), or ``None`` as :meth:`run`."""
        T, K = x.shape
        yo = _align64(_DATA + 4 * T * K)
        if yo + 4 * T * n_out > self.length or T > int(_L["max_rows"]):
            self.last_why = 3
            return None
        self._bytes[_DATA : _DATA + 4 * T * K].view(np.float32).reshape(T, K)[...] = x
        if not self._ring(layer, T, 0, K, deadline, check):
            return None
        if int(self._words[_W["E"]]) != n_out:  # the layer's N is not the caller's: the socket says why
            self.last_why = 2
            return None
        return self._bytes[yo : yo + 4 * T * n_out].view(np.float32).reshape(T, n_out).copy()

    def _ring(self, layer: int, T: int, k: int, H: int, deadline: float, check: Callable[[], None]) -> bool:
        """Announce the request whose data is in place, wait for the answer; True when answered."""
        w = self._words
        w[_W["layer"]], w[_W["T"]], w[_W["k"]], w[_W["H"]] = layer, T, k, H
        seq = (self._seq + 1) & 0xFFFFFFFF
        self._seq = seq
        w[_W["seq"]] = seq  # after everything it announces (x86-64 keeps stores in order)
        _syscall(_sys_futex, ctypes.c_void_p(self._addr + 4 * _W["seq"]), _FUTEX_WAKE, 1, None, None, 0)
        done_at = ctypes.c_void_p(self._addr + 4 * _W["done"])
        ts = _Timespec(0, 0)
        while True:
            now = int(w[_W["done"]])
            if now == seq:
                break
            rem = deadline - time.monotonic()
            if rem <= 0:
                raise TimeoutError("E_TIMEOUT", f"CEXPERTS: the sidecar's bell did not answer layer {layer} in time")
            wait = min(rem, _TICK)
            ts.tv_sec, ts.tv_nsec = int(wait), int((wait % 1.0) * 1e9)
            if _syscall(_sys_futex, done_at, _FUTEX_WAIT, ctypes.c_uint32(now), ctypes.byref(ts), None, 0) and ctypes.get_errno() == errno.ETIMEDOUT:
                check()  # a whole tick without an answer
        self.last_why = int(w[_W["why"]])
        return w[_W["status"]] == 0
