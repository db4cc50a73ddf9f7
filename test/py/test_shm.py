"""The shared-memory tensor path (vtpu/shm.py, bridge/shm/): results, lifetimes, safety.

Every test that takes the ``client`` fixture runs through both paths already; these
check what only this path has: views of the arena, blocks going back, bounds, refusals,
fallbacks, and that nothing is left behind by a client that dies.
"""

from __future__ import annotations

import gc
import json
import mmap
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zmq

import vtpu
from vtpu import shm
from conftest import CLI_BUILT, NOT_BUILT, REPO

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

SHM_DIR = shm.shm_dir()


def link_of(c: vtpu.Client) -> shm.Link:
    c.ping()
    link = c._t._local.conn.link
    assert isinstance(link, shm.Link), "no shared-memory link"
    return link


def held(c: vtpu.Client) -> int:
    return int(c.metrics()["shm"]["reply_bytes_held"])


def files_of(pid: int) -> list[str]:
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"vtpu-{pid}-")]


def batch(ns: int, n: int) -> np.ndarray:
    c = np.zeros((n, 9), np.uint32)
    c[:, 0] = ns
    c[:, 8] = np.arange(n)
    return c


@pytest.fixture
def shm_client(sidecar):
    c = vtpu.connect(sidecar.address, timeout=10, shm=True)
    try:
        yield c
    finally:
        c.close()


def test_replies_are_views_of_the_arena_and_blocks_go_back(shm_client, sidecar, ns):
    coords = batch(ns, 20_000)
    vals = np.random.default_rng(1).standard_normal((20_000, 64)).astype(np.float32)
    shm_client.cput_batch(coords, vals)
    got, found = shm_client.cget_batch(coords)
    assert found.all() and np.array_equal(got, vals)
    assert got.flags.writeable and not got.flags.owndata  # a view, not a copy
    assert held(shm_client) >= vals.nbytes
    with vtpu.connect(sidecar.address, timeout=10, shm=False) as frames:
        assert np.array_equal(frames.cget_batch(coords).values, vals)  # same bytes either way
    del got, found
    gc.collect()
    shm_client.ping()  # the release rides on the next request
    assert held(shm_client) == 0


def test_a_result_is_never_overwritten_by_later_calls(shm_client):
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((1, 4, 512, 64)).astype(np.float32) for _ in range(3))
    o1 = shm_client.cattend(q, k, v, window=64)
    kept = o1.copy()
    o2 = shm_client.cattend(q * 2, k, v * 3, window=64)
    assert np.array_equal(o1, kept) and not np.array_equal(o1, o2)
    o1 += 1  # a caller may write into its result: nobody else's bytes
    assert np.array_equal(o2, shm_client.cattend(q * 2, k, v * 3, window=64))


def test_expert_outputs_are_written_into_reply_blocks_and_kept(shm_client, sidecar):
    rng = np.random.default_rng(4)
    H, I, E = 256, 64, 8
    gu, dn = rng.standard_normal((E, 2 * I, H), np.float32) * 0.1, rng.standard_normal((E, H, I), np.float32) * 0.1
    x, logits = rng.standard_normal((200, H), np.float32), rng.standard_normal((200, E), np.float32)
    shm_client.experts_load(7, gu, dn)
    r1 = shm_client.experts_run(7, x, logits=logits, top_k=2)
    kept = r1.y.copy()
    r2 = shm_client.experts_run(7, x * 3, logits=logits, top_k=2)
    assert not r1.y.flags.owndata and np.array_equal(r1.y, kept) and not np.array_equal(r1.y, r2.y)
    with vtpu.connect(sidecar.address, timeout=10, shm=False) as frames:
        ref = frames.experts_run(7, x, logits=logits, top_k=2)
    assert np.array_equal(ref.y, kept) and np.array_equal(ref.counts, r1.counts)
    shm_client.experts_drop(7)


def test_attention_runs_on_onnx_runtime_and_writes_into_the_reply_block(shm_client, sidecar):
    # Big enough for the compute pool; ORT writes o into the reply's block, so there is no
    # ORT output array to copy from (reading one had sent every later call to the JS kernels).
    rng = np.random.default_rng(5)
    q, k = rng.standard_normal((1, 4, 512, 64), np.float32), rng.standard_normal((1, 2, 512, 64), np.float32)
    got = []
    for _ in range(2):  # the second call proves the first left ORT in use
        res, out = shm_client.compute("CATTEND", {"window": 64, "causal": True, "return_lse": False}, {"q": q, "k": k, "v": k})
        got.append((res["kernel"], out["o"]))
    assert [kern for kern, _ in got] == ["ort", "ort"] and not got[0][1].flags.owndata
    with vtpu.connect(sidecar.address, timeout=10, shm=False) as frames:
        ref = frames.cattend(q, k, k, window=64)
    np.testing.assert_allclose(got[1][1], ref, atol=1e-5)


