"""Request/reply over ZeroMQ DEALER sockets, safe for concurrent callers.

ZeroMQ sockets must not be shared between threads, so each calling thread gets a DEALER
socket of its own (made on its first request, closed when the thread ends or the client
closes). A caller sends and then blocks in ``zmq_poll`` on its own socket: no locks on
the fast path, no background thread, and every reply lands on the socket of the thread
that asked. The sidecar's ROUTER tells the sockets apart by identity.

A timeout closes and recreates that thread's socket, dropping anything still queued (a
late reply cannot be mistaken for the next one), and the next request reconnects.

On the sidecar's host each connection also opens a shared-memory link (:mod:`vtpu.shm`)
on its first request: big bodies then travel through its arenas both ways, and only their
offsets go through the socket.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import weakref
from typing import Any, Callable, Sequence

import zmq

from . import bell as _bell
from . import shm as _shm
from .errors import ProtocolError, SidecarError, TimeoutError, VtpuError, error_from_wire
from .protocol import VERSION

__all__ = ["Transport"]

_COPY_THRESHOLD = 65536  # larger body frames are sent zero-copy
_TICK = 0.25  # longest blind wait: how often a waiter re-checks the sidecar, deadline and close

# Plain ints: pyzmq's enum flags cost an Enum round trip per bitwise operation.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_RCVTIMEO = int(zmq.RCVTIMEO)
_RCVMORE = int(zmq.RCVMORE)
_TICK_MS = int(_TICK * 1000)
_monotonic = time.monotonic

_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call
_loads = json.loads
_OPS: dict[str, str] = {}  # op name -> its header prefix (JSON-escaped once)


_PLAIN_COORD = re.compile(r"[0-9./]+").fullmatch  # needs no JSON escaping


def _op_prefix(op: str) -> str:
    pre = '{"v":%d,"op":%s,"params":' % (VERSION, _encode(op))
    if len(_OPS) < 256:
        _OPS[op] = pre
    return pre


def _header(rid: int, op: str, params: dict[str, Any], link: str | None = None) -> bytes:
    """``{"v":1,"op":op,"params":{...},"id":rid}`` as UTF-8 (the constant parts pre-encoded).

    Single-coordinate requests (the latency-bound ones) skip the JSON encoder: the code
    that runs per request is what a round trip pays for, cold, after each wait."""
    pre = _OPS.get(op) or _op_prefix(op)
    tail = '"id":%d}' % rid if link is None else '"shm":%s,"id":%d}' % (link, rid)
    if len(params) == 1:
        coord = params.get("coord")
        if type(coord) is str and _PLAIN_COORD(coord):
            return ('%s{"coord":"%s"},%s' % (pre, coord, tail)).encode()
    return ("%s%s,%s" % (pre, _encode(params), tail)).encode("utf-8")


class _Conn:
    """One thread's socket. ``busy`` is held while a request uses it, so ``close`` from
    another thread never touches a socket in use."""

    __slots__ = ("box", "busy", "rcvtimeo", "server_key", "link", "__weakref__")

    def __init__(self, ctx: zmq.Context, address: str, server_key: str | None = None) -> None:
        self.server_key = server_key
        self.link: _shm.Link | None | bool = None  # None: not tried yet; False: frames only
        self.busy = threading.Lock()
        # The socket sits in a box the finalizer shares, so it closes whichever socket
        # is current when the thread (and with it this object) goes away.
        self.box: list[zmq.Socket | None] = [None]
        weakref.finalize(self, _close_box, self.box)
        self.open(ctx, address)

    @property
    def sock(self) -> zmq.Socket | None:
        return self.box[0]

    def open(self, ctx: zmq.Context, address: str) -> None:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a peer that is not connected
        if self.server_key is not None:
            # CURVE: the server proves it holds the secret key; our keypair is per socket.
            public, secret = zmq.curve_keypair()
            s.curve_serverkey = self.server_key.encode()
            s.curve_publickey = public
            s.curve_secretkey = secret
        s.connect(address)
        self.box[0] = s
        self.rcvtimeo = -1  # blocking until _receive bounds it

    def shut(self) -> None:
        _close_box(self.box)


class _BellLost(Exception):
    """The sidecar no longer holds the link a bell rang on."""


class Transport:
    """DEALER connections to one sidecar, one per calling thread.

    Parameters
    ----------
    address : str
        ZeroMQ endpoint (``ipc://...`` or ``tcp://host:port``).
    timeout : float
        Default seconds to wait for a reply.
    watch : callable, optional
        Returns a :class:`SidecarError` when the sidecar is known to be dead (an owned
        process that exited), else ``None``; checked while waiting.
    server_key : str, optional
        The sidecar's CURVE public key (z85, 40 characters) when it serves with CURVE.
    use_shm : bool, optional
        Use the shared-memory path on the sidecar's host (:mod:`vtpu.shm`); ``None``: unless
        ``VTPU_SHM=0``.
    """

    def __init__(
        self, address: str, timeout: float, watch: Callable[[], VtpuError | None] | None = None, server_key: str | None = None,
        use_shm: bool | None = None,
    ) -> None:
        self.address = address
        self.server_key = server_key
        self.timeout = float(timeout)
        self._watch = watch
        self._ctx = zmq.Context.instance()
        self._local = threading.local()
        self._conns: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._lock = threading.Lock()  # guards _conns and _closed
        self._ids = itertools.count(1)  # next() on a count is atomic under the GIL
        self._closed = False
        self._shm = _shm.enabled_for(address) if use_shm is None else bool(use_shm) and _shm.is_local(address)
        self._stale_links: list[str] = []  # links given up (after a timeout), closed at the next open

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Close every socket; pending and later requests raise ``SidecarError`` (E_CLOSED).

        A socket busy in another thread's request is closed by that thread, which sees
        the close within one poll tick."""
        keys = [c.link.key for c in list(self._conns) if isinstance(c.link, _shm.Link)] + self._stale_links
        if keys and not self._closed:
            try:  # best effort: the sidecar also drops links of processes that exit
                self.request("SHM", {"mode": "close", "keys": keys}, timeout=0.5)
            except VtpuError:
                pass
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = list(self._conns)
        for conn in conns:
            if conn.busy.acquire(timeout=2 * _TICK):
                try:
                    conn.shut()
                finally:
                    conn.busy.release()

    def _conn(self) -> _Conn:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    raise SidecarError("E_CLOSED", "the client is closed")
                conn = _Conn(self._ctx, self.address, self.server_key)
                self._conns.add(conn)
            self._local.conn = conn  # dies with its thread; _Conn's finalizer closes the socket
        return conn

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
        rid = next(self._ids)
        conn = self._local.__dict__.get("conn") or self._conn()
        if conn.link is None:
            self._open_link(conn, limit)
        link = conn.link
        given = bodies  # what to send again after a refused link (place() keeps only the frames)
        if link:
            hdr, bodies, held = link.place(bodies)
            header = _header(rid, op, params, hdr)
        else:
            header = _header(rid, op, params)
        more = _SNDMORE if bodies else 0
        with conn.busy:
            sock = conn.box[0]
            if self._closed or sock is None:
                conn.shut()
                raise SidecarError("E_CLOSED", "the client is closed")
            deadline = _monotonic() + limit
            try:
                sock.send(header, _NOBLOCK | more)
            except zmq.Again:  # no sidecar connected (yet): retry until the deadline
                self._send_retry(conn, header, more, deadline, op, limit)
            last = len(bodies)
            for i, f in enumerate(bodies, start=1):
                if hasattr(f, "write_into"):  # a body laid out on demand (tensors.TensorBody)
                    f = f.frame()
                sock.send(f, _SNDMORE if i < last else 0, copy=memoryview(f).nbytes < _COPY_THRESHOLD)
            # Most replies come within the first wait: try it inline before the general loop.
            got = _take(sock, rid) if conn.rcvtimeo == _TICK_MS and limit > _TICK else None
            try:
                h, frames = got or self._receive(conn, rid, deadline, op, limit)
            except TimeoutError:
                if link:  # the sidecar may still read its blocks: never reuse this link
                    conn.link = None
                    self._stale_links.append(link.key)
                raise
            if self._closed:
                conn.shut()
        if link:
            if held:
                link.release(held)
            if "shm" in h:
                frames = link.bodies(h["shm"], frames)
        if h.get("ok") is not True:
            err = h.get("error") or {}
            code, message = err.get("code", "E_INTERNAL"), err.get("message", "error reply without a message")
            if link and code == "E_FRAME" and _shm.link_gone(message):
                # A restarted sidecar: refused before it ran, so sending again is safe.
                conn.link = None
                return self.request(op, params, given, timeout)
            raise error_from_wire(code, message)
        return h.get("result") or {}, frames

    def bell(self, call: Callable[[Any, float, Callable[[], None]], Any], timeout: float | None = None) -> Any:
        """``call(bell, deadline, check)`` on this thread's doorbell (:mod:`vtpu.bell`, opened on
        first use): its answer, or ``None`` when there is none or the sidecar no longer holds its
        link (send the run as a request)."""
        if not _bell.supported():
            return None
        limit = self.timeout if timeout is None else float(timeout)
        conn = self._local.__dict__.get("conn") or self._conn()
        if conn.link is None:
            self._open_link(conn, limit)
        link = conn.link
        if not link:
            return None
        if link.bell is None:
            link.bell = _bell.Bell.on_link(link, lambda p: self.request("SHM", {**p, "key": link.key}, (), limit)[0])
        if not link.bell:
            return None
        if self._closed:
            raise SidecarError("E_CLOSED", "the client is closed")
        # No socket is used while the bell rings (close() may take it meanwhile); a wait past a tick
        # asks over the socket whether the sidecar still holds the link (SHM ready is idempotent).
        deadline = _monotonic() + limit

        def check() -> None:
            self._alive(conn)
            left = deadline - _monotonic()
            if left <= 0:
                return  # run() raises the timeout
            try:
                self.request("SHM", {"mode": "ready", "key": link.key}, (), left)
            except VtpuError as e:
                if not _shm.link_gone(e.message):
                    raise
                raise _BellLost() from None

        try:
            return call(link.bell, deadline, check)
        except _BellLost:  # a restarted sidecar (or one that dropped the link): the run never started
            if conn.link is link:  # (the probe may have opened the next link already)
                conn.link = None
            return None
        except TimeoutError:
            conn.link = None  # the sidecar may still write into the region: never reuse this link
            self._stale_links.append(link.key)
            raise

    def _alive(self, conn: _Conn) -> None:
        """Raise when the client closed or the sidecar died."""
        if self._closed:
            conn.shut()
            raise SidecarError("E_CLOSED", "the client was closed")
        err = self._watch() if self._watch else None
        if err is not None:
            raise err

    def _open_link(self, conn: _Conn, limit: float) -> None:
        """Open ``conn``'s shared-memory link, or settle on frames for it."""
        if not self._shm:
            conn.link = False
            return
        conn.link = False  # the handshake's own requests go as frames
        stale, self._stale_links = self._stale_links, []
        try:
            if stale:
                self.request("SHM", {"mode": "close", "keys": stale}, timeout=limit)
            conn.link = _shm.Link.open(lambda op, p: self.request(op, p, (), limit)[0])
        except TimeoutError:
            conn.link = None  # no sidecar yet: try again with the next request
            raise
        except (VtpuError, OSError, ValueError, KeyError):
            conn.link = False  # another host, no addon, no /dev/shm …: frames, same results

    def _send_retry(self, conn: _Conn, header: bytes, more: int, deadline: float, op: str, limit: float) -> None:
        pause = 0.0005
        while True:
            self._check(conn, deadline, f"{op}: no sidecar accepted the request at {self.address} in {limit:g} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            try:
                conn.box[0].send(header, _NOBLOCK | more)
                return
            except zmq.Again:
                pass

    def _receive(self, conn: _Conn, rid: int, deadline: float, op: str, limit: float) -> tuple[dict[str, Any], list[Any]]:
        # A blocking recv bounded by RCVTIMEO is the cheapest wait pyzmq offers (no Poller
        # object per call); the bound is a tick, so close and a dead sidecar are noticed.
        sock = conn.box[0]
        while True:
            rem = deadline - _monotonic()
            if rem > 0:
                ms = max(1, int(min(rem, _TICK) * 1000.0))
                if ms != conn.rcvtimeo:
                    sock.setsockopt(_RCVTIMEO, ms)
                    conn.rcvtimeo = ms
                got = _take(sock, rid)
                if got is not None:
                    return got
            self._check(conn, deadline, f"{op}: no reply from {self.address} in {limit:g} s")

    def _check(self, conn: _Conn, deadline: float, timeout_message: str) -> None:
        """Raise when the client closed, the sidecar died, or the deadline passed; a
        timeout replaces the socket so a late reply is never taken for the next one."""
        self._alive(conn)
        if time.monotonic() >= deadline:
            conn.shut()
            conn.open(self._ctx, self.address)
            raise TimeoutError("E_TIMEOUT", timeout_message)


def _take(sock: zmq.Socket, rid: int) -> tuple[dict[str, Any], list[Any]] | None:
    """One bounded receive: the reply to ``rid``, or None (nothing came in time, or what
    came was a stale reply from before a reset, or unreadable)."""
    try:
        first = sock.recv(0, copy=True)
    except zmq.Again:
        return None
    bodies = [f.buffer for f in sock.recv_multipart(copy=False)] if sock.getsockopt(_RCVMORE) else []
    try:
        header = _loads(first)
    except ValueError:
        return None
    if type(header) is dict and header.get("id") == rid:
        return header, bodies
    return None


def _close_box(box: list) -> None:
    sock, box[0] = box[0], None
    if sock is not None and not sock.closed:
        sock.close(linger=0)
