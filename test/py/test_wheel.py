"""The wheel, as a new user gets it: built from this checkout, installed into a fresh venv,
used from another folder with no checkout and no VTPU_* variables."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import CLI_BUILT, NOT_BUILT, REPO

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

#: A size the wheel must stay under (it was 27.9 MB when this was written: onnxruntime's
#: libonnxruntime.so is most of it). Growing past it means something unneeded got in.
MAX_WHEEL_BYTES = 40 * 1024 * 1024

ROUND_TRIP = """
import sys, numpy as np, ml_dtypes, vtpu
from vtpu import launcher
assert "site-packages" in vtpu.__file__, vtpu.__file__
assert launcher.find_cli() == launcher._BUNDLED, launcher.find_cli()
with vtpu.connect(timeout=30) as c:
    c.cput("7.98.1/1.1.1/1.1.1", "hello from the wheel")
    c.cput("7.99.1/1.1.1/1.1.1", np.arange(6, dtype=np.float32).reshape(2, 3))
    c.cput("7.100.1/1.1.1/1.1.1", np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16))
    assert c.cget("7.98.1/1.1.1/1.1.1") == "hello from the wheel"
    assert c.cget("7.99.1/1.1.1/1.1.1").tolist() == [[0, 1, 2], [3, 4, 5]]
    bf = c.cget("7.100.1/1.1.1/1.1.1")
    assert bf.dtype == ml_dtypes.bfloat16 and bf.astype(np.float32).tolist() == [1.5, -2.0]
    assert c.crange("7.[99:].*/*.*.*/*.*.*").coords[:, 1].tolist() == [99, 100]
    # The experts run on the wheel's ONNX Runtime (its native library loads from the package).
    rng = np.random.default_rng(0)
    E, H, I, T = 4, 8, 8, 3
    c.experts_load(0, rng.standard_normal((E, 2 * I, H), np.float32), rng.standard_normal((E, H, I), np.float32), threads=1)
    out = c.experts_run(0, rng.standard_normal((T, H), np.float32), logits=rng.standard_normal((T, E), np.float32), top_k=2)
    assert out.y.shape == (T, H) and np.isfinite(out.y).all() and int(out.counts.sum()) == T * 2
print("round trip ok")
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, wheel path, a working folder outside the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "wheelhouse"), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "wheelhouse").glob("vtpu-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=600,
    )
    # The dependencies (numpy, pyzmq, pyarrow, ml_dtypes) from this environment, after the
    # venv's own site-packages: a plain path line, so this environment's editable vtpu stays out.
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    yield py, wheel, work
    shutil.rmtree(tmp, ignore_errors=True)


def _env() -> dict[str, str]:
    """A user's environment: no VTPU_* variables, no PYTHONPATH; node on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VTPU_") and k != "PYTHONPATH"}
    node_dir = os.path.dirname(shutil.which("node") or "")
    env["PATH"] = os.pathsep.join(p for p in (node_dir, "/usr/bin", "/bin") if p)
    return env


def test_wheel_size_and_platform(installed):
    _, wheel, _ = installed
    size = wheel.stat().st_size
    print(f"\nwheel {wheel.name}: {size / 1e6:.1f} MB")
    assert size < MAX_WHEEL_BYTES, f"the wheel is {size / 1e6:.1f} MB"
    assert re.search(r"-py3-none-manylinux_2_(\d+)_x86_64\.whl$", wheel.name)
    assert int(re.search(r"manylinux_2_(\d+)", wheel.name).group(1)) >= 28  # libonnxruntime.so.1 needs GLIBC_2.28
    names = zipfile.ZipFile(wheel).namelist()
    assert "vtpu/_sidecar/bin/vtpu.js" in names and "vtpu/cli.json" in names
    assert not [n for n in names if n.endswith((".ts", ".map")) or "/darwin/" in n or "/win32/" in n]


def test_connect_round_trips_from_another_folder(installed):
    py, _, work = installed
    r = subprocess.run([str(py), "-c", ROUND_TRIP], cwd=work, env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "round trip ok"


def test_native_addons_load_from_the_wheel(installed):
    py, _, work = installed
    where = subprocess.run([str(py), "-c", "import vtpu.launcher as l; print(l._BUNDLED.parent.parent)"],
                           cwd=work, env=_env(), capture_output=True, text=True, check=True).stdout.strip()
    js = "require('zeromq'); require('onnxruntime-node'); require('uWebSockets.js'); console.log('natives ok')"
    r = subprocess.run(["node", "-e", js], cwd=where, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "natives ok"  # uWebSockets.js announces its JS fallback on stdout: not used


def test_cli_runs_from_the_wheel(installed):
    py, wheel, work = installed
    version = wheel.name.split("-")[1]
    vtpu_script = py.parent / "vtpu"
    r = subprocess.run([str(vtpu_script), "--version"], cwd=work, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(f"vtpu {version} (node v"), r.stdout + r.stderr
    r = subprocess.run([str(py), "-m", "vtpu", "serve", "--help"], cwd=work, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--sync-pattern P" in r.stdout
    r = subprocess.run([str(py), "-m", "vtpu", "phext", "checksum", "-"], input="hi", cwd=work, env=_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and len(r.stdout.strip()) == 32
    r = subprocess.run([str(py), "-m", "vtpu", "serve", "--bogus"], cwd=work, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'unknown option "--bogus"' in r.stderr


def test_python_m_vtpu_serve_then_connect(installed, tmp_path):
    py, _, work = installed
    address = f"ipc://{tmp_path}/served.sock"
    server = subprocess.Popen([str(py), "-m", "vtpu", "serve", "--address", address, "--threads", "1"], cwd=work, env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = textwrap.dedent(f"""
            import vtpu
            with vtpu.connect({address!r}, wait=60, timeout=30) as c:
                c.cput("1.1.1/1.1.1/1.1.1", "served")
                print(c.cget("1.1.1/1.1.1/1.1.1"))
        """)
        r = subprocess.run([str(py), "-c", client], cwd=work, env=_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "served"
    finally:
        server.send_signal(signal.SIGTERM)  # python -m vtpu exec'd node: the signal reaches the sidecar
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert out.startswith(f"vtpu sidecar listening on {address}")


def test_an_addon_built_here_raises_the_glibc_tag(tmp_path):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import sidecar_bundle
    finally:
        sys.path.pop(0)
    (tmp_path / "dist" / "native").mkdir(parents=True)
    assert sidecar_bundle.platform_tag(tmp_path) == "manylinux_2_28_x86_64"
    (tmp_path / "dist" / "native" / "x.node").write_bytes(b"\x7fELF...GLIBC_2.2.5\x00GLIBC_2.34\x00...")
    assert sidecar_bundle.platform_tag(tmp_path) == "manylinux_2_34_x86_64"
