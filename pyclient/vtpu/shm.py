"""The client's side of the shared-memory tensor path (``protocol.json`` → ``ops.SHM``).

A client on the sidecar's host (an ``ipc://`` address, or ``tcp://`` to a loopback
address) opens one link per connection: an ``.in`` arena it writes request bodies into
and an ``.out`` arena the sidecar writes reply bodies into, both files in the
shared-memory directory mapped by both processes and unlinked once both hold them. Only
offsets and lengths travel through ZeroMQ. Reply bodies come back as numpy views of the
``.out`` arena: the block stays the caller's until the last view of it is gone, then its
offset goes back to the sidecar with the next request. Pages are reused call after call
(a fresh buffer costs page faults on first touch).

``VTPU_SHM=0`` turns the path off; ``VTPU_SHM_BYTES`` sizes each arena (default 1 GiB,
reserved page by page as it is used). Anything the path cannot take (another host, an
arena that is full, a sidecar without it) goes as frames, with the same results.
"""

from __future__ import annotations

import collections
import json
import mmap
import os
import re
import secrets
import stat
import weakref
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ProtocolError, VtpuError

__all__ = ["Link", "enabled_for", "is_local", "arena_bytes", "link_gone"]

HEAD = 64  # arena head: the token lives at offset 0, bodies never go there
TOKEN = 16
ALIGN = 64
DEFAULT_BYTES = 1 << 30
_LOOPBACK = re.compile(r"tcp://(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$")


def shm_dir() -> str:
    """Where arenas live: /dev/shm (memory) when it exists, else the temp directory."""
    import tempfile

    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def is_local(address: str) -> bool:
    """True for an address on this host: ``ipc://``, or ``tcp://`` to a loopback address."""
    return address.startswith("ipc://") or bool(_LOOPBACK.match(address))


