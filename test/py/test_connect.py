"""connect() fails fast and clearly: nothing listening, malformed addresses, bad timeouts, wait=."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import vtpu
import vtpu.address


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fails_fast(address: str, reason: str) -> None:
    t = time.monotonic()
    with pytest.raises(vtpu.SidecarError) as info:
        vtpu.connect(address, timeout=30)
    assert time.monotonic() - t < 2.5, "connect() must not wait for the request timeout"
    assert info.value.code == "E_CLOSED"
    assert address in str(info.value) and reason in str(info.value)
    assert "wait=" in str(info.value)


def test_missing_ipc_socket(tmp_path):
    _fails_fast(f"ipc://{tmp_path}/nobody.sock", "no such socket file")


def test_stale_ipc_socket_file(tmp_path):
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # bound, never listening: what a killed sidecar leaves behind
    s.close()
    _fails_fast(f"ipc://{path}", "refused")


def test_refused_tcp_port():
    _fails_fast(f"tcp://127.0.0.1:{_free_port()}", "refused")


@pytest.mark.parametrize(
    "address",
    ["garbage", "", "ipc://", "tcp://127.0.0.1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:70000", "tcp://:5555",
     "tcp://127.0.0.1:*", "udp://127.0.0.1:5555", "tcp://127.0.0.1:55 55", 5555],
)
def test_malformed_address_is_a_param_error(address):
    with pytest.raises(vtpu.ParamError) as info:
        vtpu.connect(address) if address != "" else vtpu.Client(address)
    assert info.value.code == "E_PARAM"


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), "soon", True])
def test_non_positive_timeouts_are_refused(timeout, sidecar):
    with pytest.raises(vtpu.ParamError, match="timeout"):
        vtpu.connect(sidecar.address, timeout=timeout)
    with vtpu.connect(sidecar.address, timeout=5) as c:
        with pytest.raises(vtpu.ParamError, match="timeout"):
            c.ping(timeout=timeout)
        with pytest.raises(vtpu.ParamError, match="timeout"):
            c.timeout = timeout
        assert c.timeout == 5


def test_wait_for_a_sidecar_that_starts_later(tmp_path):
    address = f"ipc://{tmp_path}/later.sock"
    started: list[vtpu.Sidecar] = []

    def start_late() -> None:
        time.sleep(0.5)
        started.append(vtpu.Sidecar(address=address).start())

    th = threading.Thread(target=start_late)
    th.start()
    try:
        with vtpu.connect(address, timeout=10, wait=30) as c:
            assert c.ping()["ops"]
    finally:
        th.join()
        for sc in started:
            sc.stop()


def test_wait_gives_up_naming_the_address(tmp_path):
    address = f"ipc://{tmp_path}/never.sock"
    t = time.monotonic()
    with pytest.raises(vtpu.SidecarError, match="after waiting 0.3 s"):
        vtpu.connect(address, wait=0.3)
    assert 0.3 <= time.monotonic() - t < 2.5
    with pytest.raises(vtpu.ParamError, match="wait"):
        vtpu.connect(address, wait=-1)


def test_a_listening_sidecar_connects(sidecar):
    with vtpu.connect(sidecar.address, timeout=5) as c:
        assert c.ping()["ops"]


def test_localhost_finds_an_ipv4_only_listener():
    with socket.socket() as srv:  # a plain listener stands in: the probe only needs an accept
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        vtpu.address.probe(f"tcp://localhost:{srv.getsockname()[1]}")
