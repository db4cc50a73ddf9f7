"""vtpu.cluster without Ray: three sidecars on loopback as one store (connect(addresses=...)).

Every answer is compared with one plain sidecar holding the same data.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest

import vtpu
import vtpu.cluster as vc
from vtpu.cluster.install import install_direct
from vtpu.cluster.merge import merge_nearest
from vtpu.cluster.rebalance import split_point
from vtpu.cluster.table import SPACE_END, Range, RouteTable

from conftest import CLI_BUILT, NOT_BUILT

needs_sidecar = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)


def _sidecars(n: int) -> list[vtpu.Sidecar]:
    out = []
    try:
        for _ in range(n):
            out.append(vtpu.Sidecar(address="tcp://127.0.0.1:0").start())
    except BaseException:
        for s in out:
            s.stop()
        raise
    return out


@contextmanager
def _running(n: int) -> Iterator[list[vtpu.Sidecar]]:
    if not CLI_BUILT:
        pytest.skip(NOT_BUILT)
    scs = _sidecars(n)
    try:
        yield scs
    finally:
        for s in scs:
            s.stop(grace=2.0)


@pytest.fixture(scope="module")
def shards() -> Iterator[list[vtpu.Sidecar]]:
    with _running(3) as scs:
        yield scs


@pytest.fixture
def pair() -> Iterator[list[vtpu.Sidecar]]:
    """Two sidecars of this test's own (it may stop them)."""
    with _running(2) as scs:
        yield scs


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    co = np.unique(rng.integers(0, 1000, (1500, 9)).astype(np.uint32), axis=0)
    return co, rng.random((len(co), 4)).astype(np.float32)


@pytest.fixture(scope="module")
def loaded(shards, data) -> Iterator[tuple[vc.ClusterClient, vtpu.Client]]:
    """The cluster and one plain sidecar, both holding ``data``."""
    c = vc.connect(addresses=[s.address for s in shards], timeout=10)
    plain = vtpu.connect()
    try:
        co, vals = data
        assert c.cput_batch(co, vals) == len(co)
        plain.cput_batch(co, vals)
        yield c, plain
    finally:
        c.close()
        plain.close()


# -- the table, pure -----------------------------------------------------------------------------
def test_table_even_owners_and_clipped_patterns():
    t = RouteTable.even(["a", "b", "c"], key_span=900)
    assert [(r.lo, r.hi, r.shard) for r in t.ranges] == [(0, 300, 0), (300, 600, 1), (600, SPACE_END, 2)]
    c = np.zeros((4, 9), np.uint32)
    c[:, 0] = [0, 299, 300, SPACE_END - 1]
    assert t.owners(c).tolist() == [0, 0, 1, 2]
    clipped = t.ranges_for("[250:650].1.*/*.*.*/*.*.*")
    assert [p for _, p in clipped] == ["[250:300].1.*/*.*.*/*.*.*", "[300:600].1.*/*.*.*/*.*.*", "[600:650].1.*/*.*.*/*.*.*"]
    assert [p for _, p in t.ranges_for("5.*.*/*.*.*/*.*.*")] == ["5.*.*/*.*.*/*.*.*"]
    assert t.ranges_for("*.*.*/*.*.*/*.*.*")[-1][1] == "[600:].*.*/*.*.*/*.*.*"
    assert RouteTable.from_wire(t.to_wire(), 1) == t


def test_table_refuses_gaps_and_foreign_boundaries():
    with pytest.raises(vtpu.ParamError):
        RouteTable([Range(0, 5, 0, None), Range(6, SPACE_END, 1, None)])
    with pytest.raises(vtpu.ParamError):
        RouteTable([Range(1, SPACE_END, 0, None)])
    with pytest.raises(vtpu.ParamError):
        RouteTable.from_wire([{"start": "0.0.0/0.0.0/0.0.0", "end": "5.0.0/0.0.0/0.0.1", "shard": 0},
                              {"start": "5.0.0/0.0.0/0.0.1", "end": None, "shard": 1}], 1)
    with pytest.raises(vtpu.ParamError):
        RouteTable.even(["a", "b"], key_span=1)
    # A change merges neighbours of one shard and bumps the version.
    t = RouteTable([Range(0, 5, 0, "a"), Range(5, 9, 1, "b"), Range(9, SPACE_END, 0, "a")], 4)
    t2 = t.replace([Range(0, 5, 0, "a"), Range(5, 9, 0, "a"), Range(9, SPACE_END, 0, "a")])
    assert t2.version == 5 and len(t2.ranges) == 1


