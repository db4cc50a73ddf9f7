"""Installing a route table on a cluster's shards (CROUTE ``{table, version, shard}``)."""

from __future__ import annotations

from ..client import Client
from .table import RouteTable

__all__ = ["install_direct", "croute_params"]


def croute_params(table: RouteTable, shard: int) -> dict:
    """CROUTE params that install ``table`` on ``shard``."""
    return {"table": table.to_wire(), "version": table.version, "shard": int(shard)}


def install_direct(table: RouteTable, timeout: float | None = None, server_key: str | None = None) -> None:
    """Install ``table`` on every shard it names, over a plain client to each address."""
    for s in table.shards:
        with Client(table.address(s), timeout=timeout, server_key=server_key) as c:
            c.request("CROUTE", croute_params(table, s))
