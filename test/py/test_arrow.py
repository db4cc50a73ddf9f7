import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import vtpu
from vtpu import arrow
from vtpu.protocol import KINDS, numpy_dtype

WIRE_DTYPES = ["float32", "float16", "int32", "int64"]


def coords(n):
    return np.arange(n * 9, dtype=np.uint32).reshape(n, 9)


def round_trip(values, **kw):
    c = coords(len(values))
    out = arrow.decode_body(arrow.encode_scrolls(c, values, **kw))
    assert np.array_equal(out[0], c)
    return out[1], out[2]


def test_schemas_follow_protocol_json():
    assert arrow.SCHEMAS["coords"].field("coords").type == pa.list_(pa.uint32(), 9)
    assert arrow.SCHEMAS["scrolls"].names == ["coords", "kind", "dtype", "shape", "value"]
    assert arrow.SCHEMAS["scrolls_nocoords"].names == ["kind", "dtype", "shape", "value"]
    assert arrow.SCHEMAS["shards"].names == ["shard"]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(WIRE_DTYPES).flatmap(
        lambda d: arrays(np.dtype(d), st.tuples(st.integers(0, 6), st.integers(1, 3), st.integers(0, 4)))
    )
)
def test_tensor_batches_round_trip_stacked(a):
    vals, found = round_trip(a)
    if len(a) == 0:
        assert len(found) == 0
        return
    assert found.all() and vals.dtype == a.dtype and vals.shape == a.shape
    assert np.array_equal(vals.view(np.uint8), a.view(np.uint8))  # bit-exact, NaNs included
    assert vals.flags.writeable


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=30))
def test_bytes_round_trip(items):
    vals, found = round_trip(items)
    assert found.all()
    if len({len(b) for b in items}) == 1:  # one width: an (N, width) uint8 array
        assert vals.dtype == np.uint8 and vals.shape == (len(items), len(items[0]))
        assert [bytes(r) for r in vals] == items
    else:
        assert vals.dtype == object and list(vals) == items


def test_fixed_width_bytes_decode_as_uint8_rows_with_zeros_where_missing():
    items = [b"abcd", b"efgh", b"ijkl"]
    vals, found = round_trip(items)
    assert vals.dtype == np.uint8 and vals.shape == (3, 4) and bytes(vals[1]) == b"efgh"
    table = arrow.read_table(arrow.encode_scrolls(np.zeros((2, 9), np.uint32), [b"wxyz", b"abcd"]))
    kinds = table.column("kind").to_numpy().copy()
    kinds[0] = 0  # missing
    values = table.column("value").to_pylist()
    values[0] = b""
    missing = pa.table({"kind": pa.array(kinds), "dtype": table.column("dtype"), "shape": table.column("shape"), "value": pa.array(values, pa.binary())})
    v, f = arrow.decode_values(missing)
    assert f.tolist() == [False, True] and v.tolist() == [[0, 0, 0, 0], list(b"abcd")]


@given(st.lists(st.text(max_size=20), min_size=1, max_size=30))
def test_text_round_trip(items):
    vals, found = round_trip(items)
    assert found.all() and list(vals) == items and all(type(v) is str for v in vals)


def test_mixed_list_round_trips_per_row():
    items = ["text", b"\x00bytes", np.arange(6, dtype=np.int32).reshape(2, 3), np.float16([1.5])]
    vals, found = round_trip(items)
    assert vals[0] == "text" and vals[1] == b"\x00bytes"
    assert vals[2].dtype == np.int32 and vals[2].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert vals[3].dtype == np.float16 and vals[3].tolist() == [1.5]


def test_numeric_array_with_kind_bytes_stores_rows():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    vals, found = round_trip(a, kind="bytes")
    assert vals.dtype == np.uint8 and [bytes(r) for r in vals] == [r.tobytes() for r in a]


def test_float64_needs_explicit_dtype():
    with pytest.raises(vtpu.DTypeError):
        arrow.encode_scrolls(coords(2), np.zeros((2, 3)))
    vals, _ = round_trip(np.ones((2, 3)), dtype="float32")
    assert vals.dtype == np.float32


def test_bfloat16_words():
    words = np.array([[0x3F80, 0x4000]], dtype=np.uint16)
    table = arrow.read_table(arrow.encode_scrolls(coords(1), words, dtype="bfloat16"))
    assert table.column("dtype").to_pylist() == [3]
    vals = arrow.decode_values(table).values
    if "torch" in sys.modules:  # bfloat16 comes back as torch's when torch is loaded
        import torch

        assert vals.dtype == torch.bfloat16
        assert vals.view(torch.int16).tolist() == [[0x3F80, 0x4000]]
    else:
        assert vals.dtype == numpy_dtype("bfloat16")
        assert vals.view(np.uint16).tolist() == [[0x3F80, 0x4000]]


