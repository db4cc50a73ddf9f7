"""Limits and recovery against real sidecars: an oversized request is refused with
LimitError and the sidecar goes on serving; a client reconnects to a restarted sidecar."""
from __future__ import annotations

import tempfile

import numpy as np
import pytest

import vtpu
from conftest import CLI_BUILT, NOT_BUILT

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

COORD = "1.1.1/1.1.1/1.1.1"


def test_oversized_request_and_batch_are_refused_then_served():
    with vtpu.Sidecar(args=["--max-request-bytes", "65536", "--max-batch", "100"]) as sc, \
         vtpu.connect(sc.address, timeout=10) as c:
        with pytest.raises(vtpu.LimitError):
            c.cput(COORD, b"x" * 100_000)
        assert c.cget(COORD) is None  # nothing written
        with pytest.raises(vtpu.LimitError):
            c.cput_batch(np.arange(101 * 9, dtype=np.uint32).reshape(101, 9), ["v"] * 101)
        assert c.crange("*.*.*/*.*.*/*.*.*").coords.shape == (0, 9)
        assert c.cput(COORD, b"small") == 1 and c.cget(COORD) == b"small"


def test_client_reconnects_when_the_sidecar_returns():
    address = f"ipc://{tempfile.mkdtemp(prefix='vtpu-test-')}/restart.sock"
    with vtpu.Sidecar(address=address) as first, vtpu.connect(address, timeout=2) as c:
        c.cput(COORD, "before")
        first.stop()
        with pytest.raises(vtpu.SidecarError):
            c.ping(timeout=0.5)  # nobody is listening: an error, never a hang
        with vtpu.Sidecar(address=address):
            assert c.cget(COORD) is None  # a new, empty sidecar answers the same client
            assert c.cput(COORD, "after") == 1 and c.cget(COORD) == "after"


def test_owned_sidecar_exits_when_its_python_process_is_killed():
    import os
    import signal
    import subprocess
    import sys
    import time

    script = "import vtpu, sys; c = vtpu.connect(); print(c.sidecar.proc.pid, flush=True); sys.stdin.read()"
    py = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(py.stdout.readline())
        os.kill(py.pid, signal.SIGKILL)  # no atexit, no finalizers: only the stdin lifeline
        py.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the sidecar outlived the process that started it")
    finally:
        py.kill()


def test_a_request_past_the_event_loop_budget_is_stopped_and_the_sidecar_serves_on():
    # 200k scrolls: walking every level below the root visits each of them more than once.
    n = 200_000
    idx = np.arange(n)
    coords = np.ones((n, 9), np.uint32)
    coords[:, 6], coords[:, 7], coords[:, 8] = 1 + idx % 97, 1 + idx // 97 % 89, 1 + idx // 8633
    with vtpu.Sidecar(args=["--max-loop-ms", "20"]) as sc, vtpu.connect(sc.address, timeout=60) as c:
        assert c.ping()["limits"]["max_loop_ms"] == 20
        c.cput_batch(coords, ["v"] * n)
        with pytest.raises(vtpu.LimitError, match=r"event-loop budget of 20 ms \(--max-loop-ms\)"):
            c.chier(COORD, direction="down", depth=9, level=0)
        # Nothing was changed and small requests are answered as before.
        assert c.ping()["store"]["entries"] == n
        under = (coords[:, 6] == 1) & (coords[:, 7] == 1)
        assert [x["count"] for x in c.chier(COORD, direction="down", depth=1, level=8)] == [1] * int(under.sum())
