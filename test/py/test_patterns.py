"""The client's pattern grammar against the one the sidecar tests too (test/conformance/patterns.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vtpu
from vtpu.coords import pattern_bounds

CASES = json.loads((Path(__file__).resolve().parents[1] / "conformance" / "patterns.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES["valid"], ids=[c["pattern"] for c in CASES["valid"]])
def test_accepts_with_its_box(case):
    assert vtpu.pattern_string(case["pattern"]) == case["pattern"]
    assert pattern_bounds(case["pattern"]) == (case["lo"], case["hi"])


@pytest.mark.parametrize("text", CASES["invalid"])
def test_refuses(text):
    with pytest.raises(vtpu.PatternError) as info:
        vtpu.pattern_string(text)
    assert info.value.code == "E_PATTERN"


def test_open_slices_build_open_ranges():
    assert vtpu.pattern_string([7, slice(98, None), None, 1, 1, 1, 1, 1, slice(None, 3)]) == "7.[98:].*/1.1.1/1.1.[0:3]"
    with pytest.raises(vtpu.PatternError):
        vtpu.pattern_string([slice(2**32, None)] + [0] * 8)


def test_open_ranges_reach_the_sidecar(client, ns):
    coords = np.array([[ns, k, 1, 1, 1, 1, 1, 1, 1] for k in (97, 98, 99, 500)], dtype=np.uint32)
    client.cput_batch(coords, ["a", "b", "c", "d"])
    got = client.crange(f"{ns}.[98:].*/*.*.*/*.*.*")
    assert got.coords[:, 1].tolist() == [98, 99, 500]
    assert client.crange(f"{ns}.[:99].*/*.*.*/*.*.*").coords[:, 1].tolist() == [97, 98]
