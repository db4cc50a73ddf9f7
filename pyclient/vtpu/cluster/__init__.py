"""Several sidecars as one store: each shard owns ranges of the first coordinate component.

>>> import vtpu.cluster
>>> cl = vtpu.cluster.start(shards=3)          # a local Ray, three shard actors, one sidecar each
>>> c = cl.client()                            # the store API of vtpu.Client over all of them
>>> c.cput_batch(coords, values); c.crange("*.*.*/*.*.*/*.*.*")
>>> cl.add_shard(); cl.shutdown()

Without Ray, over sidecars you started yourself::

    c = vtpu.cluster.connect(addresses=["tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555"])

``start``/``Cluster`` need Ray (``pip install 'vtpu[cluster]'``); the rest does not.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..client import Client
from ..errors import ParamError
from .client import ClusterClient
from .install import install_direct
from .table import Range, RouteTable

__all__ = ["start", "connect", "Cluster", "ClusterClient", "RouteTable", "Range"]


def connect(ray_address: str | None = None, *, addresses: Sequence[str] | None = None, name: str = "vtpu",
            key_span: int = 1000, timeout: float | None = None, server_key: str | None = None) -> Any:
    """Join a cluster.

    Parameters
    ----------
    ray_address : str, optional
        A running Ray cluster holding a vTPU cluster started by :func:`start` (``"auto"``
        for the local one): returns its :class:`Cluster`.
    addresses : sequence of str, optional
        Without Ray: sidecars at fixed addresses. When they are not shards yet, shard ``i``
        is ``addresses[i]`` and owns an even part of first components ``0 .. key_span``
        (the last also everything above); returns a :class:`ClusterClient`.
    name : str
        The cluster's name in Ray (``start(name=...)``).
    server_key : str, optional
        ``addresses`` only: the sidecars' CURVE public key, when they serve with CURVE.

    Raises
    ------
    ParamError
        Neither or both of ``ray_address`` and ``addresses``.
    """
    if (ray_address is None) == (addresses is None):
        raise ParamError("E_PARAM", "connect takes either a Ray address or addresses=[...], not both or neither")
    if addresses is not None:
        addrs = list(addresses)
        if not addrs:
            raise ParamError("E_PARAM", "addresses must name at least one sidecar")
        with Client(addrs[0], timeout=timeout, server_key=server_key) as first:
            formed = first.request("CROUTE", {})[0].get("shard") is not None
        if not formed:
            install_direct(RouteTable.even(addrs, key_span), timeout=timeout, server_key=server_key)
        return ClusterClient(addrs, timeout=timeout, server_key=server_key)
    from .ray_cluster import Cluster

    return Cluster.join(ray_address, name=name)


def start(shards: int = 2, **kwargs: Any) -> Any:
    """Start a cluster of ``shards`` sidecars on Ray; see :meth:`Cluster.start`."""
    from .ray_cluster import Cluster

    return Cluster.start(shards, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Cluster":  # imports Ray only when asked for
        from .ray_cluster import Cluster

        return Cluster
    raise AttributeError(name)
