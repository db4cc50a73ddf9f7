"""Batches <-> Arrow IPC streams, with the schemas ``protocol.json`` defines.

Encoding (:func:`encode_scrolls`, used by ``cput_batch``) accepts ``values`` as:

* a numeric numpy array / torch tensor ``(N, *shape)`` -> N tensors of ``shape``
  (one buffer, no per-row work); with ``kind="bytes"`` each row's raw bytes instead;
* a list (or object array) of ``bytes`` -> bytes scrolls; of ``str`` -> text scrolls;
* a list mixing str, bytes and arrays -> per-row conversion.

Decoding (:func:`decode_values`, used by ``cget_batch``) returns ``(values, found)``:
``found`` is a bool array; ``values`` is

* one stacked ndarray ``(N, *shape)`` when every found row is a tensor of one dtype and
  shape (zeros at missing rows; bfloat16 as :func:`vtpu.values.bfloat16_out` gives it); a
  writable view of the reply when every row was found;
* a ``(N, width)`` uint8 array when every found row is bytes of one length (zeros at
  missing rows), likewise a view of the reply when every row was found;
* an object array of ``bytes`` (``None`` at missing rows) when every found row is bytes;
* an object array of ``str`` likewise when every found row is text;
* otherwise an object array of per-row values (``None`` at missing rows).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from .coords import DIMS, coords_array
from .errors import LimitError, ParamError, ProtocolError, ShapeError
from .protocol import DTYPES, KINDS, PROTOCOL, numpy_dtype, DTYPE_NAMES
from .values import as_tensor_array, bfloat16_out, from_wire, to_wire, _is_torch

__all__ = [
    "SCHEMAS",
    "Values",
    "encode_coords",
    "encode_scrolls",
    "read_table",
    "decode_coords",
    "decode_values",
    "decode_body",
]

MISSING, TEXT, BYTES, TENSOR = KINDS["missing"], KINDS["text"], KINDS["bytes"], KINDS["tensor"]
_I32_MAX = 2**31 - 1


def _arrow_type(text: str) -> pa.DataType:
    """Arrow type from its protocol.json spelling (``list<uint32>``, ``fixed_size_list<uint32>[9]``)."""
    m = re.fullmatch(r"fixed_size_list<(\w+)>\[(\d+)\]", text)
    if m:
        return pa.list_(_arrow_type(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"list<(\w+)>", text)
    if m:
        return pa.list_(_arrow_type(m.group(1)))
    return getattr(pa, text)()


def _schema(name: str, with_optional: bool = True) -> pa.Schema:
    fields = PROTOCOL["arrow"][name]["fields"]
    return pa.schema(
        [
            pa.field(f["name"], _arrow_type(f["type"]), nullable=f["nullable"])
            for f in fields
            if with_optional or not f.get("optional")
        ]
    )


#: Arrow schemas by name; ``"scrolls_nocoords"`` is a CGET reply body.
SCHEMAS: dict[str, pa.Schema] = {
    "coords": _schema("coords"),
    "scrolls": _schema("scrolls"),
    "scrolls_nocoords": _schema("scrolls", with_optional=False),
    "shards": _schema("shards"),
}


class Values(NamedTuple):
    """Decoded values of a batch: ``values`` (see module docstring) and ``found`` (bool)."""

    values: Any
    found: np.ndarray


# -- encoding ---------------------------------------------------------------------------
def _ipc(batch: pa.RecordBatch) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return sink.getvalue()


def _coords_column(coords: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(coords.reshape(-1), type=pa.uint32()), DIMS)


def encode_coords(coords: Any) -> pa.Buffer:
    """Arrow IPC stream of the ``coords`` schema (zero-copy from ``(N, 9)`` uint32)."""
    c = coords_array(coords)
    return _ipc(pa.record_batch([_coords_column(c)], schema=SCHEMAS["coords"]))


def _binary(offsets: np.ndarray, data: Any, n: int) -> pa.Array:
    if int(offsets[-1]) > _I32_MAX:
        raise LimitError("E_LIMIT", "batch values exceed 2 GiB; split the batch")
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _shapes(n: int, shape: tuple[int, ...]) -> pa.Array:
    k = len(shape)
    offsets = np.arange(0, (n + 1) * k, k if k else 1, dtype=np.int32)[: n + 1] if k else np.zeros(n + 1, np.int32)
    vals = np.tile(np.asarray(shape, dtype=np.uint32), n) if k else np.empty(0, np.uint32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(vals, type=pa.uint32()))


def _columns_uniform(n: int, kind: int, dtype: int, shape: tuple[int, ...], flat: np.ndarray) -> list[pa.Array]:
    """Columns for N rows of equal kind/dtype/shape whose bytes are ``flat`` (uint8, C order)."""
    row = flat.size // n if n else 0
    offsets = np.arange(0, (n + 1) * row, row, dtype=np.int64)[: n + 1] if row else np.zeros(n + 1, np.int64)
    if offsets[-1] > _I32_MAX:
        raise LimitError("E_LIMIT", "batch values exceed 2 GiB; split the batch")
    return [
        pa.array(np.full(n, kind, np.uint8)),
        pa.array(np.full(n, dtype, np.uint8)),
        _shapes(n, shape),
        _binary(offsets.astype(np.int32), flat, n),
    ]


def _columns_from_list(values: list[Any], dtype: str | None) -> list[pa.Array]:
    n = len(values)
    if n and isinstance(values[0], (str, bytes, bytearray, memoryview)):
        try:  # one C pass: infers string (all str) or binary (all bytes-like), else fails
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            arr = None
        if arr is not None and arr.null_count == 0 and arr.type in (pa.string(), pa.binary()):
            k = TEXT if arr.type == pa.string() else BYTES
            return [pa.array(np.full(n, k, np.uint8)), pa.array(np.zeros(n, np.uint8)), _shapes(n, ()), arr.view(pa.binary())]
    wires = [to_wire(v, dtype if not isinstance(v, (str, bytes, bytearray, memoryview)) else None) for v in values]
    kinds = np.fromiter((w.kind for w in wires), np.uint8, n)
    dts = np.fromiter((w.dtype for w in wires), np.uint8, n)
    shapes = pa.array([list(w.shape) for w in wires], type=pa.list_(pa.uint32()))
    data = pa.array([w.data if isinstance(w.data, (bytes, bytearray)) else w.data.tobytes() for w in wires], pa.binary())
    return [pa.array(kinds), pa.array(dts), shapes, data]


def encode_scrolls(coords: Any, values: Any, *, kind: str | None = None, dtype: str | None = None) -> pa.Buffer:
    """Arrow IPC stream of the ``scrolls`` schema.

    Parameters
    ----------
    coords : array_like or None
        ``(N, 9)`` coordinates (anything :func:`coords_array` takes); ``None`` omits the
        optional ``coords`` column.
    values : ndarray, tensor or sequence
        See the module docstring.
    kind : {None, "tensor", "bytes", "text"}, optional
        Force the interpretation: ``"bytes"`` stores each row of a numeric array as raw
        bytes; ``"text"`` requires strings.
    dtype : str, optional
        Convert tensors to this wire dtype (e.g. ``"float32"`` for float64 input).

    Raises
    ------
    ParamError
        When the number of values differs from the number of coordinates, or ``kind``
        is unknown.
    DTypeError
        For a tensor dtype without a wire equivalent.
    """
    if kind not in (None, "tensor", "bytes", "text"):
        raise ParamError("E_PARAM", f"kind must be tensor, bytes or text, got {kind!r}")
    c = coords_array(coords) if coords is not None else None
    if (isinstance(values, np.ndarray) and values.dtype.kind not in "OSU") or _is_torch(values):
        if kind == "bytes" and dtype is None and isinstance(values, np.ndarray):
            # raw row bytes: any fixed-width dtype will do, no wire dtype needed
            arr, name = np.ascontiguousarray(values), "none"
        else:
            arr, name = as_tensor_array(values, dtype)
        if arr.ndim == 0:
            raise ShapeError("E_SHAPE", "a batch of tensors needs a leading N dimension")
        n = arr.shape[0]
        flat = arr.reshape(-1).view(np.uint8)
        if kind == "bytes":
            cols = _columns_uniform(n, BYTES, DTYPES["none"]["code"], (), flat)
        elif kind in (None, "tensor"):
            cols = _columns_uniform(n, TENSOR, DTYPES[name]["code"], tuple(arr.shape[1:]), flat)
        else:
            raise ParamError("E_PARAM", "kind='text' needs a sequence of str, not a numeric array")
    else:
        seq = values.tolist() if isinstance(values, np.ndarray) else list(values)
        if kind == "text" and not all(type(v) is str for v in seq):
            raise ParamError("E_PARAM", "kind='text' needs every value to be a str")
        if kind == "bytes":
            seq = [v.encode("utf-8") if isinstance(v, str) else v for v in seq]
        n = len(seq)
        cols = _columns_from_list(seq, dtype)
    if c is not None and c.shape[0] != n:
        raise ParamError("E_PARAM", f"{c.shape[0]} coordinates but {n} values")
    if c is not None:
        return _ipc(pa.record_batch([_coords_column(c), *cols], schema=SCHEMAS["scrolls"]))
    return _ipc(pa.record_batch(cols, schema=SCHEMAS["scrolls_nocoords"]))


# -- decoding ---------------------------------------------------------------------------
def read_table(body: Any) -> pa.Table:
    """Read one Arrow IPC stream (bytes, memoryview, zmq frame buffer or pa.Buffer)."""
    try:
        buf = body if isinstance(body, pa.Buffer) else pa.py_buffer(body)
        return pa.ipc.open_stream(buf).read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        raise ProtocolError("E_FRAME", f"bad Arrow body: {e}") from None


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        raise ProtocolError("E_FRAME", f"Arrow body lacks column {name!r} (has {table.column_names})")
    col = table.column(name)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def binary_rows(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(data, offsets)`` of a binary column, zero-copy: row i is ``data[offsets[i]:offsets[i+1]]``.

    ``col[i].as_buffer()`` and ``combine_chunks()`` copy each value; for a tensor reply of
    hundreds of MB those copies into fresh memory cost more than the transfer itself.
    """
    bufs = col.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int32)[col.offset : col.offset + len(col) + 1] if len(col) else np.zeros(1, np.int32)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    if len(offs) and (offs[0] < 0 or offs[-1] > data.size or np.any(np.diff(offs) < 0)):
        raise ProtocolError("E_FRAME", "binary column offsets fall outside its data")
    return data, offs


