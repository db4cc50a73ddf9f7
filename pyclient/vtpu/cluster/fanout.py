"""Sending one request's parts to their shards concurrently, by one route table version.

:class:`Router` keeps the client's view of the route table, one :class:`vtpu.Client` per
shard address, and a thread pool. A part refused with ``E_STALE`` (the shard's table moved
on) is re-split by the table read again from the shards and sent again; only the parts
that were refused are sent again, so a write is never applied twice by a retry and counts
stay exact.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from .._routing import routed_by
from ..client import Client
from ..errors import ParamError, SidecarError, StaleTableError, VtpuError
from .table import Range, RouteTable

__all__ = ["Router"]

T = TypeVar("T")


class Router:
    """Route table, shard connections and the fan-out of one cluster client.

    Parameters
    ----------
    seeds : sequence of str
        Addresses of shards to read the table from (any one that answers will do).
    timeout : float, optional
        Seconds per reply from a shard.
    stale_wait : float
        Seconds a request refused as stale keeps being re-routed (a range in flight is
        refused until its move is handed over) before :class:`vtpu.StaleTableError`
        reaches the caller; 0 tries once.
    server_key : str, optional
        The shards' CURVE public key, when they serve with CURVE.
    """

    def __init__(self, seeds: Sequence[str], *, timeout: float | None = None, stale_wait: float = 60.0,
                 server_key: str | None = None) -> None:
        if not seeds:
            raise ParamError("E_PARAM", "a cluster client needs at least one shard address")
        self._timeout = timeout
        self.stale_wait = float(stale_wait)
        self._server_key = server_key
        self._seeds = list(dict.fromkeys(seeds))
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.table: RouteTable | None = None
        self.table = self.refresh()

    # -- connections ------------------------------------------------------------------------
    def client(self, address: str) -> Client:
        """The connection to the shard at ``address`` (made on first use)."""
        with self._lock:
            c = self._clients.get(address)
            if c is None:
                c = self._clients[address] = Client(address, timeout=self._timeout, server_key=self._server_key)
            return c

    def close(self) -> None:
        """Close every shard connection and the pool. Idempotent."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            pool, self._pool = self._pool, None
        for c in clients:
            c.close()
        if pool is not None:
            pool.shutdown(wait=True)

    def refresh(self, newer_than: int = -1) -> RouteTable:
        """Read the table from the shards: the first one newer than ``newer_than``, else the
        highest any of them holds (never older than the table already known).

        Raises
        ------
        SidecarError
            When no shard answers.
        ParamError
            When the sidecars answering are not cluster shards (no shard set in CROUTE).
        """
        known = list(self._seeds) + ([r.address for r in self.table.ranges if r.address] if self.table else [])
        best: RouteTable | None = None
        last: Exception | None = None
        for address in dict.fromkeys(known):
            try:
                res = self.client(address).request("CROUTE", {})[0]
            except SidecarError as e:
                last = e
                continue
            if res.get("shard") is None:
                raise ParamError("E_PARAM", f"the sidecar at {address} is not a cluster shard (CROUTE has no shard)")
            t = RouteTable.from_wire(res["table"], int(res["version"]))
            if best is None or t.version > best.version:
                best = t
            if best.version > newer_than:
                break  # one shard with a newer table is enough: it only moves forward
        if best is None:
            raise SidecarError("E_CLOSED", f"no shard of the cluster answers (tried {', '.join(dict.fromkeys(known))}): {last}")
        if self.table is None or best.version > self.table.version:
            self.table = best  # never backwards: a lagging shard's older table is ignored
        return self.table

    # -- fan-out ----------------------------------------------------------------------------
    def _map(self, jobs: list[Callable[[], T]]) -> list[T | VtpuError]:
        """Runs ``jobs`` (concurrently when more than one); a job's VtpuError is its result."""

        def guarded(job: Callable[[], T]) -> T | VtpuError:
            try:
                return job()
            except VtpuError as e:
                return e

        if len(jobs) == 1:
            return [guarded(jobs[0])]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="vtpu-fanout")
            pool = self._pool
        return list(pool.map(guarded, jobs))

    def _attempts(self) -> Iterable[int]:
        """Attempt numbers, the first at once, more while ``stale_wait`` lasts."""
        deadline = time.monotonic() + self.stale_wait
        attempt = 0
        while True:
            yield attempt
            attempt += 1
            if time.monotonic() >= deadline:
                return

    def _after_stale(self, table: RouteTable, attempt: int) -> None:
        if self.stale_wait <= 0:
            return
        time.sleep(min(0.002 * (attempt + 1), 0.05))  # a move in progress: give it a moment
        self.refresh(newer_than=table.version)

    def one(self, coord: Any, run: Callable[[Client], T]) -> T:
        """``run(client of the shard owning coord)``, re-routed while refused as stale."""
        last: StaleTableError | None = None
        for attempt in self._attempts():
            table = self.table
            try:
                with routed_by(table.version):
                    return run(self.client(table.address(table.owner(coord))))
            except StaleTableError as e:
                last = e
                self._after_stale(table, attempt)
        raise last  # type: ignore[misc]

    def scatter(self, coords: np.ndarray, run: Callable[[Client, np.ndarray], T]) -> list[tuple[np.ndarray, T]]:
        """``run(shard client, row indices)`` once per owning shard of ``coords`` rows;
        returns ``(row indices, result)`` per part. Stale parts are re-routed; any other
        error is raised after every part finished."""
        pending = np.arange(len(coords))
        done: list[tuple[np.ndarray, T]] = []
        for attempt in self._attempts():
            table = self.table
            owners = table.owners(coords[pending]) if len(pending) else np.zeros(0, np.int64)
            groups = [(s, pending[owners == s]) for s in np.unique(owners)]
            jobs = [self._job(table, table.address(int(s)), lambda c, idx=idx: run(c, idx)) for s, idx in groups]
            stale: list[np.ndarray] = []
            first_error: VtpuError | None = None
            for (s, idx), res in zip(groups, self._map(jobs)):
                if isinstance(res, StaleTableError):
                    stale.append(idx)
                elif isinstance(res, VtpuError):
                    first_error = first_error or res
                else:
                    done.append((idx, res))
            if first_error is not None:
                raise first_error
            if not stale:
                return done
            pending = np.concatenate(stale)
            self._after_stale(table, attempt)
        raise StaleTableError("E_STALE", f"the route table kept changing: {len(pending)} rows not routed within {self.stale_wait:g} s")

    def per_range(self, pattern: str, run: Callable[[Client, Range, str], T]) -> list[tuple[Range, T]]:
        """``run(shard client, range, pattern clipped to it)`` for each range ``pattern``
        reaches, all by one table version; in table (= coordinate) order."""
        return self._whole(lambda table: [(r, p) for r, p in table.ranges_for(pattern)],
                           lambda r, p: (lambda c: run(c, r, p)))

    def per_shard(self, run: Callable[[Client, int, RouteTable], T]) -> list[tuple[int, T]]:
        """``run(shard client, shard, the table routed by)`` once per shard of the table."""
        return self._whole(lambda table: [(s, table) for s in table.shards], lambda s, table: (lambda c: run(c, s, table)),
                           address=lambda table, s: table.address(s))

    def _whole(self, targets: Callable[[RouteTable], list[tuple[Any, Any]]], make: Callable[[Any, Any], Callable[[Client], T]],
               address: Callable[[RouteTable, Any], str] | None = None) -> list[tuple[Any, T]]:
        """Reads that must all use one table version: any stale part redoes them all."""
        for attempt in self._attempts():
            table = self.table
            items = targets(table)
            where = address or (lambda t, r: t.address(r.shard))
            jobs = [self._job(table, where(table, a), make(a, b)) for a, b in items]
            results = self._map(jobs)
            if any(isinstance(r, StaleTableError) for r in results):
                self._after_stale(table, attempt)
                continue
            for r in results:
                if isinstance(r, VtpuError):
                    raise r
            return [(a, r) for (a, _), r in zip(items, results)]  # type: ignore[misc]
        raise StaleTableError("E_STALE", f"the route table kept changing for {self.stale_wait:g} s")

    def _job(self, table: RouteTable, address: str, fn: Callable[[Client], T]) -> Callable[[], T]:
        def job() -> T:
            with routed_by(table.version):
                return fn(self.client(address))

        return job

    def addresses(self) -> Iterable[str]:
        """Addresses of the table's shards, by shard id."""
        return [self.table.address(s) for s in self.table.shards]
