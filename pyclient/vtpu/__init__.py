"""vTPU: the Python client for the coordinate-addressed compute sidecar.

>>> import vtpu
>>> with vtpu.connect() as c:                 # starts a private local sidecar
...     c.cput("1.1.1/1.1.1/1.1.1", "hello")
...     c.cget("1.1.1/1.1.1/1.1.1")
'hello'
"""

from __future__ import annotations

from . import arrow, coords, errors, layout, program, protocol
from .aio import AsyncClient, connect_async
from .arrow import Values
from .client import Client, RangeResult, connect
from .coords import coords_array, format_coord, parse_coord, pattern_string
from .errors import *  # noqa: F403 - the hierarchy is the public API
from .launcher import Sidecar
from .layout import Layout
from .ops_moe import MoeRouting
from .program import Program, ProgramResult, Ref

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "connect",
    "connect_async",
    "Client",
    "AsyncClient",
    "Sidecar",
    "Layout",
    "Program",
    "ProgramResult",
    "Ref",
    "RangeResult",
    "MoeRouting",
    "Values",
    "parse_coord",
    "format_coord",
    "coords_array",
    "pattern_string",
    "protocol",
    "arrow",
    "coords",
    "layout",
    "program",
]
__all__.extend(errors.__all__)
