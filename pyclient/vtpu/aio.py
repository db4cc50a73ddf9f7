"""asyncio access: every :class:`~vtpu.Client` call as a coroutine.

Calls run on a small thread pool; the transport gives each pool thread a socket of its
own, so up to ``max_workers`` requests are in flight at once while the event loop stays
free. Errors are the same exception classes the blocking client raises.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .client import Client
from .connection import connect

__all__ = ["AsyncClient", "connect_async"]

# Every public Client method (instructions, compute ops, metrics …) becomes a coroutine;
# close is replaced by aclose.
_CALLS = tuple(n for n, f in inspect.getmembers(Client, inspect.isfunction) if not n.startswith("_") and n != "close")


class AsyncClient:
    """Coroutine methods over a blocking :class:`~vtpu.Client` (which it owns and closes).

    Parameters
    ----------
    client : Client
        The connection to use.
    max_workers : int
        Requests that may be in flight at once (default 4).

    Examples
    --------
    >>> async with await vtpu.connect_async() as vt:
    ...     await vt.cput("1.1.1/1.1.1/1.1.1", "hi")
    ...     await asyncio.gather(*(vt.cget("1.1.1/1.1.1/1.1.1") for _ in range(10)))
    """

    def __init__(self, client: Client, max_workers: int = 4) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise TypeError(f"max_workers must be a positive int, got {max_workers!r}")
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vtpu-aio")

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def aclose(self) -> None:
        """Close the client and stop the pool (idempotent)."""
        await self._run(self.client.close)
        self._pool.shutdown(wait=True)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


def _coroutine(name: str) -> Any:
    blocking = getattr(Client, name)

    @functools.wraps(blocking)
    async def call(self: AsyncClient, *args: Any, **kwargs: Any) -> Any:
        return await self._run(getattr(self.client, name), *args, **kwargs)

    return call


for _name in _CALLS:
    setattr(AsyncClient, _name, _coroutine(_name))


async def connect_async(address: str | None = None, *, max_workers: int = 4, **kwargs: Any) -> AsyncClient:
    """:func:`vtpu.connect` for asyncio: starts or connects without blocking the loop."""
    client = await asyncio.get_running_loop().run_in_executor(None, functools.partial(connect, address, **kwargs))
    return AsyncClient(client, max_workers=max_workers)
