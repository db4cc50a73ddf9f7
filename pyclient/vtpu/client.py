"""The synchronous client: one method per instruction of the protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np

from . import arrow
from ._routing import route_version
from .address import positive_seconds, probe
from .arrow import Values
from .coords import DIMS, coords_array, format_coord, pattern_string
from .errors import ParamError, ProtocolError
from .launcher import Sidecar
from .ops_attend import AttendMixin
from .ops_moe import MoeMixin
from .ops_experts import ExpertsMixin
from .ops_dense import DenseMixin
from .observe import ObserveMixin
from .ops_kg import KgMixin
from .ops_nearest import NearestMixin
from .ops_sync import SyncMixin, check_server_key
from .program import Program, ProgramResult
from .serve_flags import serve_flag
from .protocol import DEFAULTS, DTYPE_NAMES, KIND_NAMES
from .tensors import TensorBody, decode_tensors
from .transport import Transport
from .values import from_wire, to_wire

__all__ = ["Client", "RangeResult"]

ALL = "*.*.*/*.*.*/*.*.*"


class RangeResult(NamedTuple):
    """Rows of a range or batch shift: ``coords`` (N, 9) uint32 in coordinate order,
    ``values`` (as :func:`vtpu.arrow.decode_values`; ``None`` when not fetched), ``found``
    (bool, or ``None``) and ``truncated`` (the limit cut the range short)."""

    coords: np.ndarray
    values: Any
    found: np.ndarray | None
    truncated: bool = False


def _single(x: Any) -> bool:
    """True when ``x`` names one coordinate rather than a batch."""
    if isinstance(x, str):
        return True
    if isinstance(x, np.ndarray):
        return x.ndim == 1 and x.dtype.kind in "iu"
    if isinstance(x, (list, tuple)):
        return len(x) == DIMS and all(isinstance(v, (int, np.integer)) for v in x)
    return False


def _coord(x: Any) -> str:
    return format_coord(x)  # validates: a bad coordinate fails here, before any I/O


def _raw(frames: list[Any]) -> Any:
    return frames[0] if frames else b""


def _body(frames: list[Any], op: str) -> Any:
    if not frames:
        raise ProtocolError("E_FRAME", f"{op} reply lacks its body")
    return frames[0]


class Client(AttendMixin, MoeMixin, ExpertsMixin, DenseMixin, NearestMixin, KgMixin, ObserveMixin, SyncMixin):
    """A connection to a vTPU sidecar; safe to share between threads.

    Parameters
    ----------
    address : str, optional
        ZeroMQ endpoint of a running sidecar. ``None`` starts a private local sidecar
        (see :class:`vtpu.Sidecar`), stopped again by :meth:`close`.
    timeout : float, optional
        Default seconds to wait for each reply (protocol default: 30), > 0. Every method
        takes ``timeout=`` to override it per call.
    wait : float
        With ``address``: seconds to wait for a sidecar to accept connections there
        (default 0: it must be listening now).
    sidecar_args : sequence of str, optional
        Extra ``vtpu serve`` arguments when starting a sidecar.
    http_port : int, optional
        Serve HTTP (dashboard, ``/metrics``, SQ API) on this loopback port when starting a
        sidecar (0: any free port); with ``address``, the port a running sidecar serves on.
        See :attr:`http_url`.
    server_key : str, optional
        The sidecar's CURVE public key (see :func:`connect`).
    shm : bool, optional
        Big bodies through shared memory on the sidecar's host (see :func:`connect`).

    Raises
    ------
    ParamError
        A malformed address (not ``ipc://PATH`` or ``tcp://HOST:PORT``) or a timeout
        that is not a positive number.
    SidecarError
        When a sidecar has to be started and cannot be, or nothing accepts connections at
        ``address`` within ``wait`` seconds (the message names the address).

    Notes
    -----
    Errors from the sidecar raise the class mapped from their code (:func:`vtpu.error_from_wire`).
    A reply not received in time raises :class:`vtpu.TimeoutError` and recreates the
    socket, so the client reconnects once the sidecar answers again.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        wait: float = 0.0,
        sidecar_args: Iterable[str] = (),
        http_port: int | None = None,
        server_key: str | None = None,
        shm: bool | None = None,
    ) -> None:
        self.sidecar: Sidecar | None = None
        t = DEFAULTS["timeout_ms"] / 1000.0 if timeout is None else positive_seconds(timeout)
        key = check_server_key(server_key)
        http = [] if http_port is None else [serve_flag("--http"), str(int(http_port))]
        if address is None:
            self.sidecar = Sidecar([*sidecar_args, *http]).start()
            address = self.sidecar.address
            self._http_url = self.sidecar.http_url
        else:
            probe(address, wait)  # a clear error now, not a stalled first request
            if http_port is not None:
                self._http_url = f"http://127.0.0.1:{int(http_port)}"
        self._t = Transport(str(address), t, watch=self.sidecar.check if self.sidecar else None, server_key=key, use_shm=shm)

    @property
    def address(self) -> str:
        """The sidecar's address."""
        return self._t.address

    @property
    def timeout(self) -> float:
        """Default seconds per reply."""
        return self._t.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._t.timeout = positive_seconds(value)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._t.closed

    def close(self) -> None:
        """Close the connection (and stop an owned sidecar). Idempotent."""
        self._t.close()
        if self.sidecar is not None:
            self.sidecar.stop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<vtpu.Client {'closed' if self.closed else 'open'} {self.address}>"

    def request(self, op: str, params: dict[str, Any] | None = None, bodies: Iterable[Any] = (), *, timeout: float | None = None):
        """Send a raw request; returns ``(result, body_frames)``. Escape hatch for new ops."""
        if timeout is not None:
            timeout = positive_seconds(timeout)
        rv = route_version.get()
        if rv is not None:  # inside a cluster client's routed call (vtpu/_routing.py)
            params = {**(params or {}), "rv": rv}
        return self._t.request(op, params or {}, list(bodies), timeout)

    def _bell(self, call: Any, timeout: float | None = None) -> Any:
        """``call(bell, deadline, check)`` through the doorbell (:mod:`vtpu.bell`), or ``None``: send it as a request."""
        return self._t.bell(call, None if timeout is None else positive_seconds(timeout))

    def compute(
        self, op: str, params: dict[str, Any] | None = None, tensors: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Run a compute op with named tensors; returns ``(result, {name: ndarray})``.

        The building block of :meth:`cattend`, :meth:`cmoe` and friends (see
        :mod:`vtpu.tensors` for the wire form).
        """
        p = dict(params or {})
        bodies = []
        if tensors:
            body = TensorBody(tensors)
            p["tensors"], p["layout"] = body.names, body.layout
            bodies.append(body)
        else:
            p["layout"] = []  # reply tensors in the raw form too
        res, frames = self.request(op, p, bodies, timeout=timeout)
        return res, decode_tensors(res, frames, op)

    # -- instructions ---------------------------------------------------------------------
    def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Sidecar versions, ops, limits and store size (``{version, engine, ops, limits, store}``)."""
        return self.request("PING", timeout=timeout)[0]

    def cget(self, coord: Any, *, timeout: float | None = None) -> Any:
        """Value at one coordinate: ``str``, ``bytes``, ``ndarray`` or ``None`` when absent."""
        res, frames = self.request("CGET", {"coord": _coord(coord)}, timeout=timeout)
        if not res.get("found"):
            return None
        return from_wire(res["kind"], res.get("dtype", "none"), res.get("shape"), _raw(frames), view=True)

    def cget_batch(self, coords: Any, *, timeout: float | None = None) -> Values:
        """Values at many coordinates, in request order: ``(values, found)``.

        ``values`` is one stacked ndarray when all found rows are tensors of one dtype
        and shape, else an object array (see :mod:`vtpu.arrow`).
        """
        _, frames = self.request("CGET", {"batch": True}, [arrow.encode_coords(coords)], timeout=timeout)
        body = _body(frames, "CGET")
        return arrow.decode_values(arrow.read_table(body), body)

    def cput(self, coord: Any, value: Any, *, dtype: str | None = None, timeout: float | None = None) -> int:
        """Store one value: ``str`` -> text, bytes-like -> bytes, ndarray/tensor -> tensor.

        ``dtype`` converts a tensor (e.g. ``"float32"`` for float64 data, ``"bfloat16"``
        for raw uint16 words). Returns the count written (1).
        """
        w = to_wire(value, dtype)
        params: dict[str, Any] = {"coord": _coord(coord), "kind": KIND_NAMES[w.kind]}
        if KIND_NAMES[w.kind] == "tensor":
            params["dtype"] = DTYPE_NAMES[w.dtype]
            params["shape"] = list(w.shape)
        return int(self.request("CPUT", params, [w.data], timeout=timeout)[0].get("written", 0))

    def cput_batch(
        self, coords: Any, values: Any, *, kind: str | None = None, dtype: str | None = None, timeout: float | None = None
    ) -> int:
        """Store many values atomically (all or nothing); returns the count written.

        ``values``: an ``(N, *shape)`` array (N tensors; ``kind="bytes"`` for raw rows), a
        list of str or bytes, or a mixed list. See :func:`vtpu.arrow.encode_scrolls`.
        """
        body = arrow.encode_scrolls(coords, values, kind=kind, dtype=dtype)
        return int(self.request("CPUT", {"batch": True}, [body], timeout=timeout)[0].get("written", 0))

    def cdel(self, coord: Any, *, timeout: float | None = None) -> bool:
        """Delete one coordinate; True when it existed."""
        return bool(self.request("CDEL", {"coord": _coord(coord)}, timeout=timeout)[0].get("deleted", 0))

    def cdel_batch(self, coords: Any, *, timeout: float | None = None) -> int:
        """Delete many coordinates; returns how many existed."""
        res, _ = self.request("CDEL", {"batch": True}, [arrow.encode_coords(coords)], timeout=timeout)
        return int(res.get("deleted", 0))

    def crange(self, pattern: Any = ALL, limit: int | None = None, values: bool = True, *, timeout: float | None = None) -> RangeResult:
        """Stored coordinates matching ``pattern``, in coordinate order.

        Parameters
        ----------
        pattern : str or sequence
            ``"0.*.[0:8]/*.*.*/*.*.*"``, nine components, or ``Layout.pattern(...)``.
        limit : int, optional
            Most rows to return (sidecar default: its batch limit); see ``truncated``.
        values : bool
            False returns coordinates only (``values`` and ``found`` are ``None``).
        """
        params: dict[str, Any] = {"pattern": pattern_string(pattern), "values": bool(values)}
        if limit is not None:
            params["limit"] = int(limit)
        res, frames = self.request("CRANGE", params, timeout=timeout)
        body = _body(frames, "CRANGE")
        table = arrow.read_table(body)
        coords = arrow.decode_coords(table)
        if not values:
            return RangeResult(coords, None, None, bool(res.get("truncated", False)))
        v = arrow.decode_values(table, body)
        return RangeResult(coords, v.values, v.found, bool(res.get("truncated", False)))

    def cdelta(self, coords: Any, offset: Iterable[int], fetch: bool = False, *, timeout: float | None = None) -> Any:
        """Shift coordinates by nine signed ``offset`` components (``Layout.offset(pos=1)``).

        Returns
        -------
        One coordinate: the shifted ``(9,)`` array, or ``(coord, value)`` with ``fetch``.
        A batch: the shifted ``(N, 9)`` array, or a :class:`RangeResult` with ``fetch``.
        """
        off = [int(x) for x in offset]
        if len(off) != DIMS:
            raise ParamError("E_PARAM", f"an offset has 9 components, got {len(off)}")
        if _single(coords):
            res, frames = self.request("CDELTA", {"coord": _coord(coords), "offset": off, "fetch": bool(fetch)}, timeout=timeout)
            c = coords_array(res["coord"])[0]
            if not fetch:
                return c
            val = from_wire(res["kind"], res.get("dtype", "none"), res.get("shape"), _raw(frames)) if res.get("found") else None
            return c, val
        params = {"batch": True, "offset": off, "fetch": bool(fetch)}
        _, frames = self.request("CDELTA", params, [arrow.encode_coords(coords)], timeout=timeout)
        body = _body(frames, "CDELTA")
        table = arrow.read_table(body)
        shifted = arrow.decode_coords(table)
        if not fetch:
            return shifted
        v = arrow.decode_values(table, body)
        return RangeResult(shifted, v.values, v.found, False)

    def chier(self, coord: Any, direction: str = "up", depth: int = 1, level: int = DIMS, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Ancestors (``"up"``) or stored children (``"down"``) of the node named by the
        first ``level`` components: ``[{level, prefix, pattern, count}, ...]``."""
        params = {"coord": _coord(coord), "direction": direction, "depth": int(depth), "level": int(level)}
        return list(self.request("CHIER", params, timeout=timeout)[0].get("nodes", []))

    def croute(self, coords: Any, *, timeout: float | None = None) -> Any:
        """Owning shard: ``{shard, address}`` for one coordinate, a uint32 array for a batch."""
        if _single(coords):
            return self.request("CROUTE", {"coord": _coord(coords)}, timeout=timeout)[0]
        _, frames = self.request("CROUTE", {"batch": True}, [arrow.encode_coords(coords)], timeout=timeout)
        return arrow.decode_body(_body(frames, "CROUTE"))

    def route_table(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """The range ownership table."""
        return list(self.request("CROUTE", {}, timeout=timeout)[0].get("table", []))

    def set_route_table(self, table: Iterable[dict[str, Any]], *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Replace the ownership table (rows ``{start, end, shard, address}``); returns it."""
        rows = []
        for r in table:
            row = dict(r)
            row["start"] = _coord(row["start"])
            if row.get("end") is not None:
                row["end"] = _coord(row["end"])
            rows.append(row)
        return list(self.request("CROUTE", {"table": rows}, timeout=timeout)[0].get("table", []))

    def run_program(self, steps: Program | Iterable[Any], *, timeout: float | None = None) -> ProgramResult:
        """Run a program (a :class:`vtpu.Program` or ``(op, params)`` steps) in one round trip.

        Returns
        -------
        ProgramResult
            ``results`` (each step's result) and ``bodies`` (decoded: coords arrays,
            :class:`RangeResult` for scrolls with coords, :class:`Values` otherwise);
            ``.last`` is the final returned body.
        """
        prog = steps if isinstance(steps, Program) else Program.from_steps(steps)
        params, bodies = prog.to_wire()
        res, frames = self.request("PROGRAM", params, bodies, timeout=timeout)
        out = []
        for f in frames:
            d = arrow.decode_body(f)
            out.append(RangeResult(*d, False) if isinstance(d, tuple) and not isinstance(d, Values) else d)
        return ProgramResult(list(res.get("results", [])), out)

    def load_phext(self, path: str | Path, *, progress: bool = False, timeout: float | None = None) -> int:
        """Import a ``.phext`` file (read here, sent raw, all or nothing); returns scrolls stored.

        ``progress=True`` imports it in pieces with a progress bar instead (:meth:`import_phext`).
        """
        if progress:
            return self.import_phext(path, progress=True, timeout=timeout)
        data = Path(path).read_bytes()
        return int(self.request("PHEXT_IMPORT", {}, [data], timeout=timeout)[0].get("written", 0))

    def save_phext(self, path: str | Path, pattern: Any = ALL, *, timeout: float | None = None) -> str:
        """Export the scrolls matching ``pattern`` to a ``.phext`` file; returns its xxh3-128 checksum."""
        res, frames = self.request("PHEXT_EXPORT", {"pattern": pattern_string(pattern)}, timeout=timeout)
        Path(path).write_bytes(bytes(_raw(frames)))
        return str(res.get("checksum", ""))
