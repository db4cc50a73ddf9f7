"""vtpu.cluster on a local Ray: the 6-shard ranch (kill and restart, a shard added under
writes), removing a shard under writes, and joining a cluster from another process.

One Ray for the session (conftest ``ray_local``) and one cluster for the module, always shut down.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import vtpu
import vtpu.cluster as vc

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ranch(ray_local):
    """The example's module and its 6-shard cluster (data kept in a temporary directory),
    serving with CURVE (what shards beyond loopback do), so clients and moves use the key."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import ranch as module
    finally:
        sys.path.remove(str(ROOT / "examples"))
    cl = module.start(6, cpus_per_shard=0.1, name="ranch", curve=True)
    try:
        yield module, cl
    finally:
        cl.shutdown()


def test_ranch_workload_small(ranch):
    module, cl = ranch
    assert sorted(cl.route_table().shards) == list(range(6))
    assert len(set(cl.sidecar_pids().values())) == 6
    with pytest.raises(vtpu.TimeoutError):  # without the key no request gets through
        with vtpu.connect(cl.route_table().address(0), timeout=0.5) as plain:
            plain.ping()
    lines: list[str] = []
    out = module.workload(cl, 3000, log=lines.append)  # asserts every answer itself
    assert out["shards"] == 7 and out["moved"]["scrolls"] > 0 and out["acked"] > 0
    assert any("SIGKILLed" in ln and "intact" in ln for ln in lines)


def test_asking_every_shard_waits_out_a_restarting_actor(ranch, monkeypatch):
    """A shard's new sidecar can answer clients before Ray calls its restarted actor alive (the
    ranch's SIGKILL step raced into this): per-shard queries ask again instead of failing."""
    import ray

    _, cl = ranch
    real, calls = ray.get, []

    def restarting_once(refs, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ray.exceptions.ActorUnavailableError("The actor is restarting", None)
        return real(refs, *args, **kwargs)

    monkeypatch.setattr(ray, "get", restarting_once)
    assert sorted(cl.sidecar_pids()) == sorted(cl.route_table().shards)
    assert len(calls) == 2


def test_remove_shard_under_writes_and_join_from_another_process(ranch):
    _, cl = ranch
    c = cl.client(timeout=10)
    co = np.zeros((300, 9), np.uint32)
    co[:, 0], co[:, 2], co[:, 8] = (np.arange(300) * 2) % 600, 10_000, np.arange(300)
    c.cput_batch(co, [f"v{i}" for i in range(300)])
    before = sum(cl.shard_sizes().values())
    victim = cl.route_table().owner(co[0])

    acked: dict[int, str] = {}
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            row = i % 300
            c.cput(co[row], f"w{i}")
            acked[row] = f"w{i}"
            i += 1

    w = threading.Thread(target=writer)
    w.start()
    try:
        moved = cl.remove_shard(victim)
    finally:
        stop.set()
        w.join()
    assert moved["scrolls"] > 0 and victim not in cl.route_table().shards
    got = c.cget_batch(co)
    want = [acked.get(i, f"v{i}") for i in range(300)]
    assert got.found.all() and list(got.values) == want, "no acknowledged write lost"
    assert sum(cl.shard_sizes().values()) == before and victim not in cl.shard_sizes()

    # Another process joins by the Ray address and reads through the same table.
    code = (
        "import vtpu.cluster as vc; cl = vc.connect('auto', name='ranch'); c = cl.client(); "
        f"print(cl.route_table().version, c.cget({co[7].tolist()})); c.close()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == [str(cl.route_table().version), want[7]]


def test_start_refuses_bad_arguments(ray_local):
    with pytest.raises(vtpu.ParamError):
        vc.start(0)
    with pytest.raises(vtpu.ParamError):
        vc.start(2, placement="diagonal")
    with pytest.raises(vtpu.ParamError):
        vc.connect("auto", addresses=["tcp://127.0.0.1:1"])
