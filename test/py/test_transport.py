"""The client's transport against a fake ROUTER: ids, out-of-order replies, timeouts, threads."""

import threading
import time

import numpy as np
import pytest

import vtpu


def echo(h, bodies):
    return {"ok": True, "result": {"echo": h["params"]}}, bodies


def test_round_trip_and_error_mapping(fake):
    def handler(h, bodies):
        if h["op"] == "BAD":
            return {"ok": False, "error": {"code": "E_SHAPE", "message": "nope"}}, []
        return echo(h, bodies)

    srv = fake(handler)
    with vtpu.connect(srv.address, timeout=5) as c:
        res, frames = c.request("X", {"a": 1}, [b"body"])
        assert res == {"echo": {"a": 1}} and bytes(frames[0]) == b"body"
        with pytest.raises(vtpu.ShapeError, match="nope"):
            c.request("BAD")
        assert c.request("X", {"b": 2})[0] == {"echo": {"b": 2}}  # still usable
    assert srv.requests[0]["v"] == 1 and srv.requests[0]["op"] == "X"


def test_stale_and_unknown_ids_are_dropped(fake):
    def handler(h, bodies):
        return [
            ({"id": 999_999, "ok": True, "result": {"stale": True}}, []),
            ({"ok": True, "result": {"mine": True}}, []),
        ]

    srv = fake(handler)
    with vtpu.connect(srv.address, timeout=5) as c:
        assert c.request("X")[0] == {"mine": True}


def test_concurrent_callers_get_their_own_replies_out_of_order(fake):
    srv = fake(echo, shuffle=True)  # replies come back in shuffled bursts
    errors = []
    with vtpu.connect(srv.address, timeout=20) as c:

        def worker(t):
            rng = np.random.default_rng(t)
            try:
                for i in range(300):
                    payload = rng.bytes(int(rng.integers(0, 200)))
                    res, frames = c.request("X", {"t": t, "i": i, "sum": sum(payload)}, [payload])
                    assert res["echo"] == {"t": t, "i": i, "sum": sum(payload)}
                    assert bytes(frames[0]) == payload
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors, errors[:3]
    assert len(srv.requests) == 8 * 300


def test_timeout_resets_socket_and_client_recovers(fake):
    mode = {"silent": True}

    def handler(h, bodies):
        return None if mode["silent"] else echo(h, bodies)

    srv = fake(handler)
    with vtpu.connect(srv.address, timeout=5) as c:
        t = time.monotonic()
        with pytest.raises(vtpu.TimeoutError) as ei:
            c.request("X", timeout=0.3)
        assert 0.25 < time.monotonic() - t < 2.0
        assert isinstance(ei.value, vtpu.SidecarError) and ei.value.code == "E_TIMEOUT"
        mode["silent"] = False
        assert c.request("X", {"again": 1})[0] == {"echo": {"again": 1}}


def test_a_sidecar_gone_after_connect_times_out(fake):
    srv = fake(echo)
    with vtpu.connect(srv.address, timeout=0.3) as c:
        srv.close()
        with pytest.raises(vtpu.TimeoutError, match="no sidecar|no reply"):
            c.ping()


def test_closed_client_raises_closed(fake):
    srv = fake(echo)
    c = vtpu.connect(srv.address, timeout=5)
    c.close()
    c.close()  # idempotent
    with pytest.raises(vtpu.SidecarError) as ei:
        c.ping()
    assert ei.value.code == "E_CLOSED"


def test_bad_input_fails_before_io(fake):
    srv = fake(echo)
    with vtpu.connect(srv.address, timeout=5) as c:
        with pytest.raises(vtpu.CoordinateError):
            c.cget("1.2.3")
        with pytest.raises(vtpu.PatternError):
            c.crange("1.*")
        with pytest.raises(vtpu.DTypeError):
            c.cput("1.1.1/1.1.1/1.1.1", np.zeros(3))  # float64
        with pytest.raises(vtpu.ParamError):
            c.cdelta("1.1.1/1.1.1/1.1.1", [1, 2])
    assert srv.requests == []


def test_each_thread_has_its_own_socket_closed_when_the_thread_ends(fake):
    import gc

    srv = fake(echo)
    with vtpu.connect(srv.address, timeout=5) as c:
        c.request("X")
        for _ in range(10):
            threads = [threading.Thread(target=c.request, args=("X",)) for _ in range(4)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        gc.collect()
        assert len(c._t._conns) == 1  # only the main thread's socket is left open
    assert len(srv.requests) == 41


def test_request_headers_are_valid_json_on_every_path(fake):
    """Single-coordinate requests take a template, others the JSON encoder: both must
    reach the server as the same JSON, escaping included."""
    srv = fake(echo)
    odd = ['1.2.3/4.5.6/7.8.9', 'a"b\\c', [1, 2, 3, 4, 5, 6, 7, 8, 9], "é/ü"]
    with vtpu.connect(srv.address, timeout=5) as c:
        for coord in odd:
            assert c.request("CGET", {"coord": coord})[0] == {"echo": {"coord": coord}}
        assert c.request("CGET", {"coord": odd[0], "batch": False})[0] == {"echo": {"coord": odd[0], "batch": False}}
    assert [r["params"]["coord"] for r in srv.requests[:4]] == odd
