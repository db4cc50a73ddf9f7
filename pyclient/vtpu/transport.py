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

# Plain ints: the enum flags pyzmq exposes cost an Enum round trip per bitwise operation.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_POLL_IN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP

_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call
_loads = json.loads
_OPS: dict[str, str] = {}  # op name -> its header prefix (JSON-escaped once)


def _header(rid: int, op: str, params: dict[str, Any]) -> bytes:
    """``{"v":1,"id":rid,"op":op,"params":{...}}`` as UTF-8 (the constant parts pre-encoded)."""
    pre = _OPS.get(op)
    if pre is None:
        pre = '{"v":%d,"op":%s,"params":' % (VERSION, _encode(op))
        if len(_OPS) < 256:
            _OPS[op] = pre
    return ("%s%s,\"id\":%d}" % (pre, _encode(params), rid)).encode("utf-8")


class _Slot:
    """One request's reply. ``event`` is made only when its caller has to wait for
    another thread to deliver the reply (the single-caller path never needs one)."""

    __slots__ = ("event", "done", "header", "frames", "error")

    def __init__(self) -> None:
        self.event: threading.Event | None = None
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
        # The leader waits on the socket's signalling fd and the wake pipe; one poll
        # object per socket, so a wait costs one system call and no list building.
        p = select.poll()
        p.register(s.getsockopt(zmq.FD), _POLL_IN)
        p.register(self._wake_r, _POLL_IN)
        self._poll = p
        return s

    def _fail_all(self, make_error: Callable[[_Slot], BaseException]) -> None:
        for slot in list(self._pending.values()):
            if not slot.done:
                slot.error = make_error(slot)
                slot.done = True
                if slot.event is not None:
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
        frames = [_header(rid, op, params)]
        frames.extend(bodies)
        slot = _Slot()
        try:
            self._send(rid, slot, frames, deadline, op, limit)
            if not slot.done:
                self._wait(slot, deadline, op, limit)
        finally:
            self._pending.pop(rid, None)
        if slot.error is not None:
            raise slot.error
        h = slot.header or {}
        if h.get("ok") is not True:
            err = h.get("error") or {}
            raise error_from_wire(err.get("code", "E_INTERNAL"), err.get("message", "error reply without a message"))
        return h.get("result") or {}, slot.frames

    def _send(self, rid: int, slot: _Slot, frames: list[Any], deadline: float, op: str, limit: float) -> None:
        pause = 0.0005
        last = len(frames) - 1
        while True:
            with self._io:
                if self._closed:
                    raise SidecarError("E_CLOSED", "the client is closed")
                sock = self._sock
                try:
                    sock.send(frames[0], _NOBLOCK | (_SNDMORE if last else 0))
                except zmq.Again:
                    pass
                else:
                    pending = self._pending
                    alone = not pending
                    pending[rid] = slot
                    for i in range(1, last + 1):
                        f = frames[i]
                        sock.send(f, _SNDMORE if i < last else 0, copy=memoryview(f).nbytes < _COPY_THRESHOLD)
                    # A send may swallow the socket fd's signal for replies already
                    # queued, so whoever waits must be served here. With nothing else in
                    # flight no reply can be queued yet (ours comes after this send, and
                    # stale ones die with the socket a timeout resets): skip the check.
                    if not alone:
                        self._drain(sock, slot)
                    return
            err = self._watch() if self._watch else None
            if err is not None:
                raise err
            if time.monotonic() >= deadline:
                raise TimeoutError("E_TIMEOUT", f"{op}: no sidecar accepted the request at {self.address} in {limit:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _wait(self, slot: _Slot, deadline: float, op: str, limit: float) -> None:
        recv = self._recv
        while not slot.done:
            now = time.monotonic()
            if now >= deadline:
                self._timed_out(slot, op, limit)
                return
            if recv.acquire(blocking=False):
                self._leader = slot
                try:
                    self._lead(slot, deadline)
                finally:
                    self._leader = None
                    recv.release()
                    if len(self._pending) > 1:
                        self._handoff(slot)
            else:
                ev = slot.event
                if ev is None:
                    # Made before the next done/leader check, so a reply or a handoff
                    # from now on finds it and wakes us.
                    slot.event = threading.Event()
                    continue
                ev.wait(min(deadline - now, _TICK))
                ev.clear()

    def _lead(self, slot: _Slot, deadline: float) -> None:
        """Wait on the socket for replies until ``slot``'s arrives (caller holds the receive lock).

        Every socket access is followed by a drain (see :meth:`_drain`), so the fd
        signals any reply that arrives later and the wait can start with the poll."""
        wake_r = self._wake_r
        while not slot.done and not self._closed:
            rem = deadline - time.monotonic()
            if rem <= 0:
                return
            try:
                ready = self._poll.poll(min(rem, _TICK) * 1000.0)
            except (OSError, ValueError):  # the socket was replaced under us: go round again
                ready = []
            if not ready:
                err = self._watch() if self._watch else None
                if err is not None:
                    with self._io:
                        self._reset(lambda s: err)
                    return
            else:
                for fd, _ in ready:
                    if fd == wake_r:
                        try:
                            while os.read(wake_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
            with self._io:
                if self._closed:
                    return
                self._drain(self._sock, slot)

    def _handoff(self, me: _Slot) -> None:
        """Wake one waiter that still needs a reply so it can become the leader.

        A waiter without an event has not blocked yet and will try to lead by itself."""
        for s in list(self._pending.values()):
            if not s.done and s is not me and s.event is not None:
                s.event.set()
                return

    def _drain(self, sock: zmq.Socket, mine: _Slot | None = None) -> None:
        """Read every reply already waiting (caller holds the io lock). ``mine`` is the
        calling thread's own request: finishing it needs no wake-up."""
        get = sock.get
        recv = sock.recv
        pending = self._pending
        while get(_EVENTS) & _POLLIN:
            f = recv(_NOBLOCK, copy=False)
            parts = [f]
            while f.more:
                f = recv(_NOBLOCK, copy=False)
                parts.append(f)
            try:
                header = _loads(parts[0].bytes)
                slot = pending.get(header.get("id"))
            except (ValueError, AttributeError, TypeError):
                continue  # unreadable header: no one to hand it to
            if slot is None or slot.done:
                continue  # unknown or stale id (e.g. a reply after a timeout)
            slot.header = header
            slot.frames = [p.buffer for p in parts[1:]]
            slot.done = True  # before reading .event: see _wait
            ev = slot.event
            if ev is not None:
                ev.set()
            if slot is not mine and slot is self._leader:
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
