"""Every op against the real sidecar; each bad input asserts its error class, then a normal call."""

import numpy as np
import pytest

import vtpu
from vtpu import Layout, format_coord
from vtpu.protocol import OPS


def C(ns, *rest):
    parts = [ns, *rest] + [0] * (8 - len(rest))
    return format_coord(parts)


def test_ping(client):
    info = client.ping()
    assert info["version"] == vtpu.protocol.VERSION
    assert set(OPS) - {"SHM"} <= set(info["ops"])  # SHM links are the server's (bridge/shm), not the engine's
    assert info["limits"]["max_batch"] > 0


def test_single_values_round_trip(client, ns):
    t = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert client.cput(C(ns, 1), "héllo") == 1
    assert client.cput(C(ns, 2), b"\x00\xffraw") == 1
    assert client.cput(C(ns, 3), t) == 1
    assert client.cput(C(ns, 4), np.arange(3), dtype="int32") == 1
    assert client.cget(C(ns, 1)) == "héllo"
    assert client.cget(C(ns, 2)) == b"\x00\xffraw"
    got = client.cget(C(ns, 3))
    assert got.dtype == np.float32 and np.array_equal(got, t)
    assert client.cget(C(ns, 4)).dtype == np.int32
    assert client.cget(C(ns, 9)) is None
    assert client.cdel(C(ns, 1)) is True and client.cdel(C(ns, 1)) is False
    assert client.cget(C(ns, 1)) is None


def test_batches(client, ns):
    lay = Layout("ns.row.*/*.*.*/*.*.*")
    coords = lay.coords(ns=ns, row=np.arange(100))
    vals = np.random.default_rng(0).random((100, 4), dtype=np.float32)
    assert client.cput_batch(coords, vals) == 100
    got, found = client.cget_batch(np.vstack([coords[:3], lay.coord(ns=ns, row=5000)]))
    assert found.tolist() == [True, True, True, False]
    assert np.array_equal(got[:3], vals[:3]) and not got[3].any()
    texts = [f"t{i}" for i in range(10)]
    assert client.cput_batch(coords[:10], texts) == 10
    got, found = client.cget_batch(coords[:10])
    assert list(got) == texts
    assert client.cdel_batch(np.vstack([coords[:10], lay.coord(ns=ns, row=5000)])) == 10


def test_batch_is_atomic(client, ns):
    good = [C(ns, 1), C(ns, 2)]
    bad = vtpu.arrow.encode_scrolls(good, [np.float32([1, 2]), np.float32([3])])
    # corrupt row 2: claim a shape its bytes do not match, via a raw request
    import pyarrow as pa

    t = vtpu.arrow.read_table(bad)
    t = t.set_column(3, "shape", pa.array([[2], [5]], pa.list_(pa.uint32())))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    with pytest.raises(vtpu.ShapeError):
        client.request("CPUT", {"batch": True}, [sink.getvalue()])
    assert client.cget_batch(good).found.tolist() == [False, False]  # nothing written
    assert client.cput_batch(good, ["a", "b"]) == 2


def test_crange_order_limit_and_truncation(client, ns):
    rows = np.random.default_rng(1).permutation(50)
    coords = np.array([[ns, int(r), 0, 0, 0, 0, 0, 0, 0] for r in rows], dtype=np.uint32)
    client.cput_batch(coords, [f"v{r}" for r in rows])
    res = client.crange(f"{ns}.*.*/*.*.*/*.*.*")
    assert res.coords[:, 1].tolist() == list(range(50)) and not res.truncated
    assert list(res.values) == [f"v{i}" for i in range(50)]
    res = client.crange([ns, (10, 20), None, None, None, None, None, None, None], limit=5)
    assert res.coords[:, 1].tolist() == [10, 11, 12, 13, 14] and res.truncated
    res = client.crange(f"{ns}.*.*/*.*.*/*.*.*", values=False)
    assert res.values is None and len(res.coords) == 50


