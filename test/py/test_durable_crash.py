"""Crash safety of ``--data``: a sidecar killed with SIGKILL at random moments keeps every
acknowledged write, and a write in flight at the kill is all there or not there at all.

Short by default (3 kills); ``VTPU_SOAK=1`` (``make soak``) kills 25 times.
"""

from __future__ import annotations

import os
import re
import random
import threading
import time

import numpy as np
import pytest

import vtpu
from conftest import CLI_BUILT, NOT_BUILT

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

SOAK = os.environ.get("VTPU_SOAK") == "1"
KILLS = 25 if SOAK else 3
A, B = 4, 60  # keys 1.1.1/1.1.1/1.a.b: few enough that writes overwrite each other


def key(a: int, b: int) -> str:
    return f"1.1.1/1.1.1/1.{a}.{b}"


def value(k: str, ver: int, rng: random.Random) -> str:
    # Sometimes large, so a kill can land mid-record; exact equality checks every byte.
    n = rng.choice((8, 64, 4096, 60000))
    return f"{k}#{ver}#" + "x" * n


class Writer(threading.Thread):
    """Writes until a request fails (the kill); records what was acknowledged and what was in flight."""

    def __init__(self, client: vtpu.Client, acked: dict[str, str | None], seed: int, start_ver: int) -> None:
        super().__init__(daemon=True)
        self.c, self.acked, self.rng, self.ver = client, acked, random.Random(seed), start_ver
        self.pending: dict[str, tuple[str | None, str | None]] = {}  # key -> (before, after)
        self.done = 0

    def run(self) -> None:
        rng = self.rng
        while True:
            self.ver += 1
            op = rng.random()
            if op < 0.6:
                change = {key(rng.randint(1, A), rng.randint(1, B)): None}
                for k in change:
                    change[k] = value(k, self.ver, rng)
            elif op < 0.85:
                a, b0 = rng.randint(1, A), rng.randint(1, B - 16)
                change = {key(a, b): value(key(a, b), self.ver, rng) for b in range(b0, b0 + 16)}
            else:
                change = {key(rng.randint(1, A), rng.randint(1, B)): None}
            self.pending = {k: (self.acked.get(k), v) for k, v in change.items()}
            try:
                self.apply(change)
            except vtpu.VtpuError:
                return  # killed: this change is the one in flight
            self.acked.update(change)
            self.pending = {}
            self.done += 1

    def apply(self, change: dict[str, str | None]) -> None:
        keys = list(change)
        if change[keys[0]] is None:
            self.c.cdel(keys[0])
        elif len(keys) == 1:
            self.c.cput(keys[0], change[keys[0]])
        else:
            coords = np.array([vtpu.coords_array(k)[0] for k in keys], dtype=np.uint32)
            self.c.cput_batch(coords, [change[k] for k in keys])


def check(c: vtpu.Client, acked: dict[str, str | None], pending: dict[str, tuple[str | None, str | None]]) -> None:
    r = c.crange()
    stored = {vtpu.format_coord(row): v for row, v in zip(r.coords, r.values)}
    for k, v in acked.items():
        if k not in pending:
            assert stored.get(k) == v, f"acknowledged write at {k} lost or wrong"
    extra = set(stored) - set(acked) - set(pending)
    assert not extra, f"scrolls nobody wrote: {sorted(extra)[:3]}"
    if pending:
        # The write in flight: all of it or none of it (a batch never half-applied).
        states = {"after" if stored.get(k) == after else "before" if stored.get(k) == before else "torn"
                  for k, (before, after) in pending.items()}
        assert "torn" not in states, f"a write in flight was half-written: {states}"
        assert len(states) == 1 or all(before == after for before, after in pending.values()), states


