"""Request/reply over one ZeroMQ DEALER socket, safe for concurrent callers.

No background thread: every socket access holds one lock (ZeroMQ sockets are not
thread-safe), a sender drains whatever replies are already waiting, and one caller at a
time -- the *leader*, holding the receive lock -- blocks on the socket's file descriptor
for replies and hands each to its waiter by id. The others wait on their own event; when
the leader's reply arrives it steps down and wakes a waiter to take over.

A timeout closes and recreates the socket: requests still queued are dropped (their
callers get :class:`~vtpu.TimeoutError` at once) and the next request reconnects.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import threading
import time
import weakref
from typing import Any, Callable, Sequence

import zmq

from .errors import SidecarError, TimeoutError, VtpuError, error_from_wire
from .protocol import VERSION

__all__ = ["Transport"]

_COPY_THRESHOLD = 65536
_TICK = 0.25  # longest blind wait: how often a waiter re-checks the sidecar and deadline


class _Slot:
    __slots__ = ("event", "done", "header", "frames", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.done = False
        self.header: dict[str, Any] | None = None
        self.frames: list[Any] = []
        self.error: BaseException | None = None


class Transport:
    """A DEALER connection to a sidecar.

    Parameters
    ----------
    address : str
        ZeroMQ endpoint (``ipc://...`` or ``tcp://host:port``).
    timeout : float
        Default seconds to wait for a reply.
    watch : callable, optional
        Returns a :class:`SidecarError` when the sidecar is known to be dead (an owned
        process that exited), else ``None``; polled while waiting.
    """

    def __init__(self, address: str, timeout: float, watch: Callable[[], VtpuError | None] | None = None) -> None:
        self.address = address
        self.timeout = float(timeout)
        self._watch = watch
        self._ctx = zmq.Context.instance()
        self._io = threading.Lock()
        self._recv = threading.Lock()
        self._pending: dict[int, _Slot] = {}
        self._ids = itertools.count(1)
        self._leader: _Slot | None = None
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._fds = weakref.finalize(self, _close_fds, self._wake_r, self._wake_w)
        self._sock = self._new_socket()

    # -- socket lifecycle (callers hold self._io) ------------------------------------------
    def _new_socket(self) -> zmq.Socket:
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)
        s.connect(self.address)
        return s

    def _fail_all(self, make_error: Callable[[_Slot], BaseException]) -> None:
        for slot in list(self._pending.values()):
            if not slot.done:
                slot.error = make_error(slot)
                slot.done = True
                slot.event.set()
        self._pending.clear()
        self._wake()

    def _reset(self, make_error: Callable[[_Slot], BaseException]) -> None:
        self._sock.close(linger=0)
        self._fail_all(make_error)
        if not self._closed:
            self._sock = self._new_socket()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Close the socket; pending and later requests raise ``SidecarError`` (E_CLOSED)."""
        with self._io:
            if self._closed:
                return
            self._closed = True
            self._reset(lambda s: SidecarError("E_CLOSED", "the client was closed"))

    # -- requests -------------------------------------------------------------------------
    def request(
        self, op: str, params: dict[str, Any], bodies: Sequence[Any] = (), timeout: float | None = None
    ) -> tuple[dict[str, Any], list[Any]]:
        """Send one request and wait for its reply.

        Returns
        -------
        (dict, list)
            The reply's ``result`` object and its body frames (buffers).

        Raises
        ------
        VtpuError
            The class :func:`error_from_wire` maps the reply's error code to.
        TimeoutError
            No reply within ``timeout`` seconds (client default when ``None``).
        SidecarError
            The client is closed or the sidecar exited.
        """
        limit = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        rid = next(self._ids)
        head = json.dumps({"v": VERSION, "id": rid, "op": op, "params": params}, separators=(",", ":"))
        slot = _Slot()
        try:
            self._send(rid, slot, [head.encode("utf-8"), *bodies], deadline, op, limit)
            self._wait(slot, deadline, op, limit)
        finally:
            self._pending.pop(rid, None)
        if slot.error is not None:
            raise slot.error
        h = slot.header or {}
        if not h.get("ok", False):
            err = h.get("error") or {}
            raise error_from_wire(err.get("code", "E_INTERNAL"), err.get("message", "error reply without a message"))
        return h.get("result") or {}, slot.frames

    def _send(self, rid: int, slot: _Slot, frames: list[Any], deadline: float, op: str, limit: float) -> None:
        pause = 0.0005
        while True:
            with self._io:
                if self._closed:
                    raise SidecarError("E_CLOSED", "the client is closed")
                sock = self._sock
                try:
                    sock.send(frames[0], zmq.NOBLOCK | (zmq.SNDMORE if len(frames) > 1 else 0))
                except zmq.Again:
                    pass
                else:
                    self._pending[rid] = slot
                    for i, f in enumerate(frames[1:], 2):
                        more = zmq.SNDMORE if i < len(frames) else 0
                        sock.send(f, more, copy=len(memoryview(f)) < _COPY_THRESHOLD)
                    self._drain(sock)
                    return
            err = self._watch() if self._watch else None
            if err is not None:
                raise err
            if time.monotonic() >= deadline:
                raise TimeoutError("E_TIMEOUT", f"{op}: no sidecar accepted the request at {self.address} in {limit:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _wait(self, slot: _Slot, deadline: float, op: str, limit: float) -> None:
        while not slot.done:
            now = time.monotonic()
            if now >= deadline:
                self._timed_out(slot, op, limit)
                return
            if self._recv.acquire(blocking=False):
                self._leader = slot
                try:
                    self._lead(slot, deadline)
                finally:
                    self._leader = None
                    self._recv.release()
                    self._handoff()
            else:
                slot.event.wait(min(deadline - now, _TICK))
                slot.event.clear()

    def _lead(self, slot: _Slot, deadline: float) -> None:
        while not slot.done:
            with self._io:
                if self._closed:
                    return
                sock = self._sock
                self._drain(sock)
                fd = sock.getsockopt(zmq.FD)
            if slot.done:
                return
            err = self._watch() if self._watch else None
            if err is not None:
                with self._io:
                    self._reset(lambda s: err)
                return
            rem = deadline - time.monotonic()
            if rem <= 0:
                return
            try:
                ready, _, _ = select.select([fd, self._wake_r], [], [], min(rem, _TICK))
            except (OSError, ValueError):  # the socket was replaced under us: go round again
                continue
            if self._wake_r in ready:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except (BlockingIOError, OSError):
                    pass

    def _handoff(self) -> None:
        """Wake one waiter that still needs a reply so it can become the leader."""
        for s in list(self._pending.values()):
            if not s.done:
                s.event.set()
                return

    def _drain(self, sock: zmq.Socket) -> None:
        """Read every reply already waiting (caller holds the io lock)."""
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            try:
                header = json.loads(frames[0].bytes)
                slot = self._pending.get(header.get("id"))
            except (ValueError, AttributeError, TypeError):
                continue  # unreadable header: no one to hand it to
            if slot is None or slot.done:
                continue  # unknown or stale id (e.g. a reply after a timeout)
            slot.header = header
            slot.frames = [f.buffer for f in frames[1:]]
            slot.done = True
            slot.event.set()
            if slot is self._leader:
                self._wake()

    def _timed_out(self, slot: _Slot, op: str, limit: float) -> None:
        with self._io:
            if slot.done:
                return
            err = self._watch() if self._watch else None
            if err is not None:
                self._reset(lambda s: err)
                return
            mine = TimeoutError("E_TIMEOUT", f"{op}: no reply from {self.address} in {limit:g} s")
            self._reset(
                lambda s: mine
                if s is slot
                else TimeoutError("E_TIMEOUT", "request dropped: the connection was reset after another request timed out")
            )


def _close_fds(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
