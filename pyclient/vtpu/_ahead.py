"""Making an iterator's next item while the consumer works on the current one."""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


def ahead(items: Iterable[T]) -> Iterator[T]:
    """Yield ``items`` in order, producing each next one on a thread while the caller handles this one.

    For producers that release the GIL (torch, numpy, safetensors reads) feeding a consumer that
    waits on the sidecar: the two overlap. At most two items exist beyond the one the caller holds
    (one made, one being made). An exception in the producer is raised in the caller at the item
    it failed on; a caller that stops early (``close``, an exception, garbage collection) stops the
    producer after the item it is making. The producer runs on that thread, so thread-local state
    (torch's grad mode, for one) is the thread's own.
    """
    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(x: object) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for x in it:
                if not put((x, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # noqa: BLE001 - handed to the caller, re-raised there
            put((None, e))
        finally:
            close = getattr(it, "close", None)  # a generator stopped early runs its own cleanup, here
            if close is not None:
                close()

    t = threading.Thread(target=produce, name="vtpu-ahead", daemon=True)
    t.start()
    try:
        while True:
            x, err = q.get()
            if err is not None:
                raise err
            if x is _DONE:
                return
            yield x
    finally:
        stop.set()
        t.join()