def test_split_point_halves_the_scrolls():
    assert split_point({1: 10, 2: 10, 3: 10, 4: 10}, 0, 100) == 3
    assert split_point({7: 100}, 0, 100) == 50  # one key: the middle of the range
    assert split_point({}, 10, 20) == 15
    with pytest.raises(vtpu.ParamError):
        split_point({3: 1}, 3, 4)


def test_merge_nearest_orders_ties_by_coordinate():
    a = (np.array([[[5] * 9, [9] * 9]], np.uint32), np.array([[1.0, 2.0]]))
    b = (np.array([[[3] * 9]], np.uint32), np.array([[1.0]]))
    coords, dist = merge_nearest([a, b], 2)
    assert coords[0, :, 0].tolist() == [3, 5] and dist.tolist() == [[1.0, 1.0]]


# -- through sidecars ----------------------------------------------------------------------------
@needs_sidecar
def test_batches_route_to_owners_and_come_back_in_request_order(loaded, data, shards):
    c, plain = loaded
    co, vals = data
    perm = np.random.default_rng(1).permutation(len(co))
    v = c.cget_batch(co[perm])
    assert v.found.all() and np.array_equal(v.values, vals[perm])
    sizes = c.shard_sizes()
    owners = c.route_table().owners(co)
    assert sizes == {s: int(np.sum(owners == s)) for s in range(3)}
    # Each shard holds exactly what it owns.
    for s, sc in enumerate(shards):
        with vtpu.connect(sc.address) as raw:
            assert np.array_equal(raw.crange().coords, co[owners == s])
    # Mixed kinds and missing rows: the same form as from one sidecar.
    extra = np.array([[10] * 9, [500] * 9, [900] * 9], np.uint32)
    c.cput_batch(extra, ["text", b"\x00\x01", np.arange(3, dtype=np.int32)])
    plain.cput_batch(extra, ["text", b"\x00\x01", np.arange(3, dtype=np.int32)])
    q = np.concatenate([extra, np.array([[11] * 9], np.uint32), co[:2]])
    got, want = c.cget_batch(q), plain.cget_batch(q)
    assert got.found.tolist() == want.found.tolist()
    for x, y in zip(got.values, want.values):
        assert (x is None and y is None) or np.array_equal(np.asarray(x), np.asarray(y))
    assert c.cdel_batch(extra) == 3 and plain.cdel_batch(extra) == 3


@needs_sidecar
def test_crange_fans_out_in_coordinate_order(loaded):
    c, plain = loaded
    for pattern, limit in (("*.*.*/*.*.*/*.*.*", None), ("[200:700].*.*/*.*.*/*.*.*", None), ("*.*.*/*.*.*/*.*.*", 700),
                           ("[320:340].*.*/*.*.*/*.*.*", 3), ("*.[0:500].*/*.*.*/*.*.*", None)):
        got, want = c.crange(pattern, limit=limit), plain.crange(pattern, limit=limit)
        assert np.array_equal(got.coords, want.coords), pattern
        assert np.array_equal(got.values, want.values) and got.truncated == want.truncated
    keys = c.crange("[100:800].*.*/*.*.*/*.*.*", values=False)
    assert keys.values is None and len(keys.coords) == len(plain.crange("[100:800].*.*/*.*.*/*.*.*", values=False).coords)