def test_nothing_is_left_in_the_directory_once_linked(shm_client, sidecar):
    link_of(shm_client)
    assert files_of(os.getpid()) == [] and files_of(sidecar.proc.pid) == []


def test_arena_files_are_owner_only_and_a_failed_open_leaves_none():
    seen = {}

    def refuse(op, params):
        seen["mode"] = os.stat(params["path"]).st_mode & 0o777
        raise vtpu.ParamError("E_PARAM", "no")

    with pytest.raises(vtpu.ParamError):
        shm.Link.open(refuse, size=1 << 20)
    assert seen["mode"] == 0o600 and files_of(os.getpid()) == []


def _raw(address: str, header: dict, *bodies: bytes) -> dict:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = 10_000
    sock.connect(address)
    try:
        sock.send_multipart([json.dumps({"v": 1, "id": 7, **header}).encode(), *bodies])
        return json.loads(sock.recv_multipart()[0])
    finally:
        sock.close()


def test_offsets_outside_the_arena_are_refused_and_the_sidecar_serves_on(shm_client, sidecar):
    link = link_of(shm_client)
    size = len(link._in)
    get = {"op": "CGET", "params": {"batch": True}}
    bad = [
        {"k": link.key, "b": [[0, 64]]},  # the head (token)
        {"k": link.key, "b": [[size - 64, 128]]},  # past the end
        {"k": link.key, "b": [[2**53, 1]]},
        {"k": link.key, "b": [[64, -1]]},
        {"k": link.key, "b": [[64, 64], [128, 64]]},  # two bodies for a one-body op: caught later, still E_FRAME
        {"k": link.key, "b": [None]},  # names a frame that was not sent
        {"k": link.key, "f": [12345]},  # no reply block there
        {"k": "vtpu-1-0000000000000000.in"},
        {"k": link.key, "b": "x"},
        [],
    ]
    for s in bad:
        reply = _raw(sidecar.address, {**get, "shm": s})
        assert reply["ok"] is False and reply["error"]["code"] == "E_FRAME", (s, reply)
    assert shm_client.ping()["version"] == 1
    assert shm_client.cget_batch(batch(1, 3)).found.tolist() == [False] * 3


def _in_arena(size: int = 1 << 20, mode: int = 0o600) -> tuple[str, bytes, mmap.mmap]:
    path = os.path.join(SHM_DIR, f"vtpu-{os.getpid()}-{secrets.token_hex(12)}.in")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)
    os.ftruncate(fd, size)
    mm = mmap.mmap(fd, size)
    os.close(fd)
    token = secrets.token_bytes(16)
    mm[:16] = token
    return path, token, mm


def test_open_refuses_files_that_are_not_a_clients_own_arena(shm_client):
    def open_(path, size, token):
        return shm_client.request("SHM", {"mode": "open", "path": path, "size": size, "token": token.hex()})

    path, token, _ = _in_arena()
    try:
        with pytest.raises(vtpu.ParamError, match="vtpu-<pid>-<hex>.in"):
            open_("/etc/passwd", 1 << 20, token)
        with pytest.raises(vtpu.ParamError, match="token"):
            open_(path, 1 << 20, b"\0" * 16)
        with pytest.raises(vtpu.ParamError, match="bytes"):
            open_(path, 1 << 19, token)
        os.chmod(path, 0o644)
        with pytest.raises(vtpu.ParamError, match="owner only"):
            open_(path, 1 << 20, token)
        os.chmod(path, 0o600)
        res, _ = open_(path, 1 << 20, token)  # and the sidecar's own arena is owner-only too
        assert os.stat(res["path"]).st_mode & 0o777 == 0o600
        assert shm_client.request("SHM", {"mode": "close", "keys": [res["key"]]})[0] == {"closed": 1}
        assert not os.path.exists(res["path"])
    finally:
        os.unlink(path)


