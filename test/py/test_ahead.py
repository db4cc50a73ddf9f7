"""``vtpu._ahead.ahead``: the next upload chunk made while the sidecar works on this one."""
from __future__ import annotations

import threading

import pytest

from vtpu._ahead import ahead


def test_items_in_order_and_the_next_made_while_the_caller_holds_this_one() -> None:
    made = [threading.Event() for _ in range(4)]

    def items():
        for i in range(4):
            made[i].set()
            yield i

    got = []
    for x in ahead(items()):
        if x < 3:  # the caller "waits on the sidecar" with item x: item x+1 gets made meanwhile
            assert made[x + 1].wait(timeout=30)
        got.append(x)
    assert got == [0, 1, 2, 3]


def test_a_producer_error_is_raised_at_its_item() -> None:
    def items():
        yield 1
        raise ValueError("bad shard")

    it = ahead(items())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad shard"):
        next(it)


def test_a_caller_that_stops_early_stops_the_producer() -> None:
    made, cleaned = [], threading.Event()

    def items():
        try:
            for i in range(1000):
                made.append(i)
                yield i
        finally:
            cleaned.set()  # e.g. an open shard file closed

    before = threading.active_count()
    gen = items()  # still referenced here: only ahead() can close it
    it = ahead(gen)
    assert next(it) == 0
    it.close()  # what a sidecar error in the caller's loop amounts to
    assert threading.active_count() == before
    assert len(made) <= 3  # the one handed over, one queued, one being made
    assert cleaned.is_set()  # the producer closed the stopped generator
