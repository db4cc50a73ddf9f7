"""Named tensors for compute instructions (see ``protocol.json`` → ``tensors``).

A request lists tensor names in ``params["tensors"]`` and sends one Arrow ``scrolls``
body (no coords) with one tensor row per name; a reply does the same with
``result["tensors"]``. :meth:`vtpu.Client.compute` wraps both directions.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from . import arrow
from .errors import ProtocolError
from .protocol import DTYPES, KINDS, numpy_dtype, DTYPE_NAMES
from .values import as_tensor_array

__all__ = ["encode_tensors", "decode_tensors"]

_TENSOR = KINDS["tensor"]


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
    arrays = []
    for name in names:
        v = named[name]
        wide = str(getattr(v, "dtype", "")) in ("float64", "torch.float64")
        arr, dt = as_tensor_array(v, "float32" if wide else None)
        arrays.append((np.ascontiguousarray(arr), dt))
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

    The arrays are writable views of the reply's frame (which they keep alive), not copies.

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
    table = arrow.read_table(frames[0])
    if table.num_rows != len(names):
        raise ProtocolError("E_FRAME", f"{op} reply names {len(names)} tensors but has {table.num_rows} rows")
    kinds = table.column("kind").to_numpy()
    dts = table.column("dtype").to_numpy()
    shapes = table.column("shape").to_pylist()
    data, offs = arrow.binary_rows(arrow._column(table, "value"))
    data = _writable_view(frames[0], data)
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


def _writable_view(frame: Any, data: np.ndarray) -> np.ndarray:
    """``data`` (a read-only view that pyarrow gives of part of ``frame``) as a writable view
    of the frame itself when the frame is writable memory (a received zmq frame); else ``data``."""
    try:
        base = np.frombuffer(frame, dtype=np.uint8)
    except (TypeError, ValueError):
        return data
    if not base.flags.writeable or data.size == 0:
        return data
    start = data.ctypes.data - base.ctypes.data
    if start < 0 or start + data.size > base.size:
        return data
    return base[start : start + data.size]
