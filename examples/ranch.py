"""A ranch on one host: a 6-shard vTPU cluster on a local Ray, through a workload.

Batched writes of KV-cache-like vectors, range scans, nearest-neighbour queries, a shard's
sidecar SIGKILLed and brought back by Ray (from its log), and a shard added while a writer
keeps writing; every answer checked against what was written. The shards listen on
loopback (one host, one network namespace: separate namespaces need privileges a sandbox
rarely grants). Run from a built checkout with Ray installed (`pip install 'vtpu[cluster]'`):

    python examples/ranch.py [--shards 6] [--scrolls 60000]
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from typing import Any, Callable

import numpy as np

import vtpu
import vtpu.cluster as vc

DIM = 16
LAYERS = 600  # the first component: spread over the shards' ranges (key_span)


def _coords(n: int, first: int) -> np.ndarray:
    """``layer.head.pos/0.0.0/0.0.0`` coordinates number ``first .. first+n`` (distinct)."""
    i = np.arange(n, dtype=np.int64) + first
    c = np.zeros((n, 9), np.uint32)
    c[:, 0], c[:, 1], c[:, 2] = i % LAYERS, (i // LAYERS) % 8, i // (LAYERS * 8)
    return c


def _timed(log: Callable[[str], None], what: str, fn: Callable[[], Any]) -> Any:
    t = time.perf_counter()
    out = fn()
    log(f"  {what}: {time.perf_counter() - t:.2f} s")
    return out


def run(shards: int = 6, scrolls: int = 60_000, *, log: Callable[[str], None] = print, **start_kwargs: Any) -> dict[str, Any]:
    """Run the workload on a fresh cluster (on the running Ray, or a local one); returns what it checked."""
    cl = _timed(log, f"start {shards} shards", lambda: start(shards, **start_kwargs))
    try:
        return workload(cl, scrolls, log=log)
    finally:
        cl.shutdown()


def start(shards: int, **start_kwargs: Any) -> Any:
    """The ranch's cluster: ``shards`` shards on loopback, first components 0 .. LAYERS spread."""
    return vc.start(shards, key_span=LAYERS, host="127.0.0.1", **start_kwargs)


def workload(cl: Any, scrolls: int, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The workload on a running cluster ``cl`` (which it leaves running, one shard larger)."""
    rng = np.random.default_rng(0)
    c = cl.client(timeout=10)
    co = _coords(scrolls, 0)
    vals = rng.standard_normal((scrolls, DIM)).astype(np.float32)
    _timed(log, f"batched writes ({scrolls} vectors)", lambda: [c.cput_batch(co[i:i + 20_000], vals[i:i + 20_000]) for i in range(0, scrolls, 20_000)])
    log(f"  scrolls per shard: {cl.shard_sizes()}")

    got = _timed(log, "batched read, shuffled", lambda: c.cget_batch(co[rng.permutation(scrolls)[:10_000]]))
    assert got.found.all()
    r = _timed(log, "range scan, layers 100-400", lambda: c.crange("[100:400].*.*/*.*.*/*.*.*", values=False))
    assert len(r.coords) == int(np.sum((co[:, 0] >= 100) & (co[:, 0] < 400)))
    assert np.all(np.diff(r.coords[:, 0].astype(np.int64)) >= 0), "fan-out answers in coordinate order"
    q = co[rng.integers(0, scrolls, 32)]
    near, dist = _timed(log, "nearest neighbours, 32 queries, k=5", lambda: c.cnearest(q, 5))
    assert np.all(dist[:, 0] == 0) and np.array_equal(near[:, 0], q), "each stored query is its own nearest"

    victim = cl.route_table().shards[1 % len(cl.route_table().shards)]
    pid = cl.sidecar_pids()[victim]
    os.kill(pid, signal.SIGKILL)
    t = time.perf_counter()
    errors = 0
    while True:  # a client sees errors, then the right answer; never a wrong one
        try:
            back = c.cget_batch(co)
            break
        except vtpu.SidecarError:
            errors += 1
            if time.perf_counter() - t > 120:
                raise
            time.sleep(0.2)
    assert back.found.all() and np.array_equal(back.values, vals), "nothing lost across the SIGKILL"
    log(f"  shard {victim} SIGKILLed (pid {pid}), back as pid {cl.sidecar_pids()[victim]} after "
        f"{time.perf_counter() - t:.2f} s, all {scrolls} scrolls intact ({errors} failed tries meanwhile)")

    acked: dict[int, int] = {}
    stop = threading.Event()
    extra = _coords(5_000, scrolls)  # other coordinates than the data's

    def writer() -> None:
        i = 0
        while not stop.is_set():
            c.cput(extra[i % len(extra)], np.full(DIM, i, np.float32))
            acked[i % len(extra)] = i
            i += 1

    w = threading.Thread(target=writer)
    w.start()
    try:
        moved = _timed(log, "add a shard under writes", cl.add_shard)
    finally:
        stop.set()
        w.join()
    log(f"  moved layers {moved['range']} from shard {moved['src']} to {moved['dst']}: {moved['scrolls']} scrolls, "
        f"{moved['bytes']} bytes; {len(acked)} coordinates written meanwhile")
    rows = np.array(sorted(acked))
    now = c.cget_batch(extra[rows])
    assert now.found.all() and np.array_equal(now.values[:, 0], np.array([acked[i] for i in rows], np.float32)), "no acknowledged write lost"
    assert np.array_equal(c.cget_batch(co).values, vals)
    log(f"  scrolls per shard after: {cl.shard_sizes()}")
    return {"shards": len(cl.route_table().shards), "scrolls": scrolls, "moved": moved, "acked": len(acked), "kill_errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=6)
    ap.add_argument("--scrolls", type=int, default=60_000)
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray")
    a = ap.parse_args()
    print(f"ranch: {a.shards} shards on a local Ray, loopback")
    out = run(a.shards, a.scrolls, num_cpus=a.num_cpus)
    print(f"ranch: ok, {out['shards']} shards at the end, every answer checked")


if __name__ == "__main__":
    main()