def test_sigkill_keeps_acknowledged_writes(tmp_path) -> None:
    data = tmp_path / "data"
    rng = random.Random(1234)
    acked: dict[str, str | None] = {}
    ver = total = 0
    args = ["--data", str(data), "--snapshot-every", "150"]
    for kill in range(KILLS + 1):
        sc = vtpu.Sidecar(args).start()
        try:
            with vtpu.Client(sc.address) as c:
                out = (sc._dir / "stdout.log").read_text()
                assert "vtpu data recovered" in out
                check(c, acked, pending if kill else {})
                for k in pending if kill else ():
                    acked[k] = c.cget(k)  # what recovery decided is now the truth
            if kill == KILLS:
                break
            # A short timeout: the request in flight at the kill fails fast. A slow reply
            # that times out early is just an earlier "kill": it counts as in flight.
            with vtpu.Client(sc.address, timeout=1) as wc:
                w = Writer(wc, acked, seed=rng.randrange(1 << 30), start_ver=ver)
                w.start()
                deadline = time.monotonic() + 30
                while w.done == 0 and w.is_alive() and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.05, 0.5))
                sc.proc.kill()
                w.join(timeout=30)
                assert not w.is_alive()
                pending, ver = w.pending, w.ver
                total += w.done
        finally:
            sc.stop(grace=2.0)
    assert total > 0 and any(v is not None for v in acked.values())


def test_readme_durability_example_runs() -> None:
    """The README's Durability snippet runs as written: a second sidecar recovers the write."""
    from test_examples import _run_readme_snippet

    assert _run_readme_snippet(r"## Durability\n").strip() == "kept"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fsync": 0}, "fsync must be"),
        ({"fsync": "sometimes"}, "fsync must be"),
        ({"snapshot_every": 0}, "snapshot_every must be"),
        ({"snapshot_every": "10m"}, "snapshot_every must be"),
    ],
)
def test_durable_options_checked_before_starting(tmp_path, kwargs, message) -> None:
    with pytest.raises(vtpu.ParamError, match=message):
        vtpu.connect(data_dir=tmp_path, **kwargs)


def test_data_dir_needs_a_started_sidecar(tmp_path) -> None:
    with pytest.raises(vtpu.ParamError, match="data_dir applies"):
        vtpu.connect("ipc:///nonexistent.sock", data_dir=tmp_path)


def test_two_sidecars_cannot_share_a_data_dir(tmp_path) -> None:
    with vtpu.Sidecar(["--data", str(tmp_path)]):
        with pytest.raises(vtpu.SidecarError, match="in use by process"):
            vtpu.Sidecar(["--data", str(tmp_path)]).start()


def test_fsync_group_commit_survives_sigkill(tmp_path) -> None:
    """With ``--fsync MS`` a write is in the file before its reply: a process kill loses nothing."""
    args = ["--data", str(tmp_path), "--fsync", "1000", "--snapshot-every", "1000000"]
    with vtpu.Sidecar(args) as sc, vtpu.Client(sc.address) as c:
        for i in range(1, 201):
            c.cput(key(1, i % 60 + 1), f"v{i}")
        sc.proc.kill()
        sc.proc.wait()
    with vtpu.Sidecar(args) as sc, vtpu.Client(sc.address) as c:
        assert c.cget(key(1, 200 % 60 + 1)) == "v200"
        assert len(c.crange().coords) == 60


def test_a_flipped_bit_mid_log_refuses_to_start_and_truncate_keeps_a_copy(tmp_path) -> None:
    """The issue's case: 400 CPUTs, one bit flipped at 25% of the log. Not a torn tail: the
    sidecar refuses, naming the file and byte; ``--recover truncate`` keeps the prefix and a
    copy of every byte it cuts."""
    with vtpu.Sidecar(["--data", str(tmp_path)]) as sc, vtpu.Client(sc.address) as c:
        for i in range(1, 401):
            c.cput(key(1, i), f"v{i}")
    (log,) = sorted(tmp_path.glob("log-*.vlog"))
    data = bytearray(log.read_bytes())
    data[len(data) // 4] ^= 0x04
    log.write_bytes(data)
    with pytest.raises(vtpu.SidecarError, match=rf"{log.name} is damaged at byte (\d+).*record \d+ onward.*--recover=truncate") as err:
        vtpu.Sidecar(["--data", str(tmp_path)]).start()
    offset = int(re.search(r"damaged at byte (\d+)", str(err.value)).group(1))
    assert log.read_bytes() == bytes(data)  # refusing cut nothing
    with vtpu.Sidecar(["--data", str(tmp_path), "--recover", "truncate"]) as sc, vtpu.Client(sc.address) as c:
        kept = len(c.crange().coords)
        assert 50 < kept < 150
        assert c.cget(key(1, kept)) == f"v{kept}"
    assert (tmp_path / f"{log.name}.cut-{offset}").read_bytes() == bytes(data[offset:])
