"""The route table version a request is made under (``params.rv``), per thread.

A :class:`vtpu.cluster.ClusterClient` splits each request by one version of its route
table and sends every part with that version, so a shard whose table moved on answers
``E_STALE`` instead of answering from a range it no longer owns. The version travels in a
context variable, not on the shared :class:`vtpu.Client`, because threads that share a
client may route by different versions at the same moment.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

__all__ = ["route_version", "routed_by"]

#: The version the current thread's requests carry, or None (a plain client: no ``rv``).
route_version: ContextVar[int | None] = ContextVar("vtpu_route_version", default=None)


@contextmanager
def routed_by(version: int) -> Iterator[None]:
    """Requests made inside carry ``rv = version``."""
    token = route_version.set(int(version))
    try:
        yield
    finally:
        route_version.reset(token)
