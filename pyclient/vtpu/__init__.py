"""vTPU: the Python client for the coordinate-addressed compute sidecar.

>>> import vtpu
>>> with vtpu.connect() as c:                 # starts a private local sidecar
...     c.cput("1.1.1/1.1.1/1.1.1", "hello")
...     c.cget("1.1.1/1.1.1/1.1.1")
'hello'
"""

from __future__ import annotations

from . import arrow, coords, errors, kg, layout, program, protocol
from .aio import AsyncClient, connect_async
from .arrow import Values
from .client import Client, RangeResult
from .connection import connect
from .coords import coords_array, format_coord, parse_coord, pattern_string
from .errors import *  # noqa: F403 - the hierarchy is the public API
from .launcher import Sidecar
from .kg import KgSchema
from .observe import MetricsSnapshot
from .layout import Layout
from .ops_kg import KgResults, KgTree
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
    "KgSchema",
    "KgTree",
    "KgResults",
    "Program",
    "ProgramResult",
    "Ref",
    "RangeResult",
    "MoeRouting",
    "Values",
    "MetricsSnapshot",
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
