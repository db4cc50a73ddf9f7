"""The wire protocol, loaded from ``protocol.json`` (shared with the TypeScript sidecar).

Nothing here restates the protocol: kind and dtype codes, op names, error codes and
defaults are all read from the JSON file that ships inside this package.

bfloat16
--------
NumPy has no bfloat16; ``ml_dtypes`` (a dependency) supplies it, so
``numpy_dtype("bfloat16")`` is ``ml_dtypes.bfloat16``. Raw 16-bit words (``uint16``) are
stored as bfloat16 only when ``dtype="bfloat16"`` says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._schema import SCHEMA
from .errors import DTypeError

__all__ = [
    "PROTOCOL",
    "VERSION",
    "OPS",
    "KINDS",
    "KIND_NAMES",
    "DTYPES",
    "DTYPE_NAMES",
    "DEFAULTS",
    "numpy_dtype",
    "wire_dtype",
]


#: The parsed ``protocol.json``.
PROTOCOL: dict[str, Any] = SCHEMA
#: Protocol version carried in every header as ``v``.
VERSION: int = PROTOCOL["version"]
#: Op names, in protocol order.
OPS: tuple[str, ...] = tuple(PROTOCOL["ops"])
#: Kind name -> wire code (``missing`` is 0).
KINDS: dict[str, int] = dict(PROTOCOL["kinds"])
#: Wire code -> kind name.
KIND_NAMES: dict[int, str] = {v: k for k, v in KINDS.items()}
#: Dtype name -> ``{"code", "size"}``.
DTYPES: dict[str, dict[str, int]] = {k: dict(v) for k, v in PROTOCOL["dtypes"].items()}
#: Wire code -> dtype name.
DTYPE_NAMES: dict[int, str] = {v["code"]: k for k, v in DTYPES.items()}
#: Defaults (``address``, ``max_request_bytes``, ``max_batch``, ``timeout_ms``).
DEFAULTS: dict[str, Any] = dict(PROTOCOL["defaults"])

import ml_dtypes as _ml_dtypes

_BF16: np.dtype = np.dtype(_ml_dtypes.bfloat16)

_NUMPY: dict[str, np.dtype] = {}
for _name in DTYPES:
    if _name == "none":
        continue
    if _name == "bfloat16":
        _NUMPY[_name] = _BF16
    else:
        _NUMPY[_name] = np.dtype(_name).newbyteorder("<")
    if _NUMPY[_name].itemsize != DTYPES[_name]["size"]:  # pragma: no cover - schema bug
        raise ImportError(f"protocol.json size of {_name} disagrees with numpy")

# numpy dtype -> wire name, for values that carry no explicit dtype (uint16 is NOT
# inferred as bfloat16: raw words must be labelled explicitly).
_FROM_NUMPY: dict[np.dtype, str] = {dt.newbyteorder("="): name for name, dt in _NUMPY.items()}


def numpy_dtype(name: str) -> np.dtype:
    """Return the little-endian numpy dtype for a wire dtype name.

    Parameters
    ----------
    name : str
        A dtype name from ``protocol.json`` (``"float32"``, ``"bfloat16"``, ...).

    Returns
    -------
    numpy.dtype
        For ``"bfloat16"``: ``ml_dtypes.bfloat16``.

    Raises
    ------
    DTypeError
        For an unknown name or ``"none"``.
    """
    try:
        return _NUMPY[name]
    except (KeyError, TypeError):
        raise DTypeError("E_DTYPE", f"unknown tensor dtype {name!r}; known: {sorted(_NUMPY)}") from None


def wire_dtype(dtype: Any) -> str:
    """Return the wire dtype name for a numpy dtype (or anything ``np.dtype`` accepts).

    Raises
    ------
    DTypeError
        When the dtype has no wire equivalent (e.g. float64: cast it first, or pass
        ``dtype="float32"`` to the client call).
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError("E_DTYPE", f"not a dtype: {dtype!r}") from None
    name = _FROM_NUMPY.get(dt.newbyteorder("="))
    if name is None:
        raise DTypeError(
            "E_DTYPE",
            f"numpy dtype {dt} has no vTPU equivalent; supported: {sorted(_FROM_NUMPY.values())}"
            " (cast first, or pass dtype= to convert)",
        )
    return name
