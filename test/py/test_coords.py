import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import vtpu
from vtpu import coords_array, format_coord, parse_coord, pattern_string

from conftest import shared_dir

comp = st.integers(0, 2**32 - 1)


@given(st.lists(comp, min_size=9, max_size=9))
def test_parse_format_round_trip(parts):
    text = format_coord(parts)
    back = parse_coord(text)
    assert back.dtype == np.uint32 and back.shape == (9,)
    assert back.tolist() == parts
    assert format_coord(back) == text


@given(arrays(np.int64, st.tuples(st.integers(0, 20), st.just(9)), elements=comp))
def test_coords_array_from_ints_and_strings_agree(a):
    c = coords_array(a)
    assert c.dtype == np.uint32 and c.flags.c_contiguous and c.shape == a.shape
    assert np.array_equal(c, a)
    assert np.array_equal(coords_array([format_coord(r) for r in a]), c) if len(a) else True


def test_coords_array_passes_uint32_through_without_copy():
    a = np.zeros((5, 9), np.uint32)
    assert coords_array(a) is a
    assert coords_array("1.2.3/4.5.6/7.8.9").shape == (1, 9)
    assert coords_array(list(range(9))).shape == (1, 9)
    assert coords_array([]).shape == (0, 9)


@pytest.mark.parametrize(
    "bad",
    ["", "1.2.3/4.5", "a.b.c/d.e.f/g.h.i", "1.1.1/1.1.1/1.1.1/1", "1.1.1/1.1.1/1.1.-1", "4294967296.0.0/0.0.0/0.0.0"],
)
def test_parse_rejects_with_coordinate_error(bad):
    with pytest.raises(vtpu.CoordinateError):
        parse_coord(bad)


def test_phext_conformance_coordinates():
    import json

    vectors = json.loads((shared_dir() / "conformance" / "phext.json").read_text())["coordinates"]
    for ok in vectors["valid"]:
        assert format_coord(parse_coord(ok, phext=True)) == ok
    for bad in vectors["invalid_for_phext"]:
        with pytest.raises(vtpu.CoordinateError):
            parse_coord(bad, phext=True)


@pytest.mark.parametrize(
    "bad",
    [np.full((2, 9), -1), np.full((1, 9), 2**32), np.zeros((2, 8), int), np.zeros((2, 9), float), [1, 2, 3], object()],
)
def test_coords_array_rejects(bad):
    with pytest.raises(vtpu.CoordinateError):
        coords_array(bad)


def test_patterns():
    assert pattern_string("1.*.[2:5]/*.*.*/*.*.*") == "1.*.[2:5]/*.*.*/*.*.*"
    assert pattern_string([1, None, (2, 5), "*", slice(0, 3), 0, 0, 0, 7]) == "1.*.[2:5]/*.[0:3].0/0.0.7"
    for bad in ["", "1.2.3", "1.*.[5:2]/*.*.*/*.*.*", "1.*.[2:2]/*.*.*/*.*.*", "x.*.*/*.*.*/*.*.*", "1.*.*/*.*.*/*.*.*/1"]:
        with pytest.raises(vtpu.PatternError):
            pattern_string(bad)
    with pytest.raises(vtpu.PatternError):
        pattern_string([1.5] + [0] * 8)
    with pytest.raises(vtpu.CoordinateError):  # PatternError is a CoordinateError
        pattern_string([0] * 8)
