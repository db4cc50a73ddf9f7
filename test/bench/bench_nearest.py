"""CNEAREST, coordinate space: exact k = 10 nearest of batched queries over N stored coordinates,
engine-side (one thread, nearest_engine.js) and end to end from Python (Client.cnearest over ipc),
beside two exact peers on the same points and queries in the same run: scipy's `cKDTree` (the
same algorithm family as ours, the strongest exact peer) and faiss-cpu `IndexFlatL2` (brute force,
float32: FAISS's only exact index; its faster IVF and HNSW indexes are approximate).

Points are "realistic": each row follows one of a few layouts (small ranges for the upper
components, wider ones below, like library/shelf/…/scroll numbering), so they cluster the way
stored coordinates do. Usage: python test/bench/bench_nearest.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time

import numpy as np

import vtpu
from common import ROOT, child, ipc_address, median

N = 1_000_000
QUERIES = 10_000
K = 10
# Exclusive upper bound per component for each layout (values start at 1).
LAYOUTS = np.array([
    [1, 4, 8, 16, 8, 50, 10, 20, 1000],
    [2, 2, 4, 100, 20, 10, 5, 50, 500],
    [1, 1, 1, 1, 1, 30, 100, 100, 400],
])


def make_points(n: int, seed: int, distinct: bool = False) -> np.ndarray:
    """n rows, each drawn from one of the layouts; `distinct` draws until n different ones (a
    store holds one entry per coordinate) and returns them shuffled."""
    rng = np.random.default_rng(seed)
    out = np.empty((0, 9), np.uint32)
    while len(out) < n:
        m = n - len(out) if not distinct else max(1024, (n - len(out)) * 5 // 4)
        spans = LAYOUTS[rng.integers(0, len(LAYOUTS), m)]
        rows = (1 + (rng.random((m, 9)) * spans).astype(np.uint32)).astype(np.uint32)
        out = np.unique(np.vstack([out, rows]), axis=0) if distinct else rows
    return out[rng.permutation(len(out))[:n]] if distinct else out


def engine_side(points: np.ndarray, queries: np.ndarray, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vtpu-near-") as d:
        points.tofile(f"{d}/p.u32")
        queries.tofile(f"{d}/q.u32")
        out = subprocess.run(["node", "test/bench/nearest_engine.js", f"{d}/p.u32", f"{d}/q.u32", str(K), str(rounds)],
                             cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def end_to_end(points: np.ndarray, queries: np.ndarray, rounds: int) -> dict:
    addr = ipc_address("near")
    with child(["node", "bin/vtpu.js", "serve", "--address", addr], "vtpu sidecar listening"):
        with vtpu.connect(addr, timeout=600) as c:
            c.cput_batch(points, np.zeros((len(points), 1), np.uint8), kind="bytes")
            t0 = time.perf_counter()
            c.cnearest(queries[0], K)  # builds the tree
            first = time.perf_counter() - t0
            c.cnearest(queries, K)  # warm-up round
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                c.cnearest(queries, K)
                times.append(time.perf_counter() - t0)
    return {"queries_per_s": len(queries) / median(times), "first_query_s": first, "rounds": times}


def faiss_runs(points: np.ndarray, queries: np.ndarray, rounds: int) -> dict:
    try:
        import faiss
    except ImportError:
        return {"error": "faiss-cpu not installed"}
    xb = np.ascontiguousarray(points, dtype=np.float32)
    xq = np.ascontiguousarray(queries, dtype=np.float32)
    index = faiss.IndexFlatL2(9)
    index.add(xb)
    out = {"threads_all": faiss.omp_get_max_threads()}
    dist = None
    for label, threads in (("one_thread", 1), ("all_threads", out["threads_all"])):
        faiss.omp_set_num_threads(threads)
        index.search(xq, K)  # warm-up
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            dist, _ = index.search(xq, K)
            times.append(time.perf_counter() - t0)
        out[label] = {"queries_per_s": len(queries) / median(times), "rounds": times}
    out["dist"] = dist
    return out


def ckdtree_runs(points: np.ndarray, queries: np.ndarray, rounds: int) -> dict:
    """scipy cKDTree: build once, then k-nearest queries with one worker and with every core."""
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        return {"error": "scipy not installed"}
    import os

    t0 = time.perf_counter()
    tree = cKDTree(points.astype(np.float64))
    out: dict = {"build_s": time.perf_counter() - t0, "threads_all": os.cpu_count()}
    xq = queries.astype(np.float64)
    dist = None
    for label, workers in (("one_thread", 1), ("all_threads", -1)):
        tree.query(xq, K, workers=workers)  # warm-up
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            dist, _ = tree.query(xq, K, workers=workers)
            times.append(time.perf_counter() - t0)
        out[label] = {"queries_per_s": len(queries) / median(times), "rounds": times}
    out["dist"] = np.rint(dist ** 2)  # squared integer distances, as ours
    return out


def run(quick: bool = False) -> dict:
    n, rounds, nq = (50_000, 3, 2_000) if quick else (N, 5, QUERIES)
    points = make_points(n, 11, distinct=True)
    queries = make_points(nq, 12)
    eng = engine_side(points, queries, rounds)
    e2e = end_to_end(points, queries, rounds)
    fa = faiss_runs(points, queries, rounds)
    res = {"n": len(points), "queries": nq, "k": K, "rounds": rounds, "engine": eng, "e2e": e2e}
    ours = np.array(eng.pop("l2_squared"), np.float64).reshape(nq, K)
    if "dist" in fa:
        # Same k-th distances as the exact float peer (integer squares < 2^24 are exact in float32).
        res["agree_with_faiss"] = float(np.mean(np.all(np.sort(fa.pop("dist"), 1) == ours, axis=1)))
    res["faiss"] = fa
    kd = ckdtree_runs(points, queries, rounds)
    if "dist" in kd:
        res["agree_with_ckdtree"] = float(np.mean(np.all(kd.pop("dist") == ours, axis=1)))
    res["ckdtree"] = kd
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="50,000 points, 2,000 queries, 3 rounds")
    print(json.dumps(run(ap.parse_args().quick), indent=1))