def test_cdelta_single_and_batch(client, ns):
    client.cput(C(ns, 2), "two")
    assert format_coord(client.cdelta(C(ns, 1), [0, 1, 0, 0, 0, 0, 0, 0, 0])) == C(ns, 2)
    c, v = client.cdelta(C(ns, 1), [0, 1] + [0] * 7, fetch=True)
    assert v == "two"
    batch = client.cdelta([C(ns, 1), C(ns, 5)], [0, 1] + [0] * 7, fetch=True)
    assert batch.found.tolist() == [True, False] and batch.values[0] == "two"
    with pytest.raises(vtpu.CoordinateError):
        client.cdelta(C(ns, 0), [0, -1] + [0] * 7)
    assert client.cdelta(C(ns, 0), [0] * 9).tolist()[0] == ns


def test_chier(client, ns):
    client.cput_batch([C(ns, 1, 1), C(ns, 1, 2), C(ns, 2, 1)], ["a", "b", "c"])
    up = client.chier(C(ns, 1, 1), "up", depth=2, level=3)
    assert [n["level"] for n in up] == [2, 1]
    down = client.chier(C(ns), "down", depth=1, level=1)
    assert sorted(n["prefix"][1] for n in down) == [1, 2]
    assert sum(n["count"] for n in down) == 3
    with pytest.raises(vtpu.ParamError):
        client.chier(C(ns), "sideways")


def test_croute(client, ns):
    table = client.route_table()
    assert isinstance(table, list)
    one = client.croute(C(ns))
    assert "shard" in one
    shards = client.croute([C(ns), C(ns, 1)])
    assert shards.dtype == np.uint32 and shards.shape == (2,)
    new = client.set_route_table([{"start": "0.0.0/0.0.0/0.0.0", "end": None, "shard": 0, "address": None}])
    assert new[0]["shard"] == 0


def test_program_crange_cdelta_cget(client, ns):
    client.cput_batch([C(ns, 1), C(ns, 2)], ["a", "b"])
    client.cput_batch([C(ns, 1, 1), C(ns, 2, 1)], ["A", "B"])
    p = vtpu.Program()
    hits = p.crange(f"{ns}.*.0/*.*.*/*.*.*", values=False)
    shifted = p.cdelta(hits, [0, 0, 1, 0, 0, 0, 0, 0, 0])
    p.cget(shifted)
    out = client.run_program(p)
    assert len(out.results) == 3
    values, found = out.last
    assert list(values) == ["A", "B"] and found.all()
    # the same as (op, params) steps with a literal body
    out = client.run_program([("CGET", {"body": [C(ns, 1), C(ns, 2)]})])
    assert list(out.last.values) == ["a", "b"]


def test_bad_inputs_raise_their_class_then_work(client, ns):
    cases = [
        (vtpu.CoordinateError, lambda: client.request("CGET", {"coord": "1.2.3"})),
        (vtpu.PatternError, lambda: client.request("CRANGE", {"pattern": "1.[5:2].*/*.*.*/*.*.*"})),
        (vtpu.ShapeError, lambda: client.request("CPUT", {"coord": C(ns), "kind": "tensor", "dtype": "float32", "shape": [3]}, [b"12345678"])),
        (vtpu.DTypeError, lambda: client.request("CPUT", {"coord": C(ns), "kind": "tensor", "dtype": "float99", "shape": [1]}, [b"1234"])),
        (vtpu.OpError, lambda: client.request("NOPE")),
        (vtpu.ParamError, lambda: client.request("CRANGE", {})),
        (vtpu.ProtocolError, lambda: client.request("CGET", {"batch": True}, [b"not arrow"])),
    ]
    for cls, call in cases:
        with pytest.raises(cls):
            call()
        assert client.cput(C(ns), "fine") == 1 and client.cget(C(ns)) == "fine"
