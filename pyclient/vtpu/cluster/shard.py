"""One shard of a Ray cluster: an actor that runs a sidecar and keeps what a restart needs.

The actor starts a sidecar with ``--data`` in its shard directory (so every acknowledged write
is in the log), and remembers its address and route table in ``shard.json`` there. When the
sidecar dies (a crash, a SIGKILL) the actor exits; Ray restarts it (``max_restarts``), and
the new actor starts a sidecar on the same directory and address, which recovers from the
log, and installs the table again.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..client import Client
from ..errors import SidecarError
from ..launcher import Sidecar, durable_args
from ..serve_flags import serve_flag

__all__ = ["ShardServer"]

_STATE = "shard.json"


class ShardServer:
    """The body of a shard actor (plain Python: Ray wraps it with ``ray.remote``).

    Parameters
    ----------
    shard : int
        This shard's id.
    data_dir : str
        Its directory: the sidecar's log and snapshots, and ``shard.json``.
    host : str or None
        Interface the sidecar listens on (tcp); None: this node's address in Ray. Its port
        is chosen once and kept.
    sidecar_args : list of str
        Extra ``vtpu serve`` flags.
    curve : (str, str) or None
        The cluster's CURVE keypair (public, secret), z85: the sidecar serves with the secret
        key (written 0600 to ``curve.secret``) and syncs with its peers by the public key.
    exit_on_death : bool
        Exit the process when the sidecar dies (what a Ray actor needs to be restarted);
        False for a server living in another process (tests).
    """

    def __init__(self, shard: int, data_dir: str, host: str | None, sidecar_args: list[str] | None = None,
                 curve: tuple[str, str] | None = None, exit_on_death: bool = True) -> None:
        self.shard = int(shard)
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._stopping = False
        state = self._load()
        self.restarts = int(state.get("starts", 0))
        if host is None:  # resolved here, on the shard's node, not on the driver's
            import ray

            host = ray.util.get_node_ip_address()
        address = state.get("address") or f"tcp://{host}:0"
        args = list(sidecar_args or [])
        self.server_key = curve[0] if curve else None
        if curve:
            secret = self.dir / "curve.secret"
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(curve[1] + "\n")
            args += [serve_flag("--curve-secret-file"), str(secret)]
        self.sidecar = self._start(address, args)
        self._save(address=self.sidecar.address, starts=self.restarts + 1)
        self.client = Client(self.sidecar.address, timeout=60, server_key=self.server_key)
        if "croute" in state:  # a restart: the table this shard held
            self.client.request("CROUTE", state["croute"])
        if exit_on_death:
            threading.Thread(target=self._watch, name="vtpu-shard-watch", daemon=True).start()

    def _start(self, address: str, args: list[str]) -> Sidecar:
        # A restart binds the old port again; the dead sidecar may hold it for a moment.
        deadline = time.monotonic() + 20
        while True:
            try:
                return Sidecar([*durable_args(self.dir / "data"), *args], address=address).start()
            except SidecarError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _watch(self) -> None:
        """Exit the actor's process when the sidecar dies, so Ray restarts both."""
        while self.sidecar.running or self._stopping:
            time.sleep(0.1)
        os._exit(1)

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / _STATE).read_text())
        except FileNotFoundError:
            return {}

    def _save(self, **changes: Any) -> None:
        state = {**self._load(), **changes}
        tmp = self.dir / (_STATE + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / _STATE)

    # -- what the cluster asks ----------------------------------------------------------------
    def address(self) -> str:
        """The sidecar's address."""
        return str(self.sidecar.address)

    def public_key(self) -> str | None:
        """The CURVE public key clients need (None: plain tcp on loopback)."""
        return self.server_key

    def sidecar_pid(self) -> int:
        """The sidecar process id."""
        return int(self.sidecar.proc.pid)  # type: ignore[union-attr]

    def starts(self) -> int:
        """How many times this shard's sidecar has started (1 + restarts)."""
        return self.restarts + 1

    def install(self, params: dict[str, Any]) -> dict[str, Any]:
        """CROUTE ``params`` (table, version, shard) on the sidecar, remembered for restarts."""
        res = self.client.request("CROUTE", params)[0]
        self._save(croute=params)
        return res

    def sync_to(self, peer: str, pattern: str) -> dict[str, Any]:
        """Sync ``pattern`` with the sidecar at ``peer`` (CSYNC run); the stats."""
        params = {"step": "run", "peer": peer, "pattern": pattern, "timeout_ms": 600_000}
        if self.server_key:
            params["server_key"] = self.server_key  # every shard serves with the cluster's keypair
        return self.client.request("CSYNC", params)[0]

    def prune(self) -> int:
        """Delete what other shards own (after a range moved away)."""
        return int(self.client.request("CROUTE", {"prune": True})[0]["pruned"])

    def first_counts(self) -> dict[int, int]:
        """Scrolls stored per first component (CHIER down from the root)."""
        nodes = self.client.chier("0.0.0/0.0.0/0.0.0", "down", depth=1, level=0)
        return {int(n["prefix"][0]): int(n["count"]) for n in nodes}

    def size(self) -> int:
        """Scrolls stored."""
        return int(self.client.ping()["store"]["entries"])

    def stop(self) -> None:
        """Stop the sidecar for good (the actor is killed next, without restart)."""
        self._stopping = True
        self.client.close()
        self.sidecar.stop()