def _reply(kinds, values, dtypes=None, shapes=None):
    n = len(kinds)
    batch = pa.record_batch(
        [
            pa.array(kinds, pa.uint8()),
            pa.array(dtypes or [0] * n, pa.uint8()),
            pa.array(shapes or [[]] * n, pa.list_(pa.uint32())),
            pa.array(values, pa.binary()),
        ],
        schema=arrow.SCHEMAS["scrolls_nocoords"],
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    return arrow.read_table(sink.getvalue())


def test_missing_rows_zero_tensors_and_none_objects():
    T, M, B, X = KINDS["tensor"], KINDS["missing"], KINDS["bytes"], KINDS["text"]
    f = np.float32([1, 2]).tobytes()
    vals, found = arrow.decode_values(_reply([T, M, T], [f, b"", f], [1, 0, 1], [[2], [], [2]]))
    assert found.tolist() == [True, False, True]
    assert vals.shape == (3, 2) and vals[1].tolist() == [0, 0] and vals[2].tolist() == [1, 2]
    vals, found = arrow.decode_values(_reply([B, M], [b"x", b""]))
    assert vals.tolist() == [[ord("x")], [0]]  # one width: uint8 rows, zeros where missing
    vals, found = arrow.decode_values(_reply([B, M, B], [b"x", b"", b"yz"]))
    assert vals.tolist() == [b"x", None, b"yz"]
    vals, found = arrow.decode_values(_reply([M, X], [b"", "é".encode()]))
    assert vals.tolist() == [None, "é"]
    vals, found = arrow.decode_values(_reply([M, M], [b"", b""]))
    assert vals.tolist() == [None, None] and not found.any()
    # different shapes: per-row
    g = np.float32([1, 2, 3]).tobytes()
    vals, _ = arrow.decode_values(_reply([T, T], [f, g], [1, 1], [[2], [3]]))
    assert vals.dtype == object and vals[1].tolist() == [1, 2, 3]


def test_bad_replies_raise_protocol_or_shape_errors():
    with pytest.raises(vtpu.ProtocolError):
        arrow.read_table(b"not arrow")
    with pytest.raises(vtpu.ShapeError):
        arrow.decode_values(_reply([KINDS["tensor"]], [b"abc"], [1], [[2]]))
    with pytest.raises(vtpu.ProtocolError):
        arrow.decode_values(_reply([KINDS["text"]], [b"\xff\xfe"]))


def test_count_mismatch_and_bad_kind():
    with pytest.raises(vtpu.ParamError):
        arrow.encode_scrolls(coords(3), ["a", "b"])
    with pytest.raises(vtpu.ParamError):
        arrow.encode_scrolls(coords(1), ["a"], kind="weird")
    with pytest.raises(vtpu.ParamError):
        arrow.encode_scrolls(coords(1), [b"a"], kind="text")


def test_coords_body_is_zero_copy_input_and_decodes():
    c = coords(4)
    assert np.array_equal(arrow.decode_body(arrow.encode_coords(c)), c)


@pytest.mark.parametrize("form", ["tensor", "bytes"])
def test_million_16_byte_values_round_trip(form):
    # Their speed is measured in test/bench (the batch suite), never asserted here.
    n = 1_000_000
    c = np.random.default_rng(0).integers(0, 1000, (n, 9)).astype(np.uint32)
    a = np.random.default_rng(1).random((n, 4), dtype=np.float32)
    values = a if form == "tensor" else [r.tobytes() for r in a]
    got, vals, found = arrow.decode_body(arrow.encode_scrolls(c, values))
    assert np.array_equal(got, c) and found.all()
    assert np.array_equal(vals if form == "tensor" else vals.view(np.float32), a)


def test_decoded_tensors_are_writable_views_of_a_writable_frame():
    from vtpu.tensors import decode_tensors, encode_tensors

    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.arange(5, dtype=np.int64)
    names, body = encode_tensors({"a": a, "b": b})
    frame = bytearray(body.to_pybytes())  # writable, like a received zmq frame
    out = decode_tensors({"tensors": names}, [memoryview(frame)])
    assert np.array_equal(out["a"], a) and np.array_equal(out["b"], b)
    assert out["a"].flags.writeable and out["b"].flags.writeable
    assert np.shares_memory(out["a"], np.frombuffer(frame, np.uint8))  # no copy
    out["a"][0, 0, 0] = 99.0  # writes land in the array, not in its neighbour
    assert out["b"][0] == 0
    # a read-only frame gives writable copies
    ro = decode_tensors({"tensors": names}, [bytes(frame)])
    assert ro["a"].flags.writeable and ro["a"][0, 0, 0] == 99.0


def test_decoded_tensor_row_of_the_wrong_size_is_a_protocol_error():
    from vtpu.errors import ProtocolError
    from vtpu.tensors import decode_tensors, encode_tensors

    names, body = encode_tensors({"a": np.zeros((2, 3), np.float32)})
    table = arrow.read_table(body)
    bad = pa.record_batch([table.column(n).chunk(0) if n != "shape" else pa.array([[2, 4]], type=pa.list_(pa.uint32()))
                           for n in table.column_names], schema=arrow.SCHEMAS["scrolls_nocoords"])
    with pytest.raises(ProtocolError, match="needs 32"):
        decode_tensors({"tensors": names}, [arrow._ipc(bad)])