def decode_coords(table: pa.Table) -> np.ndarray:
    """``(N, 9)`` uint32 coordinates (a writable copy) from a table's ``coords`` column."""
    col = _column(table, "coords")
    flat = col.values.slice(col.offset * DIMS, len(col) * DIMS)  # .flatten() is slow
    return np.array(flat.to_numpy(zero_copy_only=False), dtype=np.uint32).reshape(len(col), DIMS)


def writable_view(frame: Any, data: np.ndarray) -> np.ndarray:
    """``data`` (a read-only view that pyarrow gives of part of ``frame``) as a writable view
    of the frame itself when the frame is writable memory (a received zmq frame, a
    shared-memory block); else ``data``."""
    if frame is None or data.size == 0:
        return data
    try:
        base = np.frombuffer(frame, dtype=np.uint8)
    except (TypeError, ValueError):
        return data
    if not base.flags.writeable:
        return data
    start = data.ctypes.data - base.ctypes.data
    if start < 0 or start + data.size > base.size:
        return data
    return base[start : start + data.size]


def _rows_out(flat: np.ndarray, found: np.ndarray, shape: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    """Found rows (back to back in ``flat``) as ``(N, *shape)``: the view itself when every
    row was found and it is writable and aligned (a big reply is not copied again), else
    a new array with zeros at missing rows."""
    nf = int(found.sum())
    stacked = flat.view(dt).reshape((nf, *shape))
    if nf == len(found):
        return stacked if stacked.flags.writeable and stacked.flags.aligned else stacked.copy()
    out = np.zeros((len(found), *shape), dtype=dt)
    out[found] = stacked
    return out


def _stack_bytes(col: pa.Array, found: np.ndarray, frame: Any) -> np.ndarray | None:
    data, offs = binary_rows(col)
    sizes = np.diff(offs)
    width = int(sizes[found][0])
    if np.any(sizes[found] != width) or np.any(sizes[~found] != 0):
        return None
    return _rows_out(writable_view(frame, data[offs[0] : offs[-1]]), found, (width,), np.dtype(np.uint8))


def _stack_tensors(col: pa.Array, kinds: np.ndarray, found: np.ndarray, table: pa.Table, frame: Any) -> np.ndarray | None:
    dts = _column(table, "dtype").to_numpy(zero_copy_only=False)[found]
    if dts.size == 0 or np.any(dts != dts[0]):
        return None
    shapes = _column(table, "shape")
    if not found.all():
        shapes = shapes.filter(pa.array(found))
    lens = np.diff(shapes.offsets.to_numpy(zero_copy_only=False))
    if np.any(lens != lens[0]):
        return None
    flat_shape = shapes.flatten().to_numpy(zero_copy_only=False).reshape(len(shapes), int(lens[0]))
    if np.any(flat_shape != flat_shape[0]):
        return None
    shape = tuple(int(d) for d in flat_shape[0])
    dt = numpy_dtype(DTYPE_NAMES.get(int(dts[0]), "?"))
    row = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    data, offs = binary_rows(col)
    sizes = np.diff(offs)
    if np.any(sizes[found] != row) or np.any(sizes[~found] != 0):
        raise ShapeError("E_SHAPE", f"tensor rows of shape {shape} need {row} bytes each")
    return _rows_out(writable_view(frame, data[offs[0] : offs[-1]]), found, shape, dt)


def decode_values(table: pa.Table, frame: Any = None) -> Values:
    """Decode the values of a ``scrolls`` table; see the module docstring for the forms.

    ``frame``, the buffer the table was read from, lets stacked results be writable views
    of it instead of copies."""
    kinds = _column(table, "kind").to_numpy(zero_copy_only=False)
    found = kinds != MISSING
    n = len(kinds)
    fk = kinds[found]
    col = _column(table, "value")
    if fk.size and np.all(fk == TENSOR):
        stacked = _stack_tensors(col, kinds, found, table, frame)
        if stacked is not None:
            return Values(bfloat16_out(stacked), found)
    elif fk.size and np.all(fk == BYTES):
        fixed = _stack_bytes(col, found, frame)
        if fixed is not None:
            return Values(fixed, found)
        out = col.to_numpy(zero_copy_only=False)
        out[~found] = None
        return Values(out, found)
    elif fk.size and np.all(fk == TEXT):
        try:
            out = col.cast(pa.string()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid as e:
            raise ProtocolError("E_FRAME", f"text scroll is not UTF-8: {e}") from None
        out[~found] = None
        return Values(out, found)
    out = np.empty(n, dtype=object)
    dts = _column(table, "dtype").to_numpy(zero_copy_only=False)
    shapes = _column(table, "shape").to_pylist()
    data, offs = binary_rows(col)
    for i in np.flatnonzero(found):
        out[i] = from_wire(int(kinds[i]), int(dts[i]), shapes[i], data[offs[i] : offs[i + 1]])
    return Values(out, found)


def decode_body(body: Any) -> Any:
    """Decode any Arrow body by its schema.

    Returns
    -------
    numpy.ndarray or tuple
        ``coords`` -> ``(N, 9)`` uint32; ``shards`` -> ``(N,)`` uint32; scrolls with
        coords -> ``(coords, values, found)``; scrolls without -> :class:`Values`.
    """
    table = read_table(body)
    names = table.column_names
    if names == ["coords"]:
        return decode_coords(table)
    if names == ["shard"]:
        return np.array(_column(table, "shard").to_numpy(zero_copy_only=False), dtype=np.uint32)
    vals = decode_values(table)
    if "coords" in names:
        return decode_coords(table), vals.values, vals.found
    return vals
