"""Range sync between two live sidecars (CSYNC): convergence, bytes moved, a peer that
vanishes mid-sync, ownership, the interval trigger."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from typing import Callable, Iterator

import numpy as np
import pytest
import zmq

import vtpu
from conftest import CLI_BUILT, NOT_BUILT

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

ALL = "*.*.*/*.*.*/*.*.*"
N = 100_000
VALUE = 100


def grid(n: int, first: int = 1) -> np.ndarray:
    """n distinct coordinates first.1.1/1.1.1/k.1.j."""
    c = np.ones((n, 9), np.uint32)
    c[:, 0] = first
    c[:, 6] = np.arange(n) // 1000 + 1
    c[:, 8] = np.arange(n) % 1000 + 1
    return c


def rows(values: np.ndarray) -> list[bytes]:
    return [bytes(v) for v in values]


@pytest.fixture
def pair() -> Iterator[tuple[vtpu.Client, vtpu.Client, vtpu.Sidecar, vtpu.Sidecar]]:
    """Two sidecars and a client of each."""
    with vtpu.Sidecar() as sa, vtpu.Sidecar() as sb:
        with vtpu.connect(sa.address, timeout=60) as a, vtpu.connect(sb.address, timeout=60) as b:
            yield a, b, sa, sb


def roots(a: vtpu.Client, b: vtpu.Client, pattern: str = ALL) -> tuple[list[int], list[int]]:
    return a.range_hash(pattern)["root"], b.range_hash(pattern)["root"]


def test_100k_with_100_changes_each_side_converge_moving_only_the_changes(pair) -> None:
    a, b, _, sb = pair
    rng = np.random.default_rng(6)
    coords = grid(N)
    vals = rng.integers(0, 256, (N, VALUE), dtype=np.uint8)
    a.cput_batch(coords, vals, kind="bytes")
    b.cput_batch(coords, vals, kind="bytes")
    first = a.sync(sb.address, ALL)
    assert first["converged"] and first["passes"] == 0 and first["data_bytes"] == 0

    picks = rng.choice(N, 200, replace=False)
    ia, ib = picks[:100], picks[100:]
    va, vb = vals[ia].copy(), vals[ib].copy()
    va[:, 0] ^= 0xFF
    vb[:, 1] ^= 0xFF
    a.cput_batch(coords[ia], va, kind="bytes")
    b.cput_batch(coords[ib], vb, kind="bytes")
    ra, rb = roots(a, b)
    assert ra != rb

    st = a.sync(sb.address, ALL)
    assert st["converged"] and st["passes"] == 1
    assert (st["scrolls_sent"], st["scrolls_received"]) == (100, 100)
    ra, rb = roots(a, b)
    assert ra == rb and ra[0] == N
    assert rows(b.cget_batch(coords[ia]).values) == rows(va)
    assert rows(a.cget_batch(coords[ib]).values) == rows(vb)

    changed_payload = 200 * (VALUE + 9 * 4)  # the changed values with their coordinates
    assert st["bytes_sent"] + st["bytes_received"] == st["hash_bytes"] + st["data_bytes"]
    assert st["data_bytes"] <= 3 * changed_payload, st
    # The hash exchange descends only into differing ranges: a small fraction of the range.
    assert st["hash_bytes"] < N * VALUE / 20, st
    assert st["ranges_compared"] < 200 * 16 * 6, st

    again = a.sync(sb.address, ALL)
    assert again["converged"] and again["passes"] == 0 and again["data_bytes"] == 0


def test_deletes_propagate_and_later_write_wins(pair) -> None:
    a, b, _, sb = pair
    coords = grid(50, first=3)
    a.cput_batch(coords, [f"v{i}" for i in range(50)])
    assert a.sync(sb.address, ALL)["converged"]
    assert b.cget(coords[7]) == "v7"
    b.cdel(coords[7])
    a.cput(coords[8], "a first")
    # Two processes on one wall clock (ms): 10 ms apart orders them. The exact ordering rules
    # run with injected clocks in test/ts/sync/driver.test.ts.
    time.sleep(0.01)
    b.cput(coords[8], "b later")
    st = a.sync(sb.address, ALL)
    assert st["converged"] and st["deleted_local"] == 1
    assert a.cget(coords[7]) is None
    assert a.cget(coords[8]) == b.cget(coords[8]) == "b later"


class VanishingPeer:
    """Relays requests to a real sidecar until it has relayed `after` CSYNC applies, then
    goes silent: a peer that disappears mid-sync. With `on_cut`, the `after`-th apply is
    forwarded but never answered: `on_cut` runs instead (e.g. to kill the sidecar in it)."""

    def __init__(self, target: str, after: int, on_cut: Callable[[], None] | None = None) -> None:
        self.on_cut = on_cut
        self.dir = tempfile.mkdtemp(prefix="vtpu-vanish-")
        self.address = f"ipc://{self.dir}/peer.sock"
        ctx = zmq.Context.instance()
        self.front = ctx.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        self.front.bind(self.address)
        self.back = ctx.socket(zmq.DEALER)
        self.back.setsockopt(zmq.LINGER, 0)
        self.back.connect(target)
        self.after = after
        self.applies = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.front.poll(20):
                continue
            ident, *frames = self.front.recv_multipart()
            if self.applies >= self.after:
                continue  # gone: requests vanish unanswered
            head = json.loads(frames[0])
            is_apply = head.get("op") == "CSYNC" and head.get("params", {}).get("step") == "apply"
            self.back.send_multipart(frames)
            if is_apply and self.applies + 1 == self.after and self.on_cut is not None:
                self.on_cut()  # the sidecar gets this apply but never answers it
                self.applies += 1
                continue
            reply = self.back.recv_multipart()
            self.front.send_multipart([ident, *reply])
            if is_apply:
                self.applies += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.front.close(linger=0)
        self.back.close(linger=0)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_peer_vanishing_mid_sync_is_a_typed_error_and_leaves_both_consistent(pair) -> None:
    a, b, _, sb = pair
    coords = grid(10_000, first=4)
    values = [f"scroll {i} " * 4 for i in range(10_000)]
    a.cput_batch(coords, values)  # 10,000 to push: three apply batches
    b.cput(grid(1, first=5)[0], "only on b")
    peer = VanishingPeer(sb.address, after=1)
    try:
        with pytest.raises(vtpu.PeerError) as err:
            a.sync(peer.address, ALL, peer_timeout=3.0)
        assert err.value.code == "E_PEER"
    finally:
        peer.close()
    # b holds exactly the first atomic batch, every scroll whole; a is unchanged and serving.
    got = b.crange("4.*.*/*.*.*/*.*.*")
    assert 0 < len(got.coords) < 10_000
    index = {tuple(c): i for i, c in enumerate(coords.tolist())}
    for c, v in zip(got.coords.tolist(), got.values):
        assert v == values[index[tuple(c)]]
    assert a.cget(grid(1, first=5)[0]) is None
    assert len(a.crange("4.*.*/*.*.*/*.*.*").coords) == 10_000
    # Repeatable: a direct sync finishes the job.
    st = a.sync(sb.address, ALL)
    assert st["converged"]
    ra, rb = roots(a, b)
    assert ra == rb and ra[0] == 10_001


def test_peer_killed_mid_sync(tmp_path) -> None:
    """A real SIGKILL of the peer while it applies a batch: a typed PeerError on the driving
    side, which keeps serving; the peer, restarted from its data directory, holds the
    batches it acknowledged and maybe the one it was killed in, every scroll whole."""
    coords = grid(60_000, first=6)
    values = [f"k{i:06d}" * 8 for i in range(60_000)]
    data = str(tmp_path / "b")
    with vtpu.Sidecar() as sa, vtpu.connect(sa.address, timeout=60) as a:
        a.cput_batch(coords, values)
        sb = vtpu.Sidecar(["--data", data]).start()
        # Relays to b; forwards the third apply, then kills b before it can answer.
        peer = VanishingPeer(sb.address, after=3, on_cut=lambda: sb.proc.kill())  # type: ignore[union-attr]
        try:
            with pytest.raises(vtpu.PeerError):
                a.sync(peer.address, ALL, peer_timeout=2.0)
        finally:
            peer.close()
            sb.stop()
        assert peer.applies == 3 and sb.proc.returncode == -9  # type: ignore[union-attr]
        assert len(a.crange("6.*.*/*.*.*/*.*.*", values=False).coords) == 60_000  # a keeps serving, unchanged
    with vtpu.Sidecar(["--data", data]) as again, vtpu.connect(again.address, timeout=60) as b:
        got = b.crange("6.*.*/*.*.*/*.*.*")
        index = {tuple(c): i for i, c in enumerate(coords.tolist())}
        assert 0 < len(got.coords) < 60_000
        for c, v in zip(got.coords.tolist(), got.values):
            assert v == values[index[tuple(c)]]


def test_ownership_refuses_foreign_writes_and_owner_wins() -> None:
    alice_range, bob_range = "1.*.*/*.*.*/*.*.*", "2.*.*/*.*.*/*.*.*"
    with vtpu.Sidecar(["--agent", "alice", "--owns", alice_range, "--owner", f"bob={bob_range}"]) as sa, vtpu.Sidecar(
        ["--agent", "bob", "--owns", bob_range]
    ) as sb, vtpu.connect(sa.address, timeout=20) as a, vtpu.connect(sb.address, timeout=20) as b:
        a.cput("1.1.1/1.1.1/1.1.1", "alice's")
        with pytest.raises(vtpu.OwnershipError) as err:
            a.cput("2.1.1/1.1.1/1.1.1", "not alice's")
        assert err.value.code == "E_OWNER" and "bob" in err.value.message
        with pytest.raises(vtpu.OwnershipError):
            a.cdel("2.1.1/1.1.1/1.1.1")
        b.cput("1.1.1/1.1.1/1.1.1", "bob squats")  # bob does not know alice's range yet
        b.cput("2.1.1/1.1.1/1.1.1", "bob's")
        st = a.sync(sb.address, ALL)
        assert st["converged"]
        assert a.cget("2.1.1/1.1.1/1.1.1") == b.cget("2.1.1/1.1.1/1.1.1") == "bob's"
        assert b.cget("1.1.1/1.1.1/1.1.1") == "alice's"  # the owner's value wins, though older
        with pytest.raises(vtpu.OwnershipError):
            b.cput("1.1.1/1.1.1/1.1.2", "learned at sync: refused")
        assert {"agent": "alice", "pattern": alice_range} in b.range_hash(ALL)["owns"]


def test_interval_trigger_and_sync_errors() -> None:
    with vtpu.Sidecar() as sa, vtpu.connect(sa.address, timeout=20) as a:
        with vtpu.Sidecar(["--sync-peer", sa.address, "--sync-every", "0.2", "--sync-pattern", "7.*.*/*.*.*/*.*.*"]) as sb, vtpu.connect(
            sb.address, timeout=20
        ) as b:
            a.cput("7.1.1/1.1.1/1.1.1", "from a")
            b.cput("7.1.1/1.1.1/1.1.2", "from b")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if b.cget("7.1.1/1.1.1/1.1.1") == "from a" and a.cget("7.1.1/1.1.1/1.1.2") == "from b":
                    break
                time.sleep(0.1)
            else:
                pytest.fail("the interval sync did not bring the scrolls across")
        gone = f"ipc://{tempfile.gettempdir()}/vtpu-no-such-peer-{os.getpid()}.sock"
        with pytest.raises(vtpu.PeerError):
            a.sync(gone, ALL, peer_timeout=0.3)
        with pytest.raises(vtpu.PatternError):
            a.sync(sa.address, "1.2")
        with pytest.raises(vtpu.ParamError):
            a.sync(sa.address, ALL, server_key="short")
