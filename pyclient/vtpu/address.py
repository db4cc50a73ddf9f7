"""Sidecar addresses: checked before a socket is made, probed before the first request.

ZeroMQ connects lazily: a DEALER "connected" to an address where nothing listens accepts
the call and the first request then waits its whole timeout. :func:`probe` opens (and at
once closes) a plain socket to the address first, so a missing ipc socket or a refused
tcp port is one clear error within a second or two, not a 30 s stall.
"""

from __future__ import annotations

import errno
import math
import os
import re
import socket
import stat
import time
from typing import Any, NamedTuple

from .errors import ParamError, SidecarError

__all__ = ["Endpoint", "parse_address", "probe", "positive_seconds"]

# tcp://host:port with a name, an IPv4 address or a bracketed IPv6 one; ports 1..65535.
_TCP = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")
_ATTEMPT_S = 1.0  # longest single tcp connect attempt (a filtered port never answers)
_PAUSE_S = 0.05  # between attempts while waiting


class Endpoint(NamedTuple):
    """A parsed address: ``scheme`` ``"ipc"`` (``target`` a path, ``\\0``-led when abstract)
    or ``"tcp"`` (``target`` a ``(host, port)`` pair)."""

    scheme: str
    target: Any


def positive_seconds(value: Any, name: str = "timeout") -> float:
    """``value`` as a positive, finite number of seconds.

    Raises
    ------
    ParamError
        For zero, negative, infinite, NaN or non-numeric values.
    """
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ParamError("E_PARAM", f"{name} must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not (s > 0 and math.isfinite(s)):
        raise ParamError("E_PARAM", f"{name} must be a positive, finite number of seconds, got {value!r}")
    return s


def parse_address(address: Any) -> Endpoint:
    """Check a sidecar address: ``ipc://PATH`` (``ipc://@name`` for an abstract socket) or
    ``tcp://HOST:PORT``.

    Raises
    ------
    ParamError
        When ``address`` is not a string of one of those forms.
    """
    if not isinstance(address, str):
        raise ParamError("E_PARAM", f"a sidecar address is a string, got {type(address).__name__}")
    if address.startswith("ipc://"):
        path = address[len("ipc://") :]
        if not path or "\0" in path:
            raise ParamError("E_PARAM", f"malformed address {address!r}: ipc:// needs a socket path")
        return Endpoint("ipc", "\0" + path[1:] if path.startswith("@") else path)
    m = _TCP.fullmatch(address)
    if m is not None:
        port = int(m.group(2))
        if 1 <= port <= 65535:
            return Endpoint("tcp", (m.group(1).strip("[]"), port))
    raise ParamError(
        "E_PARAM", f"malformed address {address!r}: expected ipc://PATH or tcp://HOST:PORT (port 1..65535)"
    )


def probe(address: str, wait: float = 0.0) -> None:
    """Return once something accepts connections at ``address``; else raise.

    Parameters
    ----------
    address : str
        A sidecar address (see :func:`parse_address`).
    wait : float
        Seconds to keep trying (for a sidecar that is still starting); 0 tries once.

    Raises
    ------
    ParamError
        A malformed address or a negative ``wait``.
    SidecarError
        ``E_CLOSED`` naming the address and the reason, when nothing accepted in time.
    """
    ep = parse_address(address)
    if isinstance(wait, bool) or not (isinstance(wait, (int, float)) and wait >= 0 and math.isfinite(wait)):
        raise ParamError("E_PARAM", f"wait must be a number of seconds >= 0, got {wait!r}")
    deadline = time.monotonic() + wait
    while True:
        why = _attempt(ep, max(deadline - time.monotonic(), _ATTEMPT_S))
        if why is None:
            return
        if time.monotonic() >= deadline:
            hint = "start one (`vtpu serve --address ...`) or pass wait= to wait for it"
            waited = f" after waiting {wait:g} s" if wait else ""
            raise SidecarError("E_CLOSED", f"no sidecar at {address}{waited}: {why}; {hint}")
        time.sleep(_PAUSE_S)


def _attempt(ep: Endpoint, limit: float) -> str | None:
    """One connection attempt: None when accepted, else why not."""
    if ep.scheme == "ipc":
        if not ep.target.startswith("\0"):
            try:
                if not stat.S_ISSOCK(os.stat(ep.target).st_mode):
                    return f"{ep.target} is not a socket"
            except FileNotFoundError:
                return "no such socket file"
            except OSError as e:
                return os.strerror(e.errno) if e.errno else str(e)
        return _connect(socket.AF_UNIX, ep.target, limit)
    host, port = ep.target
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return f"cannot resolve {host}: {e.strerror}"
    # Every address the name has (localhost may be ::1 and 127.0.0.1): one accepting is enough.
    why = "no address"
    for family, _, _, _, target in sorted(infos, key=lambda i: i[0] != socket.AF_INET):
        why = _connect(family, target, limit)
        if why is None:
            return None
    return why


def _connect(family: int, target: Any, limit: float) -> str | None:
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(min(limit, _ATTEMPT_S))
        s.connect(target)
        return None
    except socket.timeout:
        return f"no answer within {min(limit, _ATTEMPT_S):g} s"
    except OSError as e:
        if e.errno == errno.ECONNREFUSED:
            return "connection refused (nothing listens there)"
        return os.strerror(e.errno) if e.errno else str(e)
    finally:
        s.close()
