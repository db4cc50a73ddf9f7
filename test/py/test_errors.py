import builtins
import pickle

import pytest

import vtpu
from vtpu.protocol import PROTOCOL


@pytest.mark.parametrize("code", sorted(PROTOCOL["errors"]))
def test_every_wire_code_maps_to_its_named_class(code):
    err = vtpu.error_from_wire(code, "boom")
    assert type(err).__name__ == PROTOCOL["errors"][code]["class"]
    assert isinstance(err, vtpu.VtpuError)
    assert err.code == code and err.message == "boom"
    assert code in str(err) and "boom" in str(err)


def test_unknown_code_is_base_class_keeping_code():
    err = vtpu.error_from_wire("E_NEW_THING", "later protocol")
    assert type(err) is vtpu.VtpuError and err.code == "E_NEW_THING"


def test_hierarchy():
    assert issubclass(vtpu.PatternError, vtpu.CoordinateError)
    assert issubclass(vtpu.TimeoutError, vtpu.SidecarError)
    assert issubclass(vtpu.TimeoutError, builtins.TimeoutError)
    assert vtpu.TimeoutError is not builtins.TimeoutError
    assert type(vtpu.error_from_wire("E_CLOSED", "")) is vtpu.SidecarError
    assert type(vtpu.error_from_wire("E_TIMEOUT", "")) is vtpu.TimeoutError


def test_default_codes_and_pickling():
    e = vtpu.ShapeError(message="bad")
    assert e.code == "E_SHAPE"
    back = pickle.loads(pickle.dumps(vtpu.error_from_wire("E_LIMIT", "too big")))
    assert type(back) is vtpu.LimitError and back.code == "E_LIMIT" and back.message == "too big"


def test_builtin_except_catches_vtpu_timeout():
    with pytest.raises(builtins.TimeoutError):
        raise vtpu.error_from_wire("E_TIMEOUT", "late")
