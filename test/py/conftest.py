"""Fixtures: a session sidecar (real, from dist/), per-test clients, a fake ROUTER server.

Every fixture closes its sockets and stops its processes, also when a test fails.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import zmq

import vtpu

REPO = Path(__file__).resolve().parents[2]
CLI_BUILT = (REPO / "dist" / "bridge" / "cli.js").is_file()
NOT_BUILT = "sidecar not built: dist/bridge/cli.js is missing (run `make` or `npm run build`)"


def shared_dir() -> Path:
    """The shared folder (conformance vectors): $VTPU_SHARED_DIR or ../shared beside the repo."""
    env = os.environ.get("VTPU_SHARED_DIR")
    return Path(env) if env else Path(__file__).parents[2].parent / "shared"


@pytest.fixture(scope="session")
def sidecar() -> Iterator[vtpu.Sidecar]:
    """One real sidecar for the session; skipped only when it is not built."""
    if not CLI_BUILT:
        pytest.skip(NOT_BUILT)
    sc = vtpu.Sidecar()
    try:
        sc.start()  # a built sidecar that fails to start is a failure, not a skip
        yield sc
    finally:
        sc.stop()


@pytest.fixture
def fresh_sidecar() -> Iterator[vtpu.Sidecar]:
    """A sidecar of this test's own (for tests that stop or kill it)."""
    if not CLI_BUILT:
        pytest.skip(NOT_BUILT)
    sc = vtpu.Sidecar()
    try:
        sc.start()
        yield sc
    finally:
        sc.stop(grace=2.0)


_ns = itertools.count(1)


@pytest.fixture(params=["shm", "frames"])
def client(request: pytest.FixtureRequest, sidecar: vtpu.Sidecar) -> Iterator[vtpu.Client]:
    """A client of the session sidecar (10 s timeout), once with the shared-memory path
    (big bodies through the arenas) and once with frames only: every test that takes it
    runs through both."""
    c = vtpu.connect(sidecar.address, timeout=10, shm=request.param == "shm")
    try:
        c.ping()
        assert bool(c._t._local.conn.link) == (request.param == "shm"), "the shared-memory link did not open"
        yield c
    finally:
        c.close()


@pytest.fixture
def ns() -> int:
    """A first coordinate component no other test uses (tests share the session store)."""
    return 100_000 + next(_ns)


class FakeSidecar:
    """A ROUTER on a private ipc address answering with ``handler(header, bodies)``.

    ``handler`` returns ``(reply_header_fields, bodies)`` or ``None`` (no reply). It runs
    on the server thread; ``hold`` lets tests collect requests and answer them later,
    in any order.
    """

    def __init__(self, handler: Callable[[dict[str, Any], list[bytes]], Any], shuffle: bool = False) -> None:
        self.handler = handler
        self.shuffle = shuffle  # hold requests, answer them in shuffled bursts
        self.dir = tempfile.mkdtemp(prefix="vtpu-fake-")
        self.address = f"ipc://{self.dir}/fake.sock"
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.address)
        self.requests: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        held: list[tuple[bytes, dict[str, Any], list[bytes]]] = []
        rng = random.Random(7)
        while not self._stop.is_set():
            if not poller.poll(2 if held else 20):
                self._answer(held)  # idle: flush what is held
                held = []
                continue
            ident, head, *bodies = self.sock.recv_multipart()
            h = json.loads(head)
            if h.get("op") == "SHM":  # like a sidecar without the shared-memory path: clients use frames
                err = {"v": 1, "id": h["id"], "ok": False, "error": {"code": "E_OP", "message": "unknown op 'SHM'"}}
                self.sock.send_multipart([ident, json.dumps(err).encode()])
                continue
            self.requests.append(h)
            held.append((ident, h, bodies))
            if not self.shuffle or len(held) >= rng.randint(1, 8):
                rng.shuffle(held)
                self._answer(held)
                held = []

    def _answer(self, held: list[tuple[bytes, dict[str, Any], list[bytes]]]) -> None:
        for ident, h, bodies in held:
            out = self.handler(h, bodies)
            if out is None:
                continue
            for fields, rbodies in out if isinstance(out, list) else [out]:
                reply = {"v": 1, "id": h["id"], **fields}
                self.sock.send_multipart([ident, json.dumps(reply).encode(), *rbodies])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(linger=0)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeSidecar]]:
    """Factory of :class:`FakeSidecar`; all are closed after the test."""
    made: list[FakeSidecar] = []

    def make(handler: Callable[[dict[str, Any], list[bytes]], Any], shuffle: bool = False) -> FakeSidecar:
        made.append(FakeSidecar(handler, shuffle))
        return made[-1]

    try:
        yield make
    finally:
        for f in made:
            f.close()


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """One local Ray for the session (2 CPUs, no dashboard), always shut down at its end."""
    if not CLI_BUILT:
        pytest.skip(NOT_BUILT)
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[cluster]' (make does)")
    ray.init(num_cpus=2, include_dashboard=False, namespace="vtpu", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
