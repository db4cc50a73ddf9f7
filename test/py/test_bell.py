"""The doorbell (vtpu.bell): same-host CEXPERTS runs through the link's arena, not the socket."""

from __future__ import annotations

import time

import numpy as np
import pytest

import vtpu
from conftest import CLI_BUILT, NOT_BUILT
from vtpu import bell as vbell

pytestmark = pytest.mark.skipif(not vbell.supported(), reason="the doorbell needs Linux on x86-64")

H, I, E = 64, 32, 8


def experts(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((E, 2 * I, H), np.float32) * 0.1, rng.standard_normal((E, H, I), np.float32) * 0.1


def the_bell(c: vtpu.Client) -> vbell.Bell:
    bell = c._t._local.conn.link.bell
    assert isinstance(bell, vbell.Bell), "the client opened no bell"
    return bell


def by_socket(c: vtpu.Client, layer: int, x, ids, w):
    link = c._t._local.conn.link
    kept, link.bell = link.bell, False
    try:
        return c.experts_run(layer, x, expert_ids=ids, weights=w)
    finally:
        link.bell = kept


@pytest.fixture
def shm_client(sidecar):
    with vtpu.connect(sidecar.address, timeout=20, shm=True) as c:
        yield c


@pytest.mark.parametrize("fmt", ["fp32", "q8", "q4"])
@pytest.mark.parametrize("T", [1, 3, 8, 40])
def test_bell_answers_what_the_socket_answers(shm_client, ns, fmt, T):
    c, layer = shm_client, 500 + ns
    c.experts_load(layer, *experts(1), format=fmt)
    rng = np.random.default_rng(T)
    x = rng.standard_normal((T, H), np.float32)
    ids = rng.integers(0, E, (T, 3)).astype(np.int32)
    ids[0] = [2, 2, 5]  # one expert twice for a token: two rows of its work
    w = rng.random((T, 3), np.float32)
    before = c.metrics()["experts_bell"]
    got = c.experts_run(layer, x, expert_ids=ids, weights=w)
    assert the_bell(c).last_why == 0
    ref = by_socket(c, layer, x, ids, w)
    assert np.array_equal(got.y, ref.y)  # the same kernel, plan and float64 combine: bit for bit
    assert np.array_equal(got.counts, ref.counts) and got.counts.sum() == 3 * T
    assert got.elapsed_ms > 0
    after = c.metrics()["experts_bell"]
    assert after["calls"] == before["calls"] + 1 and after["fallbacks"] == before["fallbacks"]


def test_what_the_bell_does_not_hold_goes_through_the_socket(shm_client, ns):
    c, layer = shm_client, 600 + ns
    x = np.ones((1, H), np.float32)
    ids, w = np.array([[0, 1]], np.int32), np.full((1, 2), 0.5, np.float32)
    with pytest.raises(vtpu.ParamError, match="no experts uploaded"):
        c.experts_run(layer, x, expert_ids=ids, weights=w)
    assert the_bell(c).last_why == 1  # not held: the socket gave the typed error
    c.experts_load(layer, *experts(2), format="int8")  # no native kernel: the socket runs it
    assert c.experts_run(layer, x, expert_ids=ids, weights=w).y.shape == (1, H)
    assert the_bell(c).last_why == 1
    c.experts_load(layer + 1, *experts(2), format="fp32")
    with pytest.raises(vtpu.ParamError, match="outside 0..7"):
        c.experts_run(layer + 1, x, expert_ids=np.array([[0, 9]], np.int32), weights=w)
    assert the_bell(c).last_why == 4
    with pytest.raises(vtpu.ShapeError):
        c.experts_run(layer + 1, np.ones((1, H + 1), np.float32), expert_ids=ids, weights=w)
    assert the_bell(c).last_why == 2
    big = np.ones((3000, H), np.float32)  # more than the region holds
    out = c.experts_run(layer + 1, big, expert_ids=np.zeros((3000, 2), np.int32), weights=np.full((3000, 2), 0.5, np.float32))
    assert the_bell(c).last_why == 3 and out.y.shape == (3000, H)


def test_a_replaced_or_dropped_layer_is_never_answered_stale(shm_client, ns):
    c, layer = shm_client, 700 + ns
    x = np.random.default_rng(0).standard_normal((2, H), np.float32)
    ids, w = np.array([[0, 1], [2, 3]], np.int32), np.full((2, 2), 0.5, np.float32)
    c.experts_load(layer, *experts(3), format="fp32")
    first = c.experts_run(layer, x, expert_ids=ids, weights=w).y
    c.experts_load(layer, *experts(4), format="fp32")
    second = c.experts_run(layer, x, expert_ids=ids, weights=w)
    assert the_bell(c).last_why == 0
    assert not np.array_equal(first, second.y)
    assert np.array_equal(second.y, by_socket(c, layer, x, ids, w).y)
    c.experts_drop(layer)
    with pytest.raises(vtpu.ParamError, match="no experts uploaded"):
        c.experts_run(layer, x, expert_ids=ids, weights=w)


def test_each_thread_rings_its_own_bell(shm_client, ns):
    import threading

    c, layer = shm_client, 800 + ns
    c.experts_load(layer, *experts(5), format="q4")
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, H), np.float32) for _ in range(4)]
    ids, w = np.array([[0, 1], [2, 3]], np.int32), np.full((2, 2), 0.5, np.float32)
    want = [by_socket(c, layer, x, ids, w).y for x in xs]
    got: dict[int, list] = {}
    bells = []  # the bells themselves: an id alone may be reused once a finished thread's bell is freed

    def worker(i: int) -> None:
        got[i] = [c.experts_run(layer, xs[i], expert_ids=ids, weights=w).y for _ in range(20)]
        bells.append(the_bell(c))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b) for b in bells}) == 4
    for i in range(4):
        assert all(np.array_equal(y, want[i]) for y in got[i])


@pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)
def test_a_restarted_sidecar_answers_through_the_socket_not_a_timeout():
    """A sidecar restarted at the same address has no bell on the client's region: the client
    notices within a tick, and the run goes through the socket to the new sidecar."""
    first = vtpu.Sidecar(address="tcp://127.0.0.1:0").start()
    second = None
    x, ids, w = np.ones((1, H), np.float32), np.array([[0, 1]], np.int32), np.full((1, 2), 0.5, np.float32)
    try:
        with vtpu.connect(first.address, timeout=10, shm=True) as c:
            c.experts_load(1, *experts(6), format="q4")
            want = c.experts_run(1, x, expert_ids=ids, weights=w).y
            assert the_bell(c).last_why == 0
            first.proc.kill()
            first.proc.wait()
            first.stop()
            second = vtpu.Sidecar(address=first.address).start()
            t = time.monotonic()
            with pytest.raises(vtpu.ParamError, match="no experts uploaded"):  # the new sidecar's answer
                c.experts_run(1, x, expert_ids=ids, weights=w)
            assert time.monotonic() - t < 5
            c.experts_load(1, *experts(6), format="q4")
            assert np.array_equal(c.experts_run(1, x, expert_ids=ids, weights=w).y, want)
            assert the_bell(c).last_why == 0  # a bell on the new link
    finally:
        first.stop()
        if second is not None:
            second.stop()
