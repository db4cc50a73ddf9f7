"""One value ("scroll") <-> its wire form ``(kind, dtype, shape, bytes)``.

* ``str`` -> text (UTF-8); ``bytes``/``bytearray``/``memoryview`` -> bytes;
* a numpy array, numpy scalar or torch tensor -> tensor (little-endian, C order).
  float64 and other dtypes without a wire equivalent raise :class:`DTypeError`
  unless ``dtype=`` names the dtype to convert to.

Tensors come back as numpy arrays, except bfloat16, which NumPy lacks: it comes back as
a ``torch.bfloat16`` tensor when the process has imported torch, else as an
``ml_dtypes.bfloat16`` array (:func:`bfloat16_out`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sys

import numpy as np

from .errors import DTypeError, ProtocolError, ShapeError
from .protocol import DTYPE_NAMES, DTYPES, KIND_NAMES, KINDS, numpy_dtype, wire_dtype

__all__ = ["WireValue", "to_wire", "from_wire", "as_tensor_array", "bfloat16_out"]

TEXT, BYTES, TENSOR = KINDS["text"], KINDS["bytes"], KINDS["tensor"]
NONE_DTYPE = DTYPES["none"]["code"]


class WireValue(NamedTuple):
    """A value in wire form."""

    kind: int
    dtype: int
    shape: tuple[int, ...]
    data: Any  # a buffer-protocol object (bytes, memoryview, ndarray)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "numpy")


def as_tensor_array(value: Any, dtype: str | None = None) -> tuple[np.ndarray, str]:
    """Convert an array-like tensor to a C-contiguous little-endian numpy array.

    Parameters
    ----------
    value : numpy.ndarray, numpy scalar or torch.Tensor
        The tensor (torch tensors are moved to CPU; bfloat16 keeps its raw words).
    dtype : str, optional
        Wire dtype name to store as. ``"bfloat16"`` accepts uint16/int16 raw words, an
        ``ml_dtypes.bfloat16`` array, a torch bfloat16 tensor, or floats and integers
        (rounded to bfloat16). Other names cast.

    Returns
    -------
    (numpy.ndarray, str)
        The array (bfloat16 as uint16 words) and its wire dtype name.
    """
    if dtype is not None and not isinstance(dtype, str):
        dtype = wire_dtype(dtype)
    if _is_torch(value):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            import torch  # lazily: torch is optional

            arr = t.contiguous().view(torch.int16).numpy().view(np.uint16)
            if dtype not in (None, "bfloat16"):
                raise DTypeError("E_DTYPE", f"cannot convert a bfloat16 tensor to {dtype}; convert it in torch")
            return np.ascontiguousarray(arr), "bfloat16"
        value = t.numpy()
    if not isinstance(value, np.ndarray):
        if isinstance(value, np.generic):
            value = np.asarray(value)
        else:
            raise DTypeError("E_DTYPE", f"cannot store a {type(value).__name__}; use str, bytes or an array")
    name = wire_dtype(value.dtype) if dtype is None else dtype
    if name == "bfloat16":
        bf16 = numpy_dtype("bfloat16")
        if value.dtype.itemsize == 2 and value.dtype.kind in "iu":
            words = value if value.dtype.isnative else value.astype(value.dtype.newbyteorder("="))
        elif value.dtype == bf16:
            words = value
        elif value.dtype.kind in "fiu":
            words = value.astype(bf16)
        else:
            raise DTypeError("E_DTYPE", f"cannot store a {value.dtype} array as bfloat16")
        return np.ascontiguousarray(words).view(np.uint16), name
    target = numpy_dtype(name)
    arr = np.ascontiguousarray(value, dtype=target.newbyteorder("<"))
    return arr, name


def to_wire(value: Any, dtype: str | None = None) -> WireValue:
    """The wire form of one value (see the module docstring for the rules)."""
    if isinstance(value, str):
        if dtype is not None:
            raise DTypeError("E_DTYPE", "dtype= applies to tensors, not text")
        return WireValue(TEXT, NONE_DTYPE, (), value.encode("utf-8"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        if dtype is not None:
            raise DTypeError("E_DTYPE", "dtype= applies to tensors, not bytes")
        return WireValue(BYTES, NONE_DTYPE, (), bytes(value) if isinstance(value, memoryview) else value)
    arr, name = as_tensor_array(value, dtype)
    return WireValue(TENSOR, DTYPES[name]["code"], tuple(int(d) for d in arr.shape), arr.reshape(-1).view(np.uint8))


def from_wire(kind: int | str, dtype: int | str, shape: Any, data: Any, view: bool = False) -> Any:
    """Rebuild a Python value from its wire form.

    ``view``: a tensor may be a view of ``data`` (which it keeps alive) when that is
    writable, aligned memory of this reply alone (a received frame, a shared-memory block);
    else tensors own their memory.

    Returns
    -------
    str, bytes, numpy.ndarray or None
        ``None`` for kind ``missing``. Tensors are writable arrays; bfloat16 as
        :func:`bfloat16_out` gives it.
    """
    kind_name = kind if isinstance(kind, str) else KIND_NAMES.get(int(kind))
    if kind_name == "missing":
        return None
    if kind_name == "text":
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError("E_FRAME", f"text scroll is not UTF-8: {e}") from None
    if kind_name == "bytes":
        return bytes(data)
    if kind_name == "tensor":
        name = dtype if isinstance(dtype, str) else DTYPE_NAMES.get(int(dtype))
        dt = numpy_dtype(name)  # raises DTypeError for unknown codes
        shp = tuple(int(d) for d in (shape or ()))
        buf = np.frombuffer(data, dtype=np.uint8)
        need = int(np.prod(shp, dtype=np.int64)) * dt.itemsize
        if buf.size != need:
            raise ShapeError("E_SHAPE", f"tensor of shape {shp} {name} needs {need} bytes, got {buf.size}")
        arr = buf.view(dt).reshape(shp)
        return bfloat16_out(arr if view and arr.flags.writeable and arr.flags.aligned else arr.copy())
    raise DTypeError("E_DTYPE", f"unknown value kind {kind!r}")


def bfloat16_out(arr: np.ndarray) -> Any:
    """A decoded tensor as the caller gets it: a bfloat16 array becomes a ``torch.bfloat16``
    tensor (sharing its memory) when torch is imported, so bfloat16 in is bfloat16 out;
    anything else is returned as is.

    Only an already imported torch counts: importing it here would cost a numpy-only
    process seconds.
    """
    if arr.dtype != numpy_dtype("bfloat16"):
        return arr
    torch = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "from_numpy"):
        return arr
    return torch.from_numpy(np.ascontiguousarray(arr).view(np.int16)).view(torch.bfloat16)
