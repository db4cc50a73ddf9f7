"""Batched CPUT then CGET of 1,000,000 coordinates with 16-byte values, numpy in and out,
beside the same keys and values through redis-server with redis-py pipelines."""
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


def vtpu_runs(coords, values, rounds: int) -> dict:
    put_s, get_s = [], []
    addr = ipc_address("batch")
    with child(["node", "bin/vtpu.js", "serve", "--address", addr], "vtpu sidecar listening") as proc:
        with vtpu.connect(addr, timeout=120) as client:
            rss0 = rss_bytes(proc.pid)
            for r in range(rounds + 1):  # round 0 warms up (JIT, first-touch page faults) and is not counted
                t0 = time.perf_counter(); client.cput_batch(coords, values, kind="bytes"); t1 = time.perf_counter()
                got, found = client.cget_batch(coords); t2 = time.perf_counter()
                if r:
                    put_s.append(t1 - t0); get_s.append(t2 - t1)
                else:
                    rss_loaded = rss_bytes(proc.pid)  # after the first load, before reads allocate replies
                    store = client.ping()["store"]
            rss1 = rss_bytes(proc.pid)
            assert found.all(), "every coordinate must be found"
            assert got[0] == values[0].tobytes() and got[-1] == values[-1].tobytes(), "values must round-trip"
    n = len(coords)
    return {"put_per_s": n / median(put_s), "get_per_s": n / median(get_s),
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
            for i in range(0, len(keys), chunk):
                p = r.pipeline(transaction=False)
                for k, v in zip(keys[i:i + chunk], vals[i:i + chunk]):
                    p.set(k, v)
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
        return {"put_per_s": n / median(put_s), "get_per_s": n / median(get_s)}
    finally:
        proc.terminate(); proc.wait(5)


def run(rounds: int = 3, n: int = N) -> dict:
    coords, values = make_data(n)
    return {"n": n, "rounds": rounds, "vtpu": vtpu_runs(coords, values, rounds), "redis": redis_runs(coords, values, rounds)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
