"""Phext import/export round trips against the shared conformance vectors."""

import json

import pytest

import vtpu

from conftest import shared_dir


@pytest.fixture(scope="module")
def vectors():
    path = shared_dir() / "conformance" / "phext.json"
    if not path.is_file():
        pytest.skip(f"no conformance vectors at {path} (set VTPU_SHARED_DIR)")
    return json.loads(path.read_text())


def _clear(c):
    """Empty this test's own sidecar so exports hold only the vector's scrolls."""
    stored = c.crange(values=False).coords
    if len(stored):
        c.cdel_batch(stored)


def test_explode_vectors_load_and_save(fresh_sidecar, vectors, tmp_path):
    with vtpu.connect(fresh_sidecar.address, timeout=10) as c:
        for i, case in enumerate(vectors["explode"]):
            src = tmp_path / f"in{i}.phext"
            src.write_bytes(case["phext"].encode())
            _clear(c)
            assert c.load_phext(src) == len(case["scrolls"])
            for coord, text in case["scrolls"].items():
                assert c.cget(coord) == text
            out = tmp_path / f"out{i}.phext"
            checksum = c.save_phext(out)
            assert len(checksum) == 32
            again = tmp_path / f"again{i}.phext"
            assert c.load_phext(out) == len(case["scrolls"])
            assert c.save_phext(again) == checksum and again.read_bytes() == out.read_bytes()


def test_implode_vector_bytes_and_checksum(fresh_sidecar, vectors, tmp_path):
    case = vectors["implode"][0]
    with vtpu.connect(fresh_sidecar.address, timeout=10) as c:
        c.cput_batch(list(case["scrolls"]), list(case["scrolls"].values()))
        out = tmp_path / "out.phext"
        checksum = c.save_phext(out)
        assert out.read_bytes() == case["phext"].encode()
        if case["phext"] in vectors["checksum"]:
            assert checksum == vectors["checksum"][case["phext"]]


def test_export_of_non_phext_coordinates_is_an_error(fresh_sidecar, tmp_path):
    with vtpu.connect(fresh_sidecar.address, timeout=10) as c:
        c.cput("0.0.0/0.0.0/0.0.0", "outside 1..999")
        with pytest.raises(vtpu.CoordinateError):
            c.save_phext(tmp_path / "x.phext")
        assert c.cdel("0.0.0/0.0.0/0.0.0")
