"""``vtpu.connect``: a :class:`~vtpu.Client` of a running sidecar, or of one it starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .client import Client
from .errors import ParamError
from .launcher import durable_args

__all__ = ["connect"]


def connect(
    address: str | None = None, *, timeout: float | None = None, wait: float = 0.0, sidecar_args: Iterable[str] = (),
    http_port: int | None = None,
    data_dir: str | Path | None = None, fsync: str | int = "always", snapshot_every: int | str = 100_000,
    server_key: str | None = None, shm: bool | None = None,
) -> Client:
    """Connect to a sidecar, starting a private local one when ``address`` is None.

    Parameters
    ----------
    address : str, optional
        ``ipc://...`` or ``tcp://host:port`` of a running sidecar (or ``$VTPU_ADDRESS``).
        Something must accept connections there: else ``SidecarError`` at once.
    timeout : float, optional
        Default seconds per reply (30); must be > 0.
    wait : float
        With ``address``: seconds to wait for a sidecar that is still starting (default 0).
    sidecar_args : sequence of str
        Extra ``vtpu serve`` arguments for a started sidecar.
    http_port : int, optional
        Serve the dashboard, ``/metrics`` and the SQ API on this loopback port (0: any free
        one); ``client.http_url`` tells where.
    data_dir : path, optional
        Keep the started sidecar's store in this directory: every acknowledged write is in
        its log, and a restart with the same ``data_dir`` recovers the store (README
        "Durability"). Default: memory only. Not with ``address``.
    fsync : "always" or int
        With ``data_dir``: fsync before each reply (default) or every N ms.
    snapshot_every : int or str
        With ``data_dir``: snapshot after N logged writes, or ``"Ns"`` every N seconds.
    server_key : str, optional
        The sidecar's CURVE public key (z85, from ``vtpu keygen``) when it serves with
        ``--curve-secret-file``; without it such a sidecar never answers (``TimeoutError``).
    shm : bool, optional
        Send and receive big bodies through shared memory when the sidecar is on this host
        (README "Shared memory"); default: on unless ``VTPU_SHM=0``. ``False``: frames only.

    Returns
    -------
    Client
        Use it as a context manager, or call ``close()``.

    Raises
    ------
    ParamError
        A malformed address, a non-positive timeout, or bad durability options.
    SidecarError
        Nothing accepts connections at ``address`` within ``wait`` seconds, or a sidecar
        could not be started (no Node.js 20+, for one).
    """
    address = address or os.environ.get("VTPU_ADDRESS") or None
    extra = durable_args(data_dir, fsync, snapshot_every)
    if extra and address is not None:
        raise ParamError("E_PARAM", "data_dir applies to a sidecar connect() starts; pass --data to `vtpu serve` instead")
    return Client(
        address, timeout=timeout, wait=wait, sidecar_args=[*sidecar_args, *extra], http_port=http_port, server_key=server_key,
        shm=shm,
    )
