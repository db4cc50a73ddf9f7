"""Batched CPUT then CGET of 1,000,000 coordinates with 16-byte values, numpy in and out, as
bytes and as float32 (4,) tensors, through the shared-memory path and through frames,
beside the same keys and values through redis-server with redis-py MSET / MGET pipelines."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time

import numpy as np

import vtpu
from common import child, ipc_address, median, rss_bytes

N = 1_000_000


def make_data(n: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    coords = rng.integers(0, 2**32, size=(n, 9), dtype=np.uint64).astype(np.uint32)
    coords[:, 8] = np.arange(n, dtype=np.uint32)  # unique keys
    values = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    return coords, values


def vtpu_runs(coords, values, rounds: int, kind: str = "bytes", shm: bool = True) -> dict:
    """``kind`` bytes: 16-byte rows in, an (N, 16) uint8 array out; tensor: (N, 4) float32
    in and out. Each value is checked after the last round."""
    put_s, get_s = [], []
    vals = values if kind == "bytes" else values.view(np.float32)
    addr = ipc_address("batch")
    with child(["node", "bin/vtpu.js", "serve", "--address", addr], "vtpu sidecar listening") as proc:
        with vtpu.connect(addr, timeout=120, shm=shm) as client:
            rss0 = rss_bytes(proc.pid)
            for r in range(rounds + 1):  # round 0 warms up (JIT, first-touch page faults) and is not counted
                got = found = None  # the last round's reply goes back before this one
                t0 = time.perf_counter(); client.cput_batch(coords, vals, kind="bytes" if kind == "bytes" else None); t1 = time.perf_counter()
                got, found = client.cget_batch(coords); t2 = time.perf_counter()
                if r:
                    put_s.append(t1 - t0); get_s.append(t2 - t1)
                else:
                    rss_loaded = rss_bytes(proc.pid)  # after the first load, before reads allocate replies
                    store = client.ping()["store"]
            rss1 = rss_bytes(proc.pid)
            assert found.all(), "every coordinate must be found"
            assert got.shape == vals.shape and np.array_equal(got.view(np.uint8), values), "values must round-trip"
    n = len(coords)
    spread = lambda xs: [n / max(xs), n / min(xs)]  # noqa: E731
    return {"kind": kind, "shm": shm, "put_per_s": n / median(put_s), "get_per_s": n / median(get_s),
            "put_spread": spread(put_s), "get_spread": spread(get_s),
            "store_bytes_per_coord": store["allocated_bytes"] / store["entries"],
            "rss_loaded_bytes_per_coord": (rss_loaded - rss0) / n,
            "rss_end_bytes_per_coord": (rss1 - rss0) / n}


def redis_runs(coords, values, rounds: int, chunk: int = 10_000) -> dict:
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        return {"error": "redis-server not installed (run test/bench/setup.sh)"}
    d = tempfile.mkdtemp(prefix="vtpu-redis-")
    sock = f"{d}/redis.sock"
    proc = subprocess.Popen([exe, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(unix_socket_path=sock)
        for _ in range(100):
            try:
                r.ping(); break
            except redis.ConnectionError:
                time.sleep(0.05)
        keys = [c.tobytes() for c in coords]
        vals = [v.tobytes() for v in values]
        put_s, get_s = [], []
        for rnd in range(rounds + 1):  # round 0 warms up, as for vTPU
            t0 = time.perf_counter()
            for i in range(0, len(keys), chunk):  # MSET: the write twin of MGET
                p = r.pipeline(transaction=False)
                p.mset(dict(zip(keys[i:i + chunk], vals[i:i + chunk])))
                p.execute()
            t_put = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = []
            for i in range(0, len(keys), chunk):
                p = r.pipeline(transaction=False)
                p.mget(keys[i:i + chunk])
                out.extend(p.execute()[0])
            if rnd:
                put_s.append(t_put); get_s.append(time.perf_counter() - t0)
            assert out[0] == vals[0] and out[-1] == vals[-1]
        n = len(keys)
        return {"pipeline": chunk, "put_per_s": n / median(put_s), "get_per_s": n / median(get_s),
                "put_spread": [n / max(put_s), n / min(put_s)], "get_spread": [n / max(get_s), n / min(get_s)]}
    finally:
        proc.terminate(); proc.wait(5)


def run(rounds: int = 3, n: int = N) -> dict:
    coords, values = make_data(n)
    variants = [vtpu_runs(coords, values, rounds, kind, shm) for kind, shm in (("bytes", True), ("tensor", True), ("bytes", False))]
    return {"n": n, "rounds": rounds, "vtpu": variants[0], "variants": variants, "redis": redis_runs(coords, values, rounds)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
