"""The launcher against stand-in sidecars (VTPU_NODE=a Python posing as Node 20, VTPU_SIDECAR_JS=a script)."""

import os
import sys
import textwrap

import pytest

import vtpu
from vtpu import launcher

FAKE_OK = """
import sys, time, signal, zmq, json
addr = sys.argv[sys.argv.index("--address") + 1]
ctx = zmq.Context(); s = ctx.socket(zmq.ROUTER); s.bind(addr)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("vtpu sidecar listening on " + addr, flush=True)
while True:
    if not s.poll(50):
        continue
    ident, head, *rest = s.recv_multipart()
    h = json.loads(head)
    s.send_multipart([ident, json.dumps({"v": 1, "id": h["id"], "ok": True, "result": {"version": 1}}).encode()])
"""

FAKE_FAIL = """
import sys
sys.stderr.write("port already in use, giving up\\n")
sys.exit(3)
"""


def fake_node(tmp_path, version="v20.0.0"):
    """An executable that says it is Node ``version`` and runs its script with this Python."""
    exe = tmp_path / "fake-node"
    exe.write_text(f'#!/bin/sh\nif [ "$1" = --version ]; then echo {version}; exit 0; fi\nexec {sys.executable} "$@"\n')
    exe.chmod(0o755)
    return exe


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    def make(source):
        script = tmp_path / "fake_sidecar.py"
        script.write_text(textwrap.dedent(source))
        monkeypatch.setenv("VTPU_NODE", str(fake_node(tmp_path)))
        monkeypatch.setenv("VTPU_SIDECAR_JS", str(script))
        return script

    return make


def test_spawn_connect_and_stop_leaves_no_process(stand_in):
    stand_in(FAKE_OK)
    c = vtpu.connect(timeout=5)
    try:
        sc = c.sidecar
        assert sc is not None and sc.running and sc.address.startswith("ipc://")
        assert c.ping() == {"version": 1}
        pid = sc.proc.pid
    finally:
        c.close()
    assert not sc.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_failed_start_reports_stderr_tail(stand_in):
    stand_in(FAKE_FAIL)
    with pytest.raises(vtpu.SidecarError, match="port already in use") as ei:
        vtpu.Sidecar().start()
    assert "code 3" in str(ei.value)


def test_silent_sidecar_times_out(stand_in):
    stand_in("import time\ntime.sleep(60)\n")
    sc = vtpu.Sidecar(startup_timeout=0.5)
    with pytest.raises(vtpu.SidecarError, match="did not report"):
        sc.start()
    assert not sc.running


def test_owned_sidecar_death_is_reported_not_hung(stand_in):
    stand_in(FAKE_OK)
    with vtpu.connect(timeout=30) as c:
        c.sidecar.proc.kill()
        c.sidecar.proc.wait()
        with pytest.raises(vtpu.SidecarError, match="exited"):
            c.ping()


def test_missing_cli_message(monkeypatch, tmp_path):
    monkeypatch.setenv("VTPU_SIDECAR_JS", str(tmp_path / "absent.js"))
    with pytest.raises(vtpu.SidecarError, match="not found"):
        launcher.find_cli()
    monkeypatch.setenv("VTPU_NODE", str(tmp_path / "no-node"))
    with pytest.raises(vtpu.SidecarError, match="node"):
        launcher.find_node()


@pytest.mark.parametrize("version", ["v18.19.0", "v8.0.0", "Python 3.11.7", ""])
def test_old_or_foreign_node_is_one_clear_error(tmp_path, monkeypatch, version):
    monkeypatch.setenv("VTPU_NODE", str(fake_node(tmp_path, version)))
    with pytest.raises(vtpu.SidecarError) as info:
        vtpu.connect()
    msg = str(info.value)
    assert "VTPU_NODE=" in msg and "needs 20+" in msg and "https://nodejs.org" in msg and "vtpu[node]" in msg


def test_no_node_anywhere_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("VTPU_NODE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no node on it
    monkeypatch.setattr(launcher, "_wheel_node", lambda: None)
    with pytest.raises(vtpu.SidecarError, match="no `node` on PATH.*install Node.js 20 or newer"):
        launcher.find_node()


def test_the_real_node_passes_the_check():
    node = launcher.find_node()
    assert launcher._node_ok[node].startswith("v")


def test_a_wheel_sidecar_on_another_platform_says_where_it_runs(tmp_path, monkeypatch):
    bundled = tmp_path / "_sidecar" / "bin" / "vtpu.js"
    bundled.parent.mkdir(parents=True)
    bundled.write_text("")
    monkeypatch.delenv("VTPU_SIDECAR_JS", raising=False)
    monkeypatch.setattr(launcher, "_BUNDLED", bundled)
    assert launcher.find_cli() == bundled  # the wheel's sidecar comes before any checkout
    monkeypatch.setattr(launcher.platform, "machine", lambda: "aarch64")
    with pytest.raises(vtpu.SidecarError, match="built for Linux x86-64.*not linux aarch64"):
        launcher.find_cli()


def test_an_install_without_a_sidecar_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("VTPU_SIDECAR_JS", raising=False)
    monkeypatch.setattr(launcher, "_BUNDLED", tmp_path / "none" / "vtpu.js")
    monkeypatch.setattr(launcher, "_REPO", tmp_path)  # not a checkout either
    with pytest.raises(vtpu.SidecarError, match="has no sidecar.*install the vtpu wheel"):
        launcher.find_cli()


def test_the_node_floor_is_package_jsons():
    import json
    import re
    from pathlib import Path

    engines = json.loads((Path(__file__).resolve().parents[2] / "package.json").read_text())["engines"]["node"]
    assert re.fullmatch(r">=\s*(\d+)", engines).group(1) == str(launcher._NODE_MAJOR)
