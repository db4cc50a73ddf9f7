"""The vTPU exception hierarchy and the one function mapping wire codes to classes.

Every error the sidecar puts on the wire is a ``{code, message}`` pair whose code is a
key of the ``"errors"`` table in ``protocol.json``; :func:`error_from_wire` turns it
into an instance of the class that table names. Client-side failures (no reply in
time, a closed client) use the same codes (``E_TIMEOUT``, ``E_CLOSED``).
"""

from __future__ import annotations

import builtins

from ._schema import SCHEMA as PROTOCOL

__all__ = [
    "VtpuError",
    "CoordinateError",
    "PatternError",
    "ShapeError",
    "DTypeError",
    "OpError",
    "ParamError",
    "ProtocolError",
    "LimitError",
    "AuthError",
    "SidecarError",
    "OwnershipError",
    "StaleTableError",
    "PeerError",
    "TimeoutError",
    "error_from_wire",
]


class VtpuError(Exception):
    """Base class of every vTPU error.

    Parameters
    ----------
    code : str
        The wire error code, e.g. ``"E_COORD"``.
    message : str
        A human-readable explanation.

    Attributes
    ----------
    code : str
        The wire error code.
    message : str
        The message, without the code.
    """

    #: The code used when a subclass is raised without one.
    default_code = "E_INTERNAL"

    def __init__(self, code: str | None = None, message: str = "") -> None:
        self.code = code or self.default_code
        self.message = message
        super().__init__(f"{self.code}: {message}" if message else self.code)

    def __reduce__(self):  # keep code and message through pickling (multiprocessing, Ray)
        return (self.__class__, (self.code, self.message))


class CoordinateError(VtpuError):
    """A malformed or out-of-range coordinate (``E_COORD``)."""

    default_code = "E_COORD"


class PatternError(CoordinateError):
    """A malformed range pattern (``E_PATTERN``)."""

    default_code = "E_PATTERN"


class ShapeError(VtpuError):
    """A tensor shape that does not match its bytes or the op (``E_SHAPE``)."""

    default_code = "E_SHAPE"


class DTypeError(VtpuError):
    """An unknown dtype or kind, or an op that needs another (``E_DTYPE``)."""

    default_code = "E_DTYPE"


class OpError(VtpuError):
    """An unknown op (``E_OP``)."""

    default_code = "E_OP"


class ParamError(VtpuError):
    """A missing or invalid op parameter (``E_PARAM``)."""

    default_code = "E_PARAM"


class ProtocolError(VtpuError):
    """A malformed header, body or Arrow stream (``E_FRAME``)."""

    default_code = "E_FRAME"


class LimitError(VtpuError):
    """A request, batch or value over a configured limit (``E_LIMIT``)."""

    default_code = "E_LIMIT"


class AuthError(VtpuError):
    """Not authorised (``E_AUTH``)."""

    default_code = "E_AUTH"


class SidecarError(VtpuError):
    """The sidecar failed, exited, or the client is closed (``E_INTERNAL``, ``E_CLOSED``)."""

    default_code = "E_INTERNAL"


class OwnershipError(AuthError):
    """A write into a coordinate range another agent (``E_OWNER``) or, in a cluster, another
    shard (``E_SHARD``) owns."""

    default_code = "E_OWNER"


class StaleTableError(OwnershipError):
    """A cluster shard refused a request routed by another route table version (``E_STALE``).

    The cluster client (:mod:`vtpu.cluster`) reads the table again and retries; it reaches
    the caller only when the table keeps changing past the client's retries.
    """

    default_code = "E_STALE"


class PeerError(SidecarError):
    """A sync peer was unreachable, refused, or vanished mid-sync (``E_PEER``).

    Both sidecars stay consistent: every transfer is one atomic batch.
    """

    default_code = "E_PEER"


class TimeoutError(SidecarError, builtins.TimeoutError):  # noqa: A001 - deliberate, see docstring
    """No reply in time (``E_TIMEOUT``).

    Also a subclass of the builtin :class:`TimeoutError`, so ``except TimeoutError``
    catches it whichever of the two names is in scope.
    """

    default_code = "E_TIMEOUT"


def _classes() -> dict[str, type[VtpuError]]:
    by_name = {cls.__name__: cls for cls in (VtpuError, *(globals()[n] for n in __all__[1:-1]))}
    table: dict[str, type[VtpuError]] = {}
    for code, entry in PROTOCOL["errors"].items():
        cls = by_name.get(entry["class"])
        if cls is None:  # protocol.json names a class this module lacks: a packaging bug
            raise ImportError(f"protocol.json error {code} names unknown class {entry['class']}")
        table[code] = cls
    return table


_BY_CODE = _classes()


def error_from_wire(code: object, message: object = "") -> VtpuError:
    """Build the exception for a wire error.

    Parameters
    ----------
    code : str
        The error code from a reply (``error.code``).
    message : str
        The error message from the reply.

    Returns
    -------
    VtpuError
        An instance of the class ``protocol.json`` names for ``code``; unknown codes
        give a plain :class:`VtpuError` carrying the code.
    """
    code_s = str(code) if code is not None else "E_INTERNAL"
    cls = _BY_CODE.get(code_s, VtpuError)
    return cls(code_s, str(message) if message is not None else "")