@needs_sidecar
@pytest.mark.parametrize("vectors", [False, True], ids=["coords", "vectors"])
def test_nearest_is_the_global_top_k(loaded, data, vectors):
    c, plain = loaded
    co, vals = data
    everything = "*.*.*/*.*.*/*.*.*"
    queries, one = (vals[::300] + 0.01, vals[0]) if vectors else (co[::97] + 3, co[0])

    def ask(client, q, k, pattern, **kw):
        return client.cnearest_vectors(q, k, pattern, **kw) if vectors else client.cnearest(q, k, pattern=pattern, **kw)

    def same(got, want):
        assert np.array_equal(got[0], want[0]) and np.allclose(got[1], want[1])

    for metric in ("cosine", "l2", "ip") if vectors else ("l2", "l1", "hier"):
        same(ask(c, queries, 9, everything, metric=metric), ask(plain, queries, 9, everything, metric=metric))
    # A pattern across shards 0 and 1 leaving each range fewer candidates than k.
    pat = "[330:340].*.*/*.*.*/*.*.*"
    n = len(plain.crange(pat, values=False).coords)
    same(ask(c, one, n, pat), ask(plain, one, n, pat))
    with pytest.raises(vtpu.ParamError):
        ask(c, one, n + 1, pat)


@needs_sidecar
def test_chier_cdelta_and_programs(loaded, data):
    c, plain = loaded
    co, vals = data
    for args in (("up", 3, 9), ("up", 9, 9), ("down", 1, 0), ("down", 2, 1)):
        assert c.chier(co[5], *args) == plain.chier(co[5], *args)
    off = [0] * 8 + [0]
    shifted = c.cdelta(co[:4], off, fetch=True)
    assert np.array_equal(shifted.values, vals[:4])
    prog = vtpu.Program()
    prog.crange(f"{co[0][0]}.*.*/*.*.*/*.*.*")
    got = c.run_program(prog, at=co[0]).last
    assert np.array_equal(got.coords, plain.run_program(prog).last.coords)


@needs_sidecar
def test_a_copy_in_flight_is_not_read(loaded, data, shards):
    """A shard holding a copy of another's range (what a move leaves until it ends) answers
    no read from it."""
    c, plain = loaded
    co, vals = data
    theirs = co[c.route_table().owners(co) == 2][:50]
    with vtpu.connect(shards[0].address) as raw:
        raw.request("CSYNC", {"step": "apply", "batch": True, "times": [1] * len(theirs)},
                    [vtpu.arrow.encode_scrolls(theirs, vals[:50])])
        try:
            assert c.chier(co[0], "down", 1, 0) == plain.chier(co[0], "down", 1, 0)
            assert c.chier(co[0], "up", 9, 9) == plain.chier(co[0], "up", 9, 9)
            assert np.array_equal(c.crange().coords, plain.crange().coords)
            assert np.array_equal(c.cnearest(theirs[:3], 4)[0], plain.cnearest(theirs[:3], 4)[0])
            assert np.array_equal(c.cget_batch(theirs).values, plain.cget_batch(theirs).values)
        finally:
            assert raw.request("CROUTE", {"prune": True})[0]["pruned"] == 50


@needs_sidecar
def test_shards_refuse_writes_they_do_not_own(loaded, shards):
    c, _ = loaded
    other = c.route_table().ranges[-1].lo + 1
    with vtpu.connect(shards[0].address) as raw:
        with pytest.raises(vtpu.OwnershipError) as err:
            raw.cput_batch(np.array([[1] * 9, [other] * 9], np.uint32), ["mine", "not mine"])
        assert err.value.code == "E_SHARD"
        assert raw.cget([1] * 9) is None  # all or nothing
        assert raw.route_table()[0]["shard"] == 0


