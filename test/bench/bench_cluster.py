"""vtpu.cluster on a local Ray: batched CPUT/CGET and CRANGE throughput with 1, 2, 3 and 6
shards (--quick: 1 and 2) beside one plain sidecar in the same run; the cost of routing at
one shard (the cluster client against a plain client of the same sidecar); the inputs of a
cost model (per-row sidecar and client costs, per-request cost, bytes per row) that
run.py's report projects to 6 and 60 nodes; recovery after a SIGKILL with 1,000,000 scrolls
on the shard (--quick: 20,000) beside a plain sidecar restarted by hand on the same kind of
log; and rebalancing (add_shard) time and bytes beside copying the moved range whole.

Every figure is a median of rounds, with the rounds kept. Usage: python test/bench/bench_cluster.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from typing import Any, Callable

import numpy as np

import vtpu
import vtpu.cluster as vc
from common import median

VALUE = 64  # float32 elements per scroll: 256-byte tensors
SPAN = 1200  # first components in use, spread over the shards


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(n, dtype=np.int64)
    c = np.zeros((n, 9), np.uint32)
    c[:, 0], c[:, 1], c[:, 2] = i % SPAN, (i // SPAN) % 16, i // (SPAN * 16)
    return c, np.random.default_rng(seed).standard_normal((n, VALUE)).astype(np.float32)


def _rounds(fn: Callable[[], Any], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _throughput(client: Any, co: np.ndarray, vals: np.ndarray, rounds: int, batch: int) -> dict:
    """Rows/s of batched CPUT, shuffled batched CGET and a whole-store CRANGE (values), per round."""
    n = len(co)
    order = np.random.default_rng(1).permutation(n)

    def put() -> None:
        for i in range(0, n, batch):
            client.cput_batch(co[i:i + batch], vals[i:i + batch])

    def get() -> None:
        for i in range(0, n, batch):
            client.cget_batch(co[order[i:i + batch]])

    def scan() -> None:
        r = client.crange("*.*.*/*.*.*/*.*.*")
        assert len(r.coords) == n

    out = {}
    for name, fn in (("cput", put), ("cget", get), ("crange", scan)):
        ts = _rounds(fn, rounds)
        out[name] = {"rows_per_s": n / median(ts), "rounds_rows_per_s": [n / t for t in ts]}
    return out


def _single_us(client: Any, coord: np.ndarray, calls: int, rounds: int) -> list[float]:
    """Median single-CGET latency (µs) per round."""
    out = []
    for _ in range(rounds):
        lat = []
        for _ in range(calls):
            t = time.perf_counter()
            client.cget(coord)
            lat.append(time.perf_counter() - t)
        out.append(median(lat) * 1e6)
    return out


def scaling(shard_counts: list[int], n: int, rounds: int, batch: int) -> dict:
    co, vals = _data(n)
    out: dict = {"rows": n, "batch": batch, "value_bytes": 4 * VALUE, "shards": {}}
    with vtpu.connect(timeout=600) as plain:  # the peer: one sidecar, the client's default (ipc, shared memory)
        out["plain"] = _throughput(plain, co, vals, rounds, batch)
    for s in shard_counts:
        cl = vc.start(s, key_span=SPAN, host="127.0.0.1", name=f"bench{s}")
        try:
            with cl.client(timeout=600) as c:
                out["shards"][str(s)] = _throughput(c, co, vals, rounds, batch)
                if s == 1:  # the model's per-shard cost: the sidecar's own time per request (its METRICS)
                    with vtpu.connect(cl.route_table().address(0)) as m:
                        ops = m.request("METRICS", {})[0]["ops"]
                    out["server_ms"] = {op: ops[op]["mean_ms"] for op in ("CPUT", "CGET", "CRANGE")}
                    out["bytes_per_row"] = {op: ops[op]["bytes_in" if op == "CPUT" else "bytes_out"] / (ops[op]["count"] * (batch if op != "CRANGE" else n))
                                            for op in ("CPUT", "CGET", "CRANGE")}
        finally:
            cl.shutdown()
    return out


def routing(n: int, rounds: int, batch: int) -> dict:
    """One shard: the cluster client against a plain client of the same sidecar, same data."""
    co, vals = _data(n)
    cl = vc.start(1, key_span=SPAN, host="127.0.0.1", name="bench-route")
    try:
        address = cl.route_table().address(0)
        with cl.client(timeout=600) as c, vtpu.connect(address, timeout=600) as plain:
            c.cput_batch(co, vals)
            single = {"cluster_us": [], "plain_us": []}
            batched = {"cluster_rows_per_s": [], "plain_rows_per_s": []}
            order = np.random.default_rng(2).permutation(n)[:batch]
            for _ in range(rounds):  # alternated, so drift hits both alike
                for key, client in (("cluster", c), ("plain", plain)):
                    single[f"{key}_us"] += _single_us(client, co[7], 300, 1)
                    t = _rounds(lambda: client.cget_batch(co[order]), 3)
                    batched[f"{key}_rows_per_s"].append(batch / median(t))
            ping = _rounds(lambda: plain.ping(), 200)
    finally:
        cl.shutdown()
    return {"batch": batch, "single": single, "batched": batched, "ping_us": median(ping) * 1e6}


def _wait_back(c: Any, co: np.ndarray, vals: np.ndarray, t0: float, limit: float = 600) -> float:
    while True:
        try:
            got = c.cget_batch(co[:1000])
            if not (got.found.all() and np.array_equal(got.values, vals[:1000])):
                raise RuntimeError("a restarted shard answered wrongly")
            return time.perf_counter() - t0
        except vtpu.SidecarError:
            if time.perf_counter() - t0 > limit:
                raise
            time.sleep(0.05)


def recovery(n: int, rounds: int) -> dict:
    """SIGKILL a shard's sidecar holding ``n`` scrolls; seconds until the client reads again
    (Ray restarts the actor, the sidecar replays its log). Peer: a plain sidecar with the same
    log, killed and started again by hand."""
    co, vals = _data(n, seed=3)
    ours, peer = [], []
    with tempfile.TemporaryDirectory(prefix="vtpu-bench-recover-") as d:
        cl = vc.start(1, key_span=SPAN, host="127.0.0.1", name="bench-recover", data_dir=f"{d}/cluster")
        try:
            with cl.client(timeout=2) as c:
                for i in range(0, n, 100_000):
                    c.cput_batch(co[i:i + 100_000], vals[i:i + 100_000])
                for _ in range(rounds):
                    cl.wait_ready(timeout=600)  # the last round's actor may still be finishing its restart
                    os.kill(cl.sidecar_pids()[0], signal.SIGKILL)
                    ours.append(_wait_back(c, co, vals, time.perf_counter()))
            cl.wait_ready(timeout=600)
            with cl.client(timeout=600) as check:  # c's 2 s timeout is for noticing the restart, not a 1M-row read
                assert np.array_equal(check.cget_batch(co).values, vals), "nothing lost"
        finally:
            cl.shutdown()
        args = vtpu.launcher.durable_args(f"{d}/plain")
        sc = vtpu.Sidecar(args).start()
        try:
            with vtpu.connect(sc.address, timeout=600) as p:
                for i in range(0, n, 100_000):
                    p.cput_batch(co[i:i + 100_000], vals[i:i + 100_000])
            for _ in range(rounds):
                os.kill(sc.proc.pid, signal.SIGKILL)
                sc.stop()
                t0 = time.perf_counter()
                sc = vtpu.Sidecar(args).start()
                with vtpu.connect(sc.address, timeout=600) as p:
                    peer.append(_wait_back(p, co, vals, t0))
        finally:
            sc.stop()
    return {"scrolls": n, "value_bytes": 4 * VALUE, "ours_s": median(ours), "ours_rounds_s": ours,
            "peer_s": median(peer), "peer_rounds_s": peer}


def rebalance(n: int) -> dict:
    """add_shard on a 2-shard cluster holding ``n`` scrolls; beside it, copying the moved range
    whole (CRANGE from the source, batched CPUT into a fresh sidecar)."""
    co, vals = _data(n, seed=4)
    cl = vc.start(2, key_span=SPAN, host="127.0.0.1", name="bench-rebalance")
    try:
        with cl.client(timeout=600) as c:
            for i in range(0, n, 100_000):
                c.cput_batch(co[i:i + 100_000], vals[i:i + 100_000])
            moved = cl.add_shard()
            assert np.array_equal(c.cget_batch(co).values, vals), "nothing lost"
            lo, hi = moved["range"]
            pattern = f"[{lo}:{hi}].*.*/*.*.*/*.*.*"
            src = vtpu.connect(cl.route_table().address(moved["dst"]), timeout=600)
        with src, vtpu.connect(timeout=600) as fresh:
            t0 = time.perf_counter()
            _, frames = src.request("CRANGE", {"pattern": pattern})
            fresh.request("CPUT", {"batch": True}, [frames[0]])
            whole_s = time.perf_counter() - t0
            whole_bytes = 2 * len(frames[0])
    finally:
        cl.shutdown()
    return {"scrolls": n, "moved_scrolls": moved["scrolls"], "seconds": moved["seconds"], "bytes": moved["bytes"],
            "whole_s": whole_s, "whole_bytes": whole_bytes}


def run(quick: bool = False) -> dict:
    import ray

    own = not ray.is_initialized()
    if own:
        ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, namespace="vtpu", log_to_driver=False)
    try:
        rounds = 2 if quick else 5
        return {
            "cores": os.cpu_count(),
            "scaling": scaling([1, 2] if quick else [1, 2, 3, 6], 20_000 if quick else 200_000, rounds, 10_000 if quick else 50_000),
            "routing": routing(5_000 if quick else 50_000, rounds, 2_000 if quick else 10_000),
            "recovery": recovery(20_000 if quick else 1_000_000, 1 if quick else 3),
            "rebalance": rebalance(20_000 if quick else 1_000_000),
        }
    finally:
        if own:
            ray.shutdown()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=ap.parse_args().quick), indent=1))
