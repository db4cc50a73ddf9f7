"""Named tensors for compute instructions (see ``protocol.json`` → ``tensors``).

A request lists tensor names in ``params["tensors"]`` and sends them in one body: the raw
form (:class:`TensorBody`, what :meth:`vtpu.Client.compute` sends: ``params["layout"]``
gives each tensor's dtype, shape and byte offset, no Arrow on either side) or one Arrow
``scrolls`` body with one tensor row per name (:func:`encode_tensors`). A reply names its
tensors in ``result["tensors"]`` and comes in the request's form; :func:`decode_tensors`
reads both.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from . import arrow
from .errors import ProtocolError
from .protocol import DTYPES, KINDS, numpy_dtype, DTYPE_NAMES
from .values import as_tensor_array

__all__ = ["TensorBody", "encode_tensors", "decode_tensors"]

_TENSOR = KINDS["tensor"]
_ALIGN = 64  # raw-form tensors start on cache lines (the protocol asks only for the dtype's size)


def _tensor_arrays(named: Mapping[str, Any]) -> list[tuple[np.ndarray, str]]:
    out = []
    for v in named.values():
        wide = str(getattr(v, "dtype", "")) in ("float64", "torch.float64")
        arr, dt = as_tensor_array(v, "float32" if wide else None)
        out.append((np.ascontiguousarray(arr), dt))
    return out


class TensorBody:
    """Named tensors in the raw form: ``params["layout"]`` plus one body of ``nbytes``.

    The transport asks for :meth:`write_into` a buffer of its choosing (a shared-memory
    arena region, or a fresh frame), so the tensors are copied once.

    Parameters
    ----------
    named : mapping of str to array_like
        numpy arrays or torch tensors (float32/float16/bfloat16/int32/int64; float64 is
        sent as float32).
    """

    __slots__ = ("names", "layout", "nbytes", "_arrays")

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.names = list(named)
        self._arrays = _tensor_arrays(named)
        self.layout: list[list[Any]] = []
        at = 0
        for a, dt in self._arrays:
            at = -(-at // _ALIGN) * _ALIGN
            self.layout.append([dt, list(a.shape), at])
            at += a.nbytes
        self.nbytes = at

    def write_into(self, dst: Any) -> None:
        """Copy the tensors into ``dst`` (a writable buffer of at least :attr:`nbytes`)."""
        out = np.frombuffer(dst, np.uint8, self.nbytes) if self.nbytes else None
        for (a, _), (_, _, at) in zip(self._arrays, self.layout):
            if a.nbytes:
                out[at : at + a.nbytes] = a.reshape(-1).view(np.uint8)  # type: ignore[index]

    def __bytes__(self) -> bytes:
        buf = bytearray(self.nbytes)
        self.write_into(buf)
        return bytes(buf)

    def frame(self) -> Any:
        """The body as one writable buffer (what goes on the socket without an arena)."""
        buf = np.empty(self.nbytes, np.uint8)
        self.write_into(buf)
        return buf


def encode_tensors(named: Mapping[str, Any]) -> tuple[list[str], pa.Buffer]:
    """Encode ``{name: array}`` as ``(names, scrolls body)``.

    Parameters
    ----------
    named : mapping of str to array_like
        numpy arrays or torch tensors (float32/float16/bfloat16/int32/int64; float64 is
        sent as float32).

    Returns
    -------
    names : list of str
        The names, in body row order (goes to ``params["tensors"]``).
    body : pyarrow.Buffer
        The Arrow IPC stream.
    """
    names = list(named)
    arrays = _tensor_arrays(named)
    n = len(arrays)
    offsets = np.zeros(n + 1, np.int64)
    for i, (a, _) in enumerate(arrays):
        offsets[i + 1] = offsets[i] + a.nbytes
    data = np.empty(int(offsets[-1]), np.uint8)
    for i, (a, _) in enumerate(arrays):
        data[offsets[i] : offsets[i + 1]] = a.reshape(-1).view(np.uint8)
    cols = [
        pa.array(np.full(n, _TENSOR, np.uint8)),
        pa.array(np.array([DTYPES[dt]["code"] for _, dt in arrays], np.uint8)),
        pa.array([list(a.shape) for a, _ in arrays], type=pa.list_(pa.uint32())),
        arrow._binary(offsets.astype(np.int32), data, n),
    ]
    return names, arrow._ipc(pa.record_batch(cols, schema=arrow.SCHEMAS["scrolls_nocoords"]))


def decode_tensors(result: Mapping[str, Any], frames: list[Any], op: str = "reply") -> dict[str, np.ndarray]:
    """``{name: ndarray}`` from a reply naming its tensors in ``result["tensors"]``.

    The arrays are writable views of the reply's frame (which they keep alive), not copies,
    in either form (``result["layout"]``: raw; else an Arrow ``scrolls`` body).

    Raises
    ------
    ProtocolError
        When the body is missing or its rows do not match the names.
    """
    names = result.get("tensors") or []
    if not names:
        return {}
    if not frames:
        raise ProtocolError("E_FRAME", f"{op} reply names tensors {names} but has no body")
    if "layout" in result:
        return _decode_layout(names, result["layout"], frames[0], op)
    table = arrow.read_table(frames[0])
    if table.num_rows != len(names):
        raise ProtocolError("E_FRAME", f"{op} reply names {len(names)} tensors but has {table.num_rows} rows")
    kinds = table.column("kind").to_numpy()
    dts = table.column("dtype").to_numpy()
    shapes = table.column("shape").to_pylist()
    data, offs = arrow.binary_rows(arrow._column(table, "value"))
    data = arrow.writable_view(frames[0], data)
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        if int(kinds[i]) != _TENSOR:
            raise ProtocolError("E_FRAME", f"{op} reply row {name!r} is not a tensor")
        dt = numpy_dtype(DTYPE_NAMES.get(int(dts[i]), "?"))
        row = data[offs[i] : offs[i + 1]]
        need = int(np.prod(shapes[i], dtype=np.int64)) * dt.itemsize
        if row.size != need:
            raise ProtocolError("E_FRAME", f"{op} reply row {name!r} has {row.size} bytes, its shape {shapes[i]} needs {need}")
        arr = row.view(dt).reshape(shapes[i])
        # A view of the received frame (it stays alive with the array): copying a big reply
        # into fresh memory costs as much as receiving it. Copied only when the frame is
        # read-only (bytes) or the row is unaligned.
        out[name] = arr if arr.flags.writeable and arr.flags.aligned else arr.copy()
    return out


def _decode_layout(names: list[str], layout: Any, frame: Any, op: str) -> dict[str, np.ndarray]:
    try:
        base = np.frombuffer(frame, np.uint8)
    except (TypeError, ValueError) as e:
        raise ProtocolError("E_FRAME", f"{op} reply body is not a buffer: {e}") from None
    if not isinstance(layout, list) or len(layout) != len(names):
        raise ProtocolError("E_FRAME", f"{op} reply names {len(names)} tensors but its layout has {len(layout) if isinstance(layout, list) else layout!r}")
    out: dict[str, np.ndarray] = {}
    for name, entry in zip(names, layout):
        try:
            dt_name, shape, at = entry
            dt = numpy_dtype(dt_name)
            shape = tuple(int(d) for d in shape)
            at = int(at)
        except (TypeError, ValueError, KeyError):
            raise ProtocolError("E_FRAME", f"{op} reply layout entry {entry!r} for {name!r} is malformed") from None
        need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if at < 0 or at + need > base.size:
            raise ProtocolError("E_FRAME", f"{op} reply row {name!r} needs bytes [{at}, {at + need}) of a {base.size}-byte body")
        arr = base[at : at + need].view(dt).reshape(shape)
        out[name] = arr if arr.flags.writeable and arr.flags.aligned else arr.copy()
    return out
