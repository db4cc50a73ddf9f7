"""Moving a range between shards (vtpu.cluster.rebalance.move_range) without Ray: the shard
servers the Ray actors wrap, in this process; a move that fails half-way is rolled back."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest

import vtpu
from vtpu.cluster import ClusterClient
from vtpu.cluster.install import croute_params
from vtpu.cluster.rebalance import move_range
from vtpu.cluster.shard import ShardServer
from vtpu.cluster.table import RouteTable

from conftest import CLI_BUILT, NOT_BUILT


class LocalCluster:
    """What move_range uses of a Cluster, over ShardServers in this process."""

    def __init__(self, servers: list[ShardServer], table: RouteTable) -> None:
        self.servers = servers
        self._table = table
        self._install(table, range(len(servers)))

    def route_table(self) -> RouteTable:
        return self._table

    def call(self, shard: int, method: str, *args: Any) -> Any:
        return getattr(self.servers[shard], method)(*args)

    def _install(self, table: RouteTable, shards: Any) -> None:
        for s in shards:
            self.call(s, "install", croute_params(table, s))
        self._table = table


class FailingCatchUp(LocalCluster):
    """The second sync of a move (the catch-up after the source handed the range over) fails."""

    syncs = 0

    def call(self, shard: int, method: str, *args: Any) -> Any:
        if method == "sync_to":
            self.syncs += 1
            if self.syncs == 2:
                raise vtpu.PeerError("E_PEER", "injected: the destination vanished")
        return super().call(shard, method, *args)


@pytest.fixture
def servers(tmp_path) -> Iterator[list[ShardServer]]:
    if not CLI_BUILT:
        pytest.skip(NOT_BUILT)
    out: list[ShardServer] = []
    try:
        for i in range(2):
            out.append(ShardServer(i, str(tmp_path / f"shard-{i}"), "127.0.0.1", exit_on_death=False))
        yield out
    finally:
        for s in out:
            s.stop()


def _rows() -> tuple[np.ndarray, list[str]]:
    co = np.zeros((200, 9), np.uint32)
    co[:, 0], co[:, 8] = np.arange(200) % 100, np.arange(200)
    return co, [f"v{i}" for i in range(200)]


@pytest.mark.parametrize("cluster_cls", [LocalCluster, FailingCatchUp], ids=["moves", "rolls-back"])
def test_a_move_keeps_every_write(servers, cluster_cls):
    table = RouteTable.even([s.address() for s in servers], key_span=100)  # [0:50) → 0, [50:) → 1
    cl = cluster_cls(servers, table)
    co, vals = _rows()
    with ClusterClient([s.address() for s in servers], timeout=10) as c:
        c.cput_batch(co, vals)
        if cluster_cls is LocalCluster:
            moved = move_range(cl, 75, 100, 0)
            assert moved["scrolls"] == 50 and moved["pruned"] == 50 and moved["version"] == 2
            assert c.route_table().owner([80] + [0] * 8) == 0
            assert c.shard_sizes() == {0: 150, 1: 50}
        else:
            with pytest.raises(vtpu.PeerError, match="rolled back: shard 1 owns it again"):
                move_range(cl, 75, 100, 0)
            t = c.route_table()
            assert t.version == 3 and t.owner([80] + [0] * 8) == 1
            assert c.shard_sizes() == {0: 100, 1: 100}  # the partial copy was pruned
        c.cput(co[80], "after")  # the range takes writes again, wherever it ended up
        vals[80] = "after"
        got = c.cget_batch(co)
        assert got.found.all() and list(got.values) == vals
