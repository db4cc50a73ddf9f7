"""A cluster on Ray: one actor per shard, each running a sidecar (:mod:`.shard`).

The driver that called :func:`vtpu.cluster.start` holds the actors; another process joins
with :func:`vtpu.cluster.connect` (the actors are named in the ``vtpu`` Ray namespace).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import ParamError, SidecarError
from .client import ClusterClient
from .install import croute_params
from .shard import ShardServer
from .table import RouteTable

__all__ = ["Cluster"]

NAMESPACE = "vtpu"


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SidecarError("E_CLOSED", "vtpu.cluster.start needs Ray: pip install 'vtpu[cluster]'") from None
    return ray


class Cluster:
    """Shards on Ray and the table that assigns them ranges. Made by :meth:`start` or :meth:`join`."""

    def __init__(self, name: str, actors: dict[int, Any], table: RouteTable, *, data_dir: Path | None,
                 own_dir: bool, own_ray: bool, options: dict[str, Any]) -> None:
        self.name = name
        self._actors = actors
        self._table = table
        self._data_dir = data_dir
        self._own_dir = own_dir
        self._own_ray = own_ray
        self._options = options
        self._clients: list[ClusterClient] = []
        #: The CURVE public key of every shard (None: plain tcp).
        self.server_key: str | None = options["curve"][0] if options.get("curve") else None

    # -- making -------------------------------------------------------------------------------
    @classmethod
    def start(cls, shards: int = 2, *, data_dir: str | Path | None = None, address: str | None = None,
              placement: str = "spread", name: str = "vtpu", key_span: int = 1000, host: str | None = None,
              cpus_per_shard: float | None = None, max_restarts: int = 10, sidecar_args: Sequence[str] = (),
              curve: bool | None = None, **ray_init_kwargs: Any) -> "Cluster":
        """Start ``shards`` sidecars as Ray actors and give them ranges of the first component.

        Parameters
        ----------
        shards : int
            How many shards (1 or more).
        data_dir : path, optional
            Each shard logs to ``data_dir/shard-i`` (kept after shutdown). Default: a
            temporary directory removed by :meth:`shutdown` (restarts still recover from it).
        address : str, optional
            The Ray cluster to join (``ray.init(address=...)``); default: the running one, or
            a new local Ray started with ``ray_init_kwargs`` (e.g. ``num_cpus=2``).
        placement : {"spread", "pack"}
            How the placement group places the shards on Ray's nodes.
        key_span : int
            First components ``0 .. key_span`` are split evenly; the last shard also owns the
            rest (see :mod:`vtpu.cluster.table` for the choice of key).
        host : str, optional
            Interface the sidecars listen on (tcp); default loopback when Ray has one node,
            else each node's Ray address.
        curve : bool, optional
            Serve with ZeroMQ CURVE (one keypair for the cluster, made here; clients and
            shard-to-shard syncs use its public key). Default: beyond loopback only, where a
            sidecar refuses plain tcp.
        cpus_per_shard : float, optional
            CPUs reserved per shard (default: 1, or less so that all fit on the cluster).
        max_restarts : int
            How often Ray restarts a shard whose sidecar died (-1: always).
        sidecar_args : sequence of str
            Extra ``vtpu serve`` flags for every sidecar.
        """
        ray = _ray()
        if not isinstance(shards, int) or shards < 1:
            raise ParamError("E_PARAM", f"shards must be an int >= 1, got {shards!r}")
        if placement not in ("spread", "pack"):
            raise ParamError("E_PARAM", f"placement must be 'spread' or 'pack', got {placement!r}")
        own_ray = not ray.is_initialized()
        if own_ray:
            ray.init(address=address, namespace=NAMESPACE, **{"include_dashboard": False, **ray_init_kwargs})
        own_dir = data_dir is None
        root = Path(tempfile.mkdtemp(prefix="vtpu-cluster-")) if own_dir else Path(data_dir)
        cpus = cpus_per_shard if cpus_per_shard is not None else min(1.0, ray.cluster_resources().get("CPU", 1) / (shards + 1))
        if host is None and len([n for n in ray.nodes() if n.get("Alive")]) == 1:
            host = "127.0.0.1"  # one machine: loopback
        if curve is None:
            curve = host not in ("127.0.0.1", "localhost", "::1")
        keys = None
        if curve:
            import zmq

            keys = tuple(k.decode("ascii") for k in zmq.curve_keypair())
        opts = {"root": str(root), "host": host, "cpus": cpus, "max_restarts": max_restarts, "args": list(sidecar_args),
                "curve": keys}
        from ray.util.placement_group import placement_group

        pg = placement_group([{"CPU": cpus}] * shards, strategy="SPREAD" if placement == "spread" else "PACK")
        ray.get(pg.ready())
        opts["pg"] = pg
        cl = cls(name, {}, RouteTable.even(["-"] * shards, key_span), data_dir=root, own_dir=own_dir, own_ray=own_ray, options=opts)
        try:
            for i in range(shards):
                cl._actors[i] = cl._spawn(i, bundle=i)
            addrs = ray.get([a.address.remote() for a in cl._actors.values()])
            cl._table = RouteTable.even(addrs, key_span)
            cl._install(cl._table, list(cl._actors))
        except BaseException:
            cl.shutdown()  # no actor, placement group, directory or Ray left behind
            raise
        return cl

    @classmethod
    def join(cls, ray_address: str, *, name: str = "vtpu") -> "Cluster":
        """The cluster ``name`` running on the Ray cluster at ``ray_address``."""
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=ray_address, namespace=NAMESPACE)
        prefix = f"{name}-shard-"
        actors = {}
        for entry in ray.util.list_named_actors(all_namespaces=True):
            n = entry["name"] if isinstance(entry, dict) else entry
            if n.startswith(prefix) and (not isinstance(entry, dict) or entry.get("namespace") == NAMESPACE):
                actors[int(n[len(prefix):])] = ray.get_actor(n, namespace=NAMESPACE)
        if not actors:
            raise ParamError("E_PARAM", f"no vtpu cluster named {name!r} runs on the Ray cluster at {ray_address}")
        seeds = ray.get([a.address.remote() for a in actors.values()])
        key = ray.get(next(iter(actors.values())).public_key.remote())
        with ClusterClient(seeds, server_key=key) as c:
            table = c.route_table()
        cl = cls(name, actors, table, data_dir=None, own_dir=False, own_ray=False, options={})
        cl.server_key = key
        return cl

    def _spawn(self, shard: int, bundle: int | None = None) -> Any:
        ray = _ray()
        o = self._options
        if not o:
            raise ParamError("E_PARAM", "only the process that started the cluster can add shards")
        strategy: Any = "SPREAD"
        if bundle is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            strategy = PlacementGroupSchedulingStrategy(placement_group=o["pg"], placement_group_bundle_index=bundle)
        actor_cls = ray.remote(ShardServer)
        return actor_cls.options(
            name=f"{self.name}-shard-{shard}", namespace=NAMESPACE, num_cpus=o["cpus"], max_restarts=o["max_restarts"],
            max_task_retries=0, scheduling_strategy=strategy,
        ).remote(shard, str(Path(o["root"]) / f"shard-{shard}"), o["host"], o["args"], o["curve"])

    def call(self, shard: int, method: str, *args: Any) -> Any:
        """Run ``method`` of ``shard``'s actor (:class:`.shard.ShardServer`) and wait for it."""
        return _ray().get(getattr(self._actors[shard], method).remote(*args))

    def _install(self, table: RouteTable, shards: Sequence[int]) -> None:
        """Install ``table`` on ``shards`` one after another (the order is the caller's)."""
        for s in shards:
            self.call(s, "install", croute_params(table, s))
        self._table = table

    # -- reading ------------------------------------------------------------------------------
    def client(self, *, timeout: float | None = None) -> ClusterClient:
        """A client over every shard (closed by :meth:`shutdown` if still open)."""
        c = ClusterClient([self._table.address(s) for s in self._table.shards], timeout=timeout, server_key=self.server_key)
        self._clients.append(c)
        return c

    def route_table(self) -> RouteTable:
        """The current route table."""
        return self._table

    def actor(self, shard: int) -> Any:
        """The Ray actor of ``shard``."""
        return self._actors[shard]

    def sidecar_pids(self) -> dict[int, int]:
        """Sidecar process id per shard (waiting out a shard whose actor is restarting)."""
        return dict(zip(self._actors, self._ask_all("sidecar_pid")))

    def shard_sizes(self) -> dict[int, int]:
        """Scrolls stored per shard (waiting out a shard whose actor is restarting)."""
        return dict(zip(self._actors, self._ask_all("size")))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every shard's actor answers (after a restart)."""
        self._ask_all("address", timeout)

    def _ask_all(self, method: str, timeout: float = 60.0) -> list[Any]:
        """``method()`` of every shard's actor, in shard order. A shard whose sidecar died is
        restarted by Ray, and its new sidecar may serve clients before Ray calls the actor alive:
        calls meanwhile fail as unavailable, so they are asked again until ``timeout``."""
        ray = _ray()
        retry = (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError)  # the first covers ActorUnavailableError
        deadline = time.monotonic() + timeout
        while True:
            try:
                return ray.get([getattr(a, method).remote() for a in self._actors.values()], timeout=max(0.1, deadline - time.monotonic()))
            except retry:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # -- changing -----------------------------------------------------------------------------
    def add_shard(self) -> dict[str, Any]:
        """Start a shard and move it half of the fullest shard's data (see :mod:`.rebalance`)."""
        from .rebalance import add_shard

        return add_shard(self)

    def remove_shard(self, shard: int) -> dict[str, Any]:
        """Move ``shard``'s ranges to its neighbours and stop it (see :mod:`.rebalance`)."""
        from .rebalance import remove_shard

        return remove_shard(self, shard)

    def shutdown(self) -> None:
        """Close clients, stop every shard, remove the temporary data directory, and stop
        Ray when :meth:`start` started it. Idempotent."""
        ray = _ray()
        for c in self._clients:
            c.close()
        self._clients = []
        for a in self._actors.values():
            try:
                ray.get(a.stop.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - already dead: killing it is all that is left
                pass
            ray.kill(a, no_restart=True)
        self._actors = {}
        if self._options.get("pg") is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._options["pg"])
            self._options["pg"] = None
        if self._own_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
        if self._own_ray and ray.is_initialized():
            ray.shutdown()
