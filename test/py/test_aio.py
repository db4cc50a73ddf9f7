"""The asyncio client: concurrent coroutines get their own answers; errors keep their class."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

import vtpu


def test_concurrent_coroutines(sidecar, ns):
    async def main():
        async with await vtpu.connect_async(sidecar.address, timeout=10) as vt:
            coords = [f"{ns}.7.7/7.7.7/7.7.{i}" for i in range(64)]
            await asyncio.gather(*(vt.cput(c, f"value {i}") for i, c in enumerate(coords)))
            got = await asyncio.gather(*(vt.cget(c) for c in coords))
            assert got == [f"value {i}" for i in range(64)]
            values, found = await vt.cget_batch(np.array([vtpu.parse_coord(c) for c in coords[:3]]))
            assert found.all() and list(values) == ["value 0", "value 1", "value 2"]
            with pytest.raises(vtpu.CoordinateError):
                await vt.cget("1.2.3")
            assert (await vt.ping())["version"] == 1

    asyncio.run(main())


def test_bad_pool_size_is_a_type_error(sidecar):
    with vtpu.connect(sidecar.address) as c, pytest.raises(TypeError):
        vtpu.AsyncClient(c, max_workers=0)


def test_every_public_client_call_is_a_coroutine():
    import inspect

    for name, fn in inspect.getmembers(vtpu.Client, inspect.isfunction):
        if not name.startswith("_") and name != "close":
            assert inspect.iscoroutinefunction(getattr(vtpu.AsyncClient, name)), name


def test_compute_calls_as_coroutines(sidecar):
    async def main():
        async with await vtpu.connect_async(sidecar.address, timeout=30) as vt:
            logits = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
            r = await vt.cmoe(logits, 2)
            assert r.expert_ids.shape == (8, 2)
            snap = await vt.metrics()
            assert snap is not None

    asyncio.run(main())
