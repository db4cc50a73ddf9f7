"""CNEAREST through the Python client against numpy brute force, on a private sidecar (the
no-pattern queries see the whole store, so it must hold only this module's data)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

import vtpu
from vtpu import format_coord

SPANS = np.array([3, 2, 4, 3, 5, 4, 6, 5, 9])


@pytest.fixture(scope="module")
def near(sidecar) -> Iterator[vtpu.Client]:
    """A client of a sidecar of this module's own (the session one decides skip vs run),
    holding ~6,000 tie-heavy coordinates."""
    sc = vtpu.Sidecar().start()
    c = vtpu.connect(sc.address, timeout=30)
    try:
        rng = np.random.default_rng(1)
        pts = np.unique((rng.random((7000, 9)) * SPANS).astype(np.uint32), axis=0)
        c.cput_batch(pts, [b"x"] * len(pts), kind="bytes")
        c.stored = pts  # type: ignore[attr-defined]
        yield c
    finally:
        c.close()
        sc.stop()


def brute(stored: np.ndarray, q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """k nearest by exact integer keys; ties by coordinate order (lexsort, last key primary)."""
    diff = stored.astype(np.int64) - q.astype(np.int64)
    l1 = np.abs(diff).sum(1)
    if metric == "l1":
        key, tie = l1, np.zeros_like(l1)
    elif metric == "l2":
        key, tie = (diff * diff).sum(1), np.zeros_like(l1)
    else:
        same = np.cumprod(diff == 0, axis=1).sum(1)
        key, tie = 9 - same, l1
    order = np.lexsort([stored[:, d] for d in range(8, -1, -1)] + [tie, key])[:k]
    dist = np.sqrt(key[order]) if metric == "l2" else key[order].astype(np.float64)
    return stored[order], dist


@pytest.mark.parametrize("metric", ["l2", "l1", "hier"])
def test_coordinates_match_brute_force(near, metric):
    rng = np.random.default_rng(2)
    qs = (rng.random((12, 9)) * SPANS).astype(np.uint32)
    coords, dist = near.cnearest(qs, 10, metric=metric)
    assert coords.shape == (12, 10, 9) and coords.dtype == np.uint32 and dist.shape == (12, 10)
    for i, q in enumerate(qs):
        want_c, want_d = brute(near.stored, q, 10, metric)
        assert np.array_equal(coords[i], want_c)
        assert np.allclose(dist[i], want_d, rtol=0, atol=1e-9)


def test_single_coordinate_pattern_and_self(near):
    s = near.stored[100]
    coords, dist = near.cnearest(format_coord(s), 4, metric="l1")
    assert coords.shape == (4, 9) and dist.shape == (4,)
    assert np.array_equal(coords[0], s) and dist[0] == 0
    pat = f"{s[0]}.*.*/*.*.*/*.*.*"
    sub = near.stored[near.stored[:, 0] == s[0]]
    coords, dist = near.cnearest([s, near.stored[5]], 6, pattern=pat)
    for i, q in enumerate([s, near.stored[5]]):
        assert np.array_equal(coords[i], brute(sub, q, 6, "l2")[0])
    everything, _ = near.cnearest(s, len(near.stored), metric="hier")
    assert len({tuple(r) for r in everything}) == len(near.stored)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_vectors_match_numpy(near, metric):
    rng = np.random.default_rng(3)
    base = [77, 1, 0, 0, 0, 0, 0, 0]
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    cs = np.array([base + [i] for i in range(300)], np.uint32)
    near.cput_batch(cs, vecs.reshape(300, 4, 4))  # stored shape differs, length matches
    qs = rng.standard_normal((5, 16)).astype(np.float32)
    coords, scores = near.cnearest_vectors(qs, 7, "77.1.*/*.*.*/*.*.*", metric=metric)
    assert coords.shape == (5, 7, 9) and scores.shape == (5, 7) and scores.dtype == np.float32
    q64, v64 = qs.astype(np.float64), vecs.astype(np.float64)
    if metric == "l2":
        s = np.sqrt(((q64[:, None, :] - v64[None]) ** 2).sum(-1))
        order = np.argsort(s, axis=1, kind="stable")[:, :7]
    else:
        s = q64 @ v64.T
        if metric == "cosine":
            s /= np.linalg.norm(q64, axis=1)[:, None] * np.linalg.norm(v64, axis=1)[None]
        order = np.argsort(-s, axis=1, kind="stable")[:, :7]
    assert np.array_equal(coords[:, :, 8], order)
    assert np.allclose(scores, np.take_along_axis(s, order, 1), rtol=1e-5, atol=1e-5)
    one_c, one_s = near.cnearest_vectors(qs[0].astype(np.float64), 3, "77.1.*/*.*.*/*.*.*", metric=metric)
    assert one_c.shape == (3, 9) and np.array_equal(one_c, coords[0, :3])


def test_typed_errors_then_serving(near):
    s = near.stored[0]
    n = near.ping()["store"]["entries"]
    with pytest.raises(vtpu.ParamError, match=f"only {n} coordinates"):
        near.cnearest(s, n + 1)
    with pytest.raises(vtpu.ParamError):
        near.cnearest(s, 0)
    with pytest.raises(vtpu.ParamError):
        near.cnearest(s, 3, metric="cosine")
    with pytest.raises(vtpu.ParamError):
        near.cnearest(s, 3, pattern="500.*.*/*.*.*/*.*.*")
    with pytest.raises(vtpu.CoordinateError):
        near.cnearest("1.2.3", 3)
    with pytest.raises(vtpu.PatternError):
        near.cnearest(s, 3, pattern="1.2")
    near.cput([78, 0, 0, 0, 0, 0, 0, 0, 0], np.zeros(5, np.float32))
    near.cput([78, 0, 0, 0, 0, 0, 0, 0, 1], "text")
    with pytest.raises(vtpu.ShapeError):
        near.cnearest_vectors(np.ones(4), 1, "78.*.*/*.*.*/*.*.0")
    with pytest.raises(vtpu.DTypeError):
        near.cnearest_vectors(np.ones(5), 1, "78.*.*/*.*.*/*.*.*")
    coords, _ = near.cnearest_vectors(np.ones(5), 1, "78.*.*/*.*.*/*.*.*", skip_mismatched=True)
    assert coords[0].tolist() == [78, 0, 0, 0, 0, 0, 0, 0, 0]
    with pytest.raises(vtpu.ParamError):
        near.cnearest_vectors(np.ones(5), 1, "79.*.*/*.*.*/*.*.*")
    with pytest.raises(vtpu.ParamError):
        near.cnearest_vectors(np.ones(5), 1, "78.*.*/*.*.*/*.*.*", metric="hier", skip_mismatched=True)
    assert near.ping()["version"] == vtpu.protocol.VERSION
    assert near.cnearest(s, 1)[0][0].tolist() == s.tolist()


def test_async_client_has_the_calls(near):
    import asyncio

    async def go():
        vt = vtpu.AsyncClient(vtpu.connect(near.address, timeout=30))
        try:
            return await vt.cnearest(near.stored[0], 2)
        finally:
            await vt.aclose()

    coords, dist = asyncio.run(go())
    assert coords[0].tolist() == near.stored[0].tolist() and dist[0] == 0
