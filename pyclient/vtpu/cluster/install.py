"""Installing a route table on a cluster's shards, in the order that keeps reads right."""

from __future__ import annotations

from typing import Callable, Sequence

from ..client import Client
from .table import RouteTable

__all__ = ["install_on", "croute_params"]


def croute_params(table: RouteTable, shard: int) -> dict:
    """CROUTE params that install ``table`` on ``shard``."""
    return {"table": table.to_wire(), "version": table.version, "shard": int(shard)}


def install_on(table: RouteTable, shards: Sequence[int], send: Callable[[int, dict], None]) -> None:
    """Install ``table`` on each of ``shards`` in the order given (``send(shard, params)``)."""
    for s in shards:
        send(s, croute_params(table, s))


def install_direct(table: RouteTable, timeout: float | None = None) -> None:
    """Install ``table`` on every shard it names, over a plain client to each address."""
    for s in table.shards:
        with Client(table.address(s), timeout=timeout) as c:
            c.request("CROUTE", croute_params(table, s))