def enabled_for(address: str) -> bool:
    """True when ``address`` is on this host and ``VTPU_SHM`` does not turn the path off."""
    if os.environ.get("VTPU_SHM", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return is_local(address)


def link_gone(message: str) -> bool:
    """True for the sidecar's answer about a link it does not hold (bridge/shm/links.ts: closed,
    its client died, or a restarted sidecar never had it); the request was refused before it ran."""
    return message.startswith("shm: no open link")


def arena_bytes() -> int:
    """Bytes per arena: ``VTPU_SHM_BYTES`` or 1 GiB."""
    raw = os.environ.get("VTPU_SHM_BYTES")
    return int(raw) if raw else DEFAULT_BYTES


class _Blocks:
    """First-fit ALIGN-aligned blocks of ``[HEAD, size)``; pages are reserved
    (``posix_fallocate``) as the high-water mark rises, so a full file system fails an
    allocation (the body goes as a frame) instead of faulting a mapped write."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.free: list[list[int]] = [[HEAD, size]]
        self.used: dict[int, int] = {}
        self.reserved = HEAD

    def alloc(self, n: int) -> int:
        size = -(-max(n, 1) // ALIGN) * ALIGN
        for i, (s, e) in enumerate(self.free):
            if e - s >= size:
                if s + size > self.reserved:
                    try:
                        os.posix_fallocate(self.fd, self.reserved, s + size - self.reserved)
                    except OSError:
                        return -1
                    self.reserved = s + size
                if e - s == size:
                    del self.free[i]
                else:
                    self.free[i][0] = s + size
                self.used[s] = size
                return s
        return -1

    def release(self, off: int) -> None:
        size = self.used.pop(off)
        i = 0
        while i < len(self.free) and self.free[i][0] < off:
            i += 1
        self.free.insert(i, [off, off + size])
        if i + 1 < len(self.free) and self.free[i][1] == self.free[i + 1][0]:
            self.free[i][1] = self.free.pop(i + 1)[1]
        if i > 0 and self.free[i - 1][1] == self.free[i][0]:
            self.free[i - 1][1] = self.free.pop(i)[1]


def _nbytes(body: Any) -> int:
    return body.nbytes if hasattr(body, "write_into") else memoryview(body).nbytes


class Link:
    """One connection's pair of arenas. Used by one thread at a time (the transport's
    per-thread connection); only the release queue is touched from other threads (by the
    garbage collector)."""

    def __init__(self, key: str, fd: int, inp: mmap.mmap, out: mmap.mmap, out_size: int, min_bytes: int) -> None:
        self.key = key
        self._in = inp
        self._in_fd = fd
        self._blocks = _Blocks(fd, len(inp))
        self._out = out
        self._out_size = out_size
        self.min_bytes = min_bytes
        self._released: collections.deque[int] = collections.deque()  # .out offsets whose views died
        self._plain = json.dumps({"k": key})
        #: The link's doorbell (:mod:`vtpu.bell`): None until asked for, False when refused.
        self.bell: Any = None
        weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls, request: Callable[[str, dict[str, Any]], dict[str, Any]], size: int | None = None) -> "Link":
        """Open a link through ``request`` (a plain request function). Raises on any failure,
        leaving no file behind."""
        size = arena_bytes() if size is None else size
        path = os.path.join(shm_dir(), f"vtpu-{os.getpid()}-{secrets.token_hex(12)}.in")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        key = None
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, HEAD)
            inp = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            token = secrets.token_bytes(TOKEN)
            inp[:TOKEN] = token
            res = request("SHM", {"mode": "open", "path": path, "size": size, "token": token.hex()})
            key = str(res["key"])
            out, out_size = _map_reply_arena(str(res["path"]), int(res["size"]), bytes.fromhex(str(res["token"])))
            os.unlink(path)  # both sides hold it now
            path = ""
            request("SHM", {"mode": "ready", "key": key})  # the sidecar unlinks .out
            return cls(key, fd, inp, out, out_size, int(res.get("min_bytes", 32768)))
        except BaseException:
            if path:
                os.unlink(path)
            os.close(fd)
            if key is not None:
                try:
                    request("SHM", {"mode": "close", "keys": [key]})
                except VtpuError:
                    pass
            raise

    def place(self, bodies: Sequence[Any]) -> tuple[str, list[Any], list[int]]:
        """``(shm header field as JSON, frames still to send, .in blocks held until the reply)``."""
        released = self._released
        sizes = [_nbytes(b) for b in bodies]
        if not released and not any(n >= self.min_bytes for n in sizes):
            return self._plain, list(bodies), []  # small calls: one cached string, nothing else
        hdr: dict[str, Any] = {"k": self.key}
        frames: list[Any] = []  # laid out by the transport, as without a link
        held: list[int] = []
        if bodies:
            entries: list[Any] = []
            for body, n in zip(bodies, sizes):
                off = self._blocks.alloc(n) if n >= self.min_bytes else -1
                if off < 0:
                    entries.append(None)
                    frames.append(body)
                    continue
                dst = np.frombuffer(self._in, np.uint8, n, off)
                if hasattr(body, "write_into"):
                    body.write_into(dst)
                else:
                    dst[:] = np.frombuffer(body, np.uint8, n)
                held.append(off)
                entries.append([off, n])
            if held:
                hdr["b"] = entries
        if released:
            hdr["f"] = [released.popleft() for _ in range(len(released))]
        return json.dumps(hdr, separators=(",", ":")), frames, held

    def keep(self, n: int) -> tuple[mmap.mmap, int]:
        """A block of ``n`` bytes of ``.in`` kept for good (a bell's region): ``(arena, offset)``,
        offset -1 when it is full."""
        return self._in, self._blocks.alloc(n)

    def release(self, held: list[int]) -> None:
        """The request was answered: its ``.in`` blocks may be reused."""
        for off in held:
            self._blocks.release(off)

    def bodies(self, entries: Any, frames: list[Any]) -> list[Any]:
        """Reply bodies with the header's ``shm`` entries applied (views of ``.out``)."""
        if not isinstance(entries, list):
            raise ProtocolError("E_FRAME", f"reply shm must be a list, got {entries!r}")
        out: list[Any] = []
        it = iter(frames)
        for e in entries:
            if e is None:
                out.append(next(it, b""))
                continue
            try:
                off, n = int(e[0]), int(e[1])
            except (TypeError, ValueError, IndexError):
                raise ProtocolError("E_FRAME", f"reply shm entry {e!r} is not [offset, length]") from None
            if off < HEAD or n < 0 or off + n > self._out_size:
                raise ProtocolError("E_FRAME", f"reply body [{off}, {off + n}) is outside the arena")
            view = np.frombuffer(self._out, np.uint8, n, off)
            # Views of the block keep `view` alive; when the last goes, the block goes back.
            weakref.finalize(view, self._released.append, off)
            out.append(view)
        return out


def _map_reply_arena(path: str, size: int, token: bytes) -> tuple[mmap.mmap, int]:
    """Map the sidecar's ``.out`` arena after checking it is ours to read: a regular
    owner-only file of ours, of the announced size, holding the announced token."""
    if os.path.dirname(os.path.realpath(path)) != os.path.realpath(shm_dir()):
        raise ProtocolError("E_FRAME", f"reply arena {path!r} is not in {shm_dir()}")
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077 or st.st_size != size:
            raise ProtocolError("E_FRAME", f"reply arena {path!r} is not an owner-only file of {size} bytes")
        out = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    if out[:TOKEN] != token:
        raise ProtocolError("E_FRAME", f"reply arena {path!r} does not hold the sidecar's token")
    return out, size
