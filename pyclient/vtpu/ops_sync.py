"""Sync and ownership methods of :class:`vtpu.Client` (the sidecar's ``CSYNC`` op).

>>> stats = client.sync("tcp://10.0.0.2:5555", "1.*.*/*.*.*/*.*.*")
>>> stats["converged"], stats["scrolls_sent"], stats["scrolls_received"]
(True, 100, 100)
"""

from __future__ import annotations

import re
from typing import Any

from .coords import pattern_string
from .errors import ParamError
from ._host import ClientHost

__all__ = ["SyncMixin", "check_server_key"]

_Z85_KEY = re.compile(r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def check_server_key(key: Any) -> str | None:
    """Return ``key`` when it is a 40-character z85 CURVE public key (or None); else raise ParamError."""
    if key is None:
        return None
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str) or not _Z85_KEY.match(key):
        raise ParamError("E_PARAM", "server_key must be a 40-character z85 CURVE public key (vtpu keygen)")
    return key


class SyncMixin(ClientHost):
    """Range sync between sidecars; mixed into :class:`vtpu.Client`."""

    def sync(
        self,
        peer_address: str,
        pattern: Any,
        *,
        server_key: str | None = None,
        peer_timeout: float = 10.0,
        passes: int = 3,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Sync the scrolls matching ``pattern`` between this sidecar and the one at ``peer_address``.

        This sidecar compares range hashes with its peer, descends only into differing ranges
        and moves only differing scrolls, both ways, until the range hashes match (or
        ``passes`` run out). A scroll changed on both sides keeps the owning agent's value
        when one of the two sidecars owns it (``--agent``/``--owns``); otherwise the larger
        digest wins, so every pair settles on the same value without a leader.

        Parameters
        ----------
        peer_address : str
            The peer's ZeroMQ address, as this sidecar reaches it.
        pattern : str or sequence
            The range, e.g. ``"1.*.*/*.*.*/*.*.*"``.
        server_key : str, optional
            The peer's CURVE public key when it serves with CURVE.
        peer_timeout : float
            Seconds this sidecar waits for each peer reply.
        passes : int
            Most compare-and-exchange passes.
        timeout : float, optional
            Seconds to wait for the whole sync (default: the client's timeout).

        Returns
        -------
        dict
            ``converged``, ``passes``, ``rounds`` (peer round trips), ``ranges_compared``,
            ``scrolls_sent``, ``scrolls_received``, ``deleted_local``, ``deleted_remote``,
            ``bytes_sent``, ``bytes_received`` (wire bytes to and from the peer),
            ``hash_bytes`` and ``data_bytes`` (the same bytes split into hash exchange and
            scroll transfer), ``elapsed_ms``.

        Raises
        ------
        PeerError
            The peer was unreachable or vanished mid-sync (each transfer is one atomic
            batch: no scroll is half-applied on either side).
        """
        if not isinstance(peer_address, str) or not peer_address:
            raise ParamError("E_PARAM", "peer_address must be a ZeroMQ address string")
        params: dict[str, Any] = {
            "step": "run",
            "peer": peer_address,
            "pattern": pattern_string(pattern),
            "timeout_ms": max(1, int(peer_timeout * 1000)),
            "passes": int(passes),
        }
        key = check_server_key(server_key)
        if key is not None:
            params["server_key"] = key
        res, _ = self.request("CSYNC", params, timeout=timeout)
        return dict(res)

    def range_hash(self, pattern: Any, *, timeout: float | None = None) -> dict[str, Any]:
        """The root of this sidecar's range-hash tree over ``pattern``.

        Returns
        -------
        dict
            ``n`` (scrolls in the range), ``root`` (count, xor, sum summary: equal on two
            sidecars iff their ranges hold the same scrolls), ``agent`` and ``owns`` (this
            sidecar's ownership rules).
        """
        res, _ = self.request("CSYNC", {"step": "hello", "pattern": pattern_string(pattern)}, timeout=timeout)
        return dict(res)