def test_a_full_arena_sends_frames_with_the_same_results(sidecar, ns, monkeypatch):
    monkeypatch.setenv("VTPU_SHM_BYTES", str(1 << 20))
    with vtpu.connect(sidecar.address, timeout=10, shm=True) as c:
        link = link_of(c)
        assert len(link._in) == 1 << 20
        big = np.arange(4 << 18, dtype=np.float32).reshape(-1, 256)  # 4 MiB: over the arena
        coords = batch(ns, len(big))
        assert c.cput_batch(coords, big) == len(big)
        assert np.array_equal(c.cget_batch(coords).values, big)
        half = batch(ns, 600)  # 600 KB each: the second cannot fit while the first is held
        first = c.cget_batch(half).values
        second = c.cget_batch(half).values
        assert np.array_equal(first, big[:600]) and np.array_equal(second, big[:600])
        assert c._t._local.conn.link is link  # still linked


def test_shm_off_by_environment(sidecar, monkeypatch):
    monkeypatch.setenv("VTPU_SHM", "0")
    with vtpu.connect(sidecar.address, timeout=10) as c:
        c.ping()
        assert c._t._local.conn.link is False


CHILD = textwrap.dedent(
    """
    import sys, numpy as np, vtpu
    c = vtpu.connect(sys.argv[1], timeout=30, shm=True)
    c.ping()
    print("linked", flush=True)
    x = np.ones((1, 8, 2048, 128), np.float32)
    coords = np.zeros((200_000, 9), np.uint32); coords[:, 0] = 7; coords[:, 8] = np.arange(200_000)
    while True:
        c.cattend(x, x, x, window=128)
        c.cput_batch(coords, np.ones((200_000, 16), np.float32))
        c.cget_batch(coords)
    """
)


def test_a_client_killed_mid_call_leaves_the_sidecar_serving_and_no_files(fresh_sidecar):
    env = {**os.environ, "PYTHONPATH": str(REPO / "pyclient")}
    with vtpu.connect(fresh_sidecar.address, timeout=10, shm=True) as c:
        base = c.metrics()["shm"]["links"]
        for delay in (0.05, 0.3, 0.8):
            child = subprocess.Popen([sys.executable, "-c", CHILD, fresh_sidecar.address], stdout=subprocess.PIPE, env=env)
            try:
                assert child.stdout.readline().strip() == b"linked"
                time.sleep(delay)
                child.send_signal(signal.SIGKILL)
            finally:
                child.wait(10)
            assert c.ping()["version"] == 1
            assert files_of(child.pid) == []
        deadline = time.monotonic() + 30  # the sidecar drops links of dead clients every few seconds
        while c.metrics()["shm"]["links"] > base and time.monotonic() < deadline:
            time.sleep(0.5)
        assert c.metrics()["shm"]["links"] == base
        assert files_of(fresh_sidecar.proc.pid) == []


def test_a_starting_sidecar_removes_arenas_of_dead_processes():
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [os.path.join(SHM_DIR, f"vtpu-{dead.pid}-{secrets.token_hex(12)}.{d}") for d in ("in", "out")]
    live = os.path.join(SHM_DIR, f"vtpu-{os.getpid()}-{secrets.token_hex(12)}.in")
    for p in [*stale, live]:
        os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    try:
        sc = vtpu.Sidecar().start()
        try:
            assert not any(os.path.exists(p) for p in stale)
            assert os.path.exists(live)  # its process is alive: not ours to remove
        finally:
            sc.stop()
    finally:
        for p in [*stale, live]:
            if os.path.exists(p):
                os.unlink(p)


def test_tcp_to_a_loopback_address_links_too():
    sc = vtpu.Sidecar(["--address", "tcp://127.0.0.1:0"]).start()
    try:
        with vtpu.connect(sc.address, timeout=10) as c:
            assert sc.address.startswith("tcp://127.0.0.1:")
            link_of(c)
            a = np.arange(1 << 16, dtype=np.float32)
            c.cput("1.1.1/1.1.1/1.1.1", a)
            assert np.array_equal(c.cget("1.1.1/1.1.1/1.1.1"), a)
    finally:
        sc.stop()


def test_a_client_whose_arena_the_sidecar_cannot_see_falls_back_to_frames(sidecar, ns, monkeypatch, tmp_path):
    # As on another host: the client's file is somewhere the sidecar will not map.
    monkeypatch.setattr(shm, "shm_dir", lambda: str(tmp_path))
    with vtpu.connect(sidecar.address, timeout=10, shm=True) as c:
        coords = batch(ns, 10_000)
        vals = np.random.default_rng(3).standard_normal((10_000, 32)).astype(np.float32)
        c.cput_batch(coords, vals)
        assert np.array_equal(c.cget_batch(coords).values, vals)
        assert c._t._local.conn.link is False
    assert list(tmp_path.iterdir()) == []  # and its refused arena is gone