@needs_sidecar
def test_phext_import_and_export_across_shards(pair, tmp_path):
    scs = pair
    text = "a\x1fb\x01c\x01\x01d"  # 1.1.1/.. "a", 1.1.1/../1.1.2 "b", library 2 "c", library 4 "d"
    path = tmp_path / "x.phext"
    path.write_bytes(text.encode())
    install_direct(RouteTable([Range(0, 3, 0, scs[0].address), Range(3, SPACE_END, 1, scs[1].address)]))
    with vc.connect(addresses=[s.address for s in scs]) as c, vtpu.connect() as plain:
        assert c.load_phext(path) == plain.load_phext(path) == 4
        got, want = c.crange(), plain.crange()
        assert np.array_equal(got.coords, want.coords) and list(got.values) == list(want.values)
        assert c.shard_sizes() == {0: 3, 1: 1}
        # Export: the same bytes and checksum as one sidecar's, from one shard or both.
        for pattern in ("*.*.*/*.*.*/*.*.*", "[2:].*.*/*.*.*/*.*.*", "1.*.*/*.*.*/*.*.*", "[7:9].*.*/*.*.*/*.*.*"):
            got_sum, want_sum = c.save_phext(tmp_path / "c.phext", pattern), plain.save_phext(tmp_path / "p.phext", pattern)
            assert (tmp_path / "c.phext").read_bytes() == (tmp_path / "p.phext").read_bytes() and got_sum == want_sum, pattern


@needs_sidecar
def test_a_stale_table_is_read_again_and_the_request_retried(pair):
    scs = pair
    a, b = (s.address for s in scs)
    v1 = RouteTable([Range(0, 100, 0, a), Range(100, SPACE_END, 1, b)], 1)
    install_direct(v1)
    c = vc.connect(addresses=[a, b], timeout=10)
    c.cput([50] + [1] * 8, "before")
    assert c.shard_of([50] + [1] * 8) == 0
    # [40:100) moves to shard 1 (empty of it except what we copy by hand), shard 0 first.
    v2 = v1.replace([Range(0, 40, 0, a), Range(40, SPACE_END, 1, b)])
    with vtpu.connect(a) as ra, vtpu.connect(b) as rb:
        ra.request("CROUTE", {"table": v2.to_wire(), "version": 2, "shard": 0})
        # Shard 1 still has v1: the client's write is refused by both until it installs v2.
        done = threading.Event()

        def install_later():
            time.sleep(0.3)
            rb.request("CSYNC", {"step": "apply", "batch": True, "times": [1]},
                       [vtpu.arrow.encode_scrolls(np.array([[50] + [1] * 8], np.uint32), ["before"])])
            rb.request("CROUTE", {"table": v2.to_wire(), "version": 2, "shard": 1})
            done.set()

        t = threading.Thread(target=install_later)
        t.start()
        c.cput([60] + [1] * 8, "after")  # stale at shard 0, re-routed, retried until shard 1 has v2
        t.join()
        assert done.is_set() and c.route_table(refresh=False).version == 2
        assert rb.cget([60] + [1] * 8) == "after" and ra.cget([60] + [1] * 8) is None
        assert c.cget([50] + [1] * 8) == "before"
        # A request carrying an old version is refused, not answered from a moved range.
        with vtpu._routing.routed_by(1), pytest.raises(vtpu.StaleTableError) as err:
            ra.cget([50] + [1] * 8)
        assert err.value.code == "E_STALE"
    c.close()
    # With no time to wait the error reaches the caller.
    c0 = vc.ClusterClient([a], stale_wait=0)
    c0._router.table = v1
    with pytest.raises(vtpu.StaleTableError):
        c0.cput([60] + [1] * 8, "x")
    c0.close()


@needs_sidecar
def test_a_shard_out_of_reach_fails_only_what_needs_it(pair):
    scs = pair
    with vc.connect(addresses=[s.address for s in scs], key_span=100, timeout=1) as c:
        c.cput([10] * 9, "left")
        c.cput([90] * 9, "right")
        scs[1].stop(grace=2.0)  # shard 1 unreachable
        assert c.cget([10] * 9) == "left"
        assert c.crange("[0:50].*.*/*.*.*/*.*.*").values.tolist() == ["left"]
        with pytest.raises(vtpu.SidecarError):
            c.cget([90] * 9)
        with pytest.raises(vtpu.SidecarError):
            c.cget_batch(np.array([[10] * 9, [90] * 9], np.uint32))
