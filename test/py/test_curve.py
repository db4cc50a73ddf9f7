"""ZeroMQ CURVE and exposure rules: keys from `vtpu keygen`, no reply without the server
key, tcp beyond loopback refused without CURVE or --insecure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import vtpu
from conftest import CLI_BUILT, NOT_BUILT
from vtpu.launcher import find_cli, find_node

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)


@pytest.fixture
def keyfile(tmp_path: Path) -> tuple[Path, str]:
    """A CURVE keypair written by `vtpu keygen --out`; returns (secret file, public key)."""
    out = tmp_path / "server.key"
    run = subprocess.run([find_node(), str(find_cli()), "keygen", "--out", str(out)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert (out.stat().st_mode & 0o777) == 0o600
    public = (tmp_path / "server.key.pub").read_text().strip()
    assert f"public: {public}" in run.stdout and len(public) == 40
    return out, public


def test_keygen_prints_a_keypair() -> None:
    run = subprocess.run([find_node(), str(find_cli()), "keygen"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0
    lines = dict(line.split(": ", 1) for line in run.stdout.strip().splitlines())
    assert len(lines["public"]) == 40 and len(lines["secret"]) == 40


def test_curve_client_needs_the_server_key(keyfile: tuple[Path, str]) -> None:
    secret, public = keyfile
    with vtpu.Sidecar(["--curve-secret-file", str(secret)], address="tcp://127.0.0.1:0") as sc:
        with vtpu.connect(sc.address, timeout=1.0) as plain:
            with pytest.raises(vtpu.TimeoutError) as err:
                plain.ping()
            assert err.value.code == "E_TIMEOUT"
        other = subprocess.run([find_node(), str(find_cli()), "keygen"], capture_output=True, text=True, timeout=30)
        wrong = dict(line.split(": ", 1) for line in other.stdout.strip().splitlines())["public"]
        with vtpu.connect(sc.address, timeout=1.0, server_key=wrong) as c:
            with pytest.raises(vtpu.TimeoutError):
                c.ping()
        with vtpu.connect(sc.address, timeout=10, server_key=public) as c:
            assert "PING" in c.ping()["ops"]
            c.cput("1.1.1/1.1.1/1.1.1", "secret scroll")
            # A sidecar syncs with a CURVE peer when given its key.
            with vtpu.connect(timeout=20) as local:
                st = local.sync(sc.address, "*.*.*/*.*.*/*.*.*", server_key=public)
                assert st["converged"] and local.cget("1.1.1/1.1.1/1.1.1") == "secret scroll"
                with pytest.raises(vtpu.PeerError):
                    local.sync(sc.address, "*.*.*/*.*.*/*.*.*", peer_timeout=0.5)


def test_bad_server_key_is_a_param_error() -> None:
    with pytest.raises(vtpu.ParamError):
        vtpu.connect("tcp://127.0.0.1:1", server_key="not a key")


def test_tcp_beyond_loopback_needs_curve_or_insecure(keyfile: tuple[Path, str]) -> None:
    with pytest.raises(vtpu.SidecarError) as err:
        vtpu.Sidecar(address="tcp://0.0.0.0:0").start()
    assert "CURVE" in str(err.value) and "--insecure" in str(err.value)
    with vtpu.Sidecar(["--insecure"], address="tcp://0.0.0.0:0") as sc:
        port = sc.address.rsplit(":", 1)[1]
        with vtpu.connect(f"tcp://127.0.0.1:{port}", timeout=10) as c:
            assert c.ping()["ops"]
    secret, public = keyfile
    with vtpu.Sidecar(["--curve-secret-file", str(secret)], address="tcp://0.0.0.0:0") as sc:
        port = sc.address.rsplit(":", 1)[1]
        with vtpu.connect(f"tcp://127.0.0.1:{port}", timeout=10, server_key=public) as c:
            assert c.ping()["ops"]


def test_unreadable_or_malformed_secret_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("too short\n")
    for path in (bad, tmp_path / "missing.key"):
        run = subprocess.run(
            [find_node(), str(find_cli()), "serve", "--curve-secret-file", str(path)], capture_output=True, text=True, timeout=30
        )
        assert run.returncode == 2 and "--curve-secret-file" in run.stderr


def test_max_peers_refuses_clients_over_the_limit() -> None:
    with vtpu.Sidecar(["--max-peers", "2"]) as sc:
        with vtpu.connect(sc.address, timeout=10) as c1, vtpu.connect(sc.address, timeout=10) as c2:
            assert c1.ping()["ops"] and c2.ping()["ops"]
            with vtpu.connect(sc.address, timeout=10) as c3:
                with pytest.raises(vtpu.LimitError) as err:
                    c3.ping()
                assert "--max-peers" in err.value.message
            c1.cput("1.1.1/1.1.1/1.1.1", "still served")
            assert c2.cget("1.1.1/1.1.1/1.1.1") == "still served"
