import numpy as np
import pytest

import vtpu
from vtpu import Layout, format_coord

QKV = ["query", "key", "value"]


@pytest.fixture
def lay():
    return Layout("layer.head.pos/qkv.batch.embed/*.*.*", qkv=QKV)


def test_coord_and_describe(lay):
    c = lay.coord(layer=0, head=3, pos=17, qkv="key", batch=0, embed=0)
    assert format_coord(c) == "0.3.17/1.0.0/0.0.0"
    assert lay.describe(c) == {"layer": 0, "head": 3, "pos": 17, "qkv": "key", "batch": 0, "embed": 0}
    assert lay.describe("0.3.17/7.0.0/0.0.0")["qkv"] == 7  # no symbol: the integer


def test_coords_vectorised_with_symbol_arrays(lay):
    c = lay.coords(layer=2, head=np.arange(4)[:, None], pos=np.arange(8), qkv="value", batch=0, embed=0)
    assert c.shape == (32, 9) and c.dtype == np.uint32
    assert np.array_equal(c[:, 1], np.repeat(np.arange(4), 8)) and np.array_equal(c[:, 2], np.tile(np.arange(8), 4))
    assert np.all(c[:, 3] == 2) and np.all(c[:, 0] == 2)
    c2 = lay.coords(layer=0, head=0, pos=0, qkv=np.array(["key", "query", "key"]), batch=0, embed=0)
    assert c2[:, 3].tolist() == [1, 0, 1]


def test_pattern(lay):
    assert lay.pattern(layer=0, qkv="key") == "0.*.*/1.*.*/*.*.*"
    assert lay.pattern(pos=(0, 64), head=slice(2, 4)) == "*.[2:4].[0:64]/*.*.*/*.*.*"
    assert lay.pattern(qkv=("query", "value")) == "*.*.*/[0:2].*.*/*.*.*"
    assert vtpu.pattern_string(lay.pattern()) == "*.*.*/*.*.*/*.*.*"


def test_literals_and_offset():
    lay = Layout("layer.pos.1/*.*.*/*.*.*")
    assert format_coord(lay.coord(layer=1, pos=2)) == "1.2.1/0.0.0/0.0.0"
    assert lay.pattern(layer=1) == "1.*.1/*.*.*/*.*.*"
    assert lay.offset(pos=-1) == [0, -1, 0, 0, 0, 0, 0, 0, 0]


def test_errors(lay):
    with pytest.raises(vtpu.ParamError):
        lay.coord(layer=0, nope=1)
    with pytest.raises(vtpu.ParamError):  # a named component left out (as in the TS Layout)
        lay.coord(layer=0)
    with pytest.raises(vtpu.CoordinateError):
        lay.coord(layer=0, head=0, pos=0, qkv="bogus", batch=0, embed=0)
    with pytest.raises(vtpu.CoordinateError):
        lay.coord(layer=-1, head=0, pos=0, qkv=0, batch=0, embed=0)
    with pytest.raises(vtpu.CoordinateError):
        lay.coords(layer=np.array([2**32]), head=0, pos=0, qkv=0, batch=0, embed=0)
    with pytest.raises(vtpu.PatternError):
        lay.pattern(pos=(5, 5))
    for spec in ["a.b.c", "a.a.b/*.*.*/*.*.*", "a.b-c.d/*.*.*/*.*.*", 3]:
        with pytest.raises(vtpu.ParamError):
            Layout(spec)
    with pytest.raises(vtpu.ParamError):
        Layout("a.b.c/*.*.*/*.*.*", zz=["x"])
