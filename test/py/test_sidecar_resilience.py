"""Concurrency, timeouts and a dying sidecar, against the real sidecar."""

import hashlib
import os
import signal
import threading
import time

import numpy as np
import pytest

import vtpu

from conftest import CLI_BUILT, NOT_BUILT


def test_threads_each_get_their_own_replies(client, ns):
    errors = []

    def worker(t):
        rng = np.random.default_rng(t)
        try:
            for i in range(500):
                coord = [ns, t, i % 50, 0, 0, 0, 0, 0, 0]
                op = i % 4
                if op == 0:
                    payload = rng.bytes(32)
                    client.cput(coord, payload + hashlib.sha256(payload).digest())
                elif op == 1:
                    v = client.cget(coord)
                    assert v is None or hashlib.sha256(v[:32]).digest() == v[32:]
                elif op == 2:
                    vals = rng.random((4, 3), dtype=np.float32)
                    vals[:, 0] = t
                    client.cput_batch([[ns, t, 100 + k, 0, 0, 0, 0, 0, 0] for k in range(4)], vals)
                else:
                    got, found = client.cget_batch([[ns, t, 100 + k, 0, 0, 0, 0, 0, 0] for k in range(4)])
                    assert not found.any() or np.all(got[found][:, 0] == t)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[:3]


def test_stopped_sidecar_times_out_then_reconnects(fresh_sidecar):
    with vtpu.connect(fresh_sidecar.address, timeout=10) as c:
        c.cput("1.1.1/1.1.1/1.1.1", "before")
        os.kill(fresh_sidecar.proc.pid, signal.SIGSTOP)
        try:
            t = time.monotonic()
            with pytest.raises(vtpu.TimeoutError):
                c.cget("1.1.1/1.1.1/1.1.1", timeout=0.5)
            assert time.monotonic() - t < 3
        finally:
            os.kill(fresh_sidecar.proc.pid, signal.SIGCONT)
        assert c.cget("1.1.1/1.1.1/1.1.1") == "before"


def test_killed_sidecar_raises_sidecar_error(fresh_sidecar):
    with vtpu.connect(fresh_sidecar.address, timeout=1.5) as c:
        c.ping()
        fresh_sidecar.proc.kill()
        fresh_sidecar.proc.wait()
        t = time.monotonic()
        with pytest.raises(vtpu.SidecarError):
            c.ping()
        assert time.monotonic() - t < 5


@pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)
def test_owned_sidecar_killed_fails_fast():
    with vtpu.connect(timeout=30) as c:  # spawns its own
        c.ping()
        c.sidecar.proc.kill()
        t = time.monotonic()
        with pytest.raises(vtpu.SidecarError, match="exited"):
            c.ping()
        assert time.monotonic() - t < 3


@pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)
def test_a_restarted_sidecar_gets_the_whole_request_again():
    """A sidecar restarted at the same address knows no shared-memory link: the client's next
    request is refused before it runs and is sent again, bodies included (a Ray-restarted
    cluster shard does exactly this)."""
    first = vtpu.Sidecar(address="tcp://127.0.0.1:0").start()
    address = first.address
    coords = np.zeros((4096, 9), np.uint32)
    coords[:, 8] = np.arange(4096)
    vals = np.arange(4096 * 16, dtype=np.float32).reshape(4096, 16)  # bodies well over the shm threshold
    second = None
    try:
        with vtpu.connect(address, timeout=10, shm=True) as c:
            c.cput_batch(coords, vals)
            first.proc.kill()
            first.proc.wait()
            first.stop()
            second = vtpu.Sidecar(address=address).start()
            assert c.cput_batch(coords, vals) == 4096
            got = c.cget_batch(coords)
            assert got.found.all() and np.array_equal(got.values, vals)
    finally:
        first.stop()
        if second is not None:
            second.stop()
