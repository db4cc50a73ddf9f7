"""Property test: extreme values for every parameter of every op (the protocol schema lists
them) get a typed error or a result, the sidecar stays up, and another client keeps being
answered while each request runs (no request holds the event loop for long)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vtpu
from conftest import CLI_BUILT, NOT_BUILT
from test_fuzz import seeds as fuzz_seeds
from vtpu.protocol import PROTOCOL
from vtpu.tensors import encode_tensors

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

CODES = set(PROTOCOL["errors"])
#: Most a concurrent PING may wait beyond its own compute while an extreme request runs (the issue's bound).
STALL_MS = 100.0
#: Parameters the schema describes inside another one's value (CATTEND's kv object).
NESTED = {"kv": ["layer", "length", "heads"]}

EXTREME_INTS = [0, -1, 1, 2, 255, 256, 65_535, 65_536, 2**24, 2**26, 2**28, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, -(2**31), -(2**53), 10**30]
#: Swept through every parameter one at a time.
SWEEP: list[Any] = [*EXTREME_INTS, 0.5, 1e308, "", None, True, [], {}, [2**31 - 1] * 64]
EXTREMES = st.one_of(
    st.sampled_from(EXTREME_INTS),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0.5, -0.0, 1e-308, 1e308, -1e308, 2.0**40 + 0.5]),
    st.sampled_from(["", "x" * 100_000, "*.*.*/*.*.*/*.*.*", "[0:4294967295].*.*/*.*.*/*.*.*", "1.1.1/1.1.1/1.1.1", "-*", "*"]),
    st.sampled_from([None, True, False, {}, {"$ref": 0}, {"$ref": 2**31}]),
    st.lists(st.sampled_from(EXTREME_INTS), max_size=12),
    st.sampled_from([[2**31 - 1] * 4096, list(range(100_000)), [[2**32 - 1] * 9] * 64, ["*"] * 64]),
)


def schema_params(spec: Any) -> set[str]:
    """Every parameter name under a `params` object anywhere in an op's schema entry."""
    out: set[str] = set()
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "params" and isinstance(value, dict):
                for names in value:
                    out.update(n.strip() for n in names.split(","))
            else:
                out |= schema_params(value)
    return out


def all_seeds() -> list[tuple[dict[str, Any], list[bytes]]]:
    """The fuzz seeds plus valid requests of the tensor ops, so every op has a base request."""
    rng = np.random.default_rng(5)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    att_names, att = encode_tensors({"q": f32(1, 2, 3, 4), "k": f32(1, 1, 3, 4), "v": f32(1, 1, 3, 4)})
    kvq_names, kvq = encode_tensors({"q": f32(1, 1, 1, 4)})
    moe_names, moe = encode_tensors({"logits": f32(5, 4)})
    exp_names, exp = encode_tensors({"gate_up": f32(2, 8, 4), "down": f32(2, 4, 4)})
    return fuzz_seeds() + [
        ({"op": "CATTEND", "params": {"tensors": att_names, "window": 2, "global": [0], "causal": True, "scale": 0.5, "return_lse": True, "backward": False}}, [bytes(att)]),
        ({"op": "CATTEND", "params": {"tensors": kvq_names, "kv": {"layer": 0, "length": 2, "heads": 1}}}, [bytes(kvq)]),
        ({"op": "CMOE", "params": {"tensors": moe_names, "mode": "route", "top_k": 2, "renormalize": True, "capacity_factor": 1.0, "expert_shards": [0, 1, 0, 1]}}, [bytes(moe)]),
        ({"op": "CKG", "params": {"mode": "path", "start": "1.1.1/1.1.1/1.1.1", "path": ["*", "-*"], "paths": True, "limit": 10, "attr": 0}}, []),
        ({"op": "CKG", "params": {"mode": "bfs", "start": "1.1.1/1.1.1/1.1.1", "depth": 3, "relations": "*", "multi_source": False, "limit": 10}}, []),
        ({"op": "CEXPERTS", "params": {"mode": "load", "layer": 7, "experts": 2, "hidden": 4, "intermediate": 4, "format": "fp32", "first": 0, "group": 1, "replace": True, "threads": 1, "tensors": exp_names}}, [bytes(exp)]),
        ({"op": "CEXPERTS", "params": {"mode": "info", "layer": 7}}, []),
        ({"op": "CHIER", "params": {"coord": "1.1.1/1.1.1/1.1.1", "level": 2, "direction": "down", "depth": 2}}, []),
        ({"op": "CROUTE", "params": {"coord": "1.1.1/1.1.1/1.1.1"}}, []),
        ({"op": "CNEAREST", "params": {"coord": "1.1.1/1.1.1/1.1.1", "k": 1, "metric": "l1", "pattern": "*.*.*/*.*.*/*.*.*"}}, []),
        ({"op": "CDELTA", "params": {"coord": "1.1.1/1.1.1/1.1.1", "offset": [0, 0, 0, 0, 0, 0, 0, 0, 1], "fetch": True}}, []),
        # Shared-memory links: an open of an arena that does not exist, and a close.
        ({"op": "SHM", "params": {"mode": "open", "path": "/dev/shm/vtpu-1-0123456789abcdef.in", "size": 1 << 20, "reply_size": 1 << 20, "token": "00" * 16}}, []),
        ({"op": "SHM", "params": {"mode": "close", "keys": ["vtpu-1-0123456789abcdef.in"]}}, []),
        ({"op": "SHM", "params": {"mode": "ready", "key": "vtpu-1-0123456789abcdef.in"}}, []),
    ]


SEEDS = all_seeds()
OPS = sorted(PROTOCOL["ops"])


class Pinger:
    """Another client PINGing in a loop on its own thread; records when each PING was sent and answered."""

    def __init__(self, address: str) -> None:
        self.client = vtpu.connect(address, timeout=120)
        self.pings: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            self.client.ping()
            self.pings.append((t0, time.perf_counter()))

    def worst_wait_ms(self, start: float, end: float) -> float:
        """The longest wait of a PING that overlapped [start, end], in ms (one in flight at `end` is waited for)."""
        deadline = time.perf_counter() + 130
        while not any(b >= end for _, b in self.pings[-3:]) and time.perf_counter() < deadline:
            time.sleep(0.001)
        return max(((b - a) * 1000 for a, b in self.pings if b >= start and a <= end), default=0.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=130)
        self.client.close()


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[vtpu.Sidecar, zmq.Socket, Pinger]]:
    sc = vtpu.Sidecar()
    sc.start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 120_000)
    sock.connect(sc.address)
    with vtpu.connect(sc.address, timeout=30) as c:
        # A small KV cache (layer 0, one head, 2 positions, D 4) and a few scrolls for the ops to find.
        for pos in range(2):
            for kind in (1, 2):
                c.cput([0, 0, pos, kind, 0, 0, 0, 0, 0], np.ones(4, np.float32))
        for i in range(1, 5):
            c.cput([1, 1, 1, 1, 1, 1, 1, 1, i], f"scroll {i}")
    pinger = Pinger(sc.address)
    try:
        yield sc, sock, pinger
    finally:
        pinger.close()
        sock.close(linger=0)
        sc.stop(grace=2.0)


def with_value(params: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    """A copy of `params` with `name` (`kv.length` for a nested one) set to `value`."""
    out = json.loads(json.dumps(params))
    if "." in name:
        outer, inner = name.split(".", 1)
        if not isinstance(out.get(outer), dict):
            out[outer] = {}
        out[outer][inner] = value
    else:
        out[name] = value
    return out


_ids = iter(range(1, 10**9))


@pytest.mark.parametrize("op", OPS)
def test_extreme_parameter_values_get_typed_answers_and_stall_nobody(op: str, target: tuple[vtpu.Sidecar, zmq.Socket, Pinger]) -> None:
    sc, sock, pinger = target
    seeds = [s for s in SEEDS if s[0]["op"] == op]
    names = sorted(schema_params(PROTOCOL["ops"][op]))
    for outer, inner in NESTED.items():
        if outer in names:
            names += [f"{outer}.{n}" for n in inner]
    assert seeds, f"no base request for {op}"
    stalls: list[str] = []

    def send(params: dict[str, Any], bodies: list[bytes]) -> float:
        """Sends one request, checks its answer; returns the worst wait of a PING sent meanwhile (ms)."""
        rid = next(_ids)
        t0 = time.perf_counter()
        sock.send_multipart([json.dumps({"v": 1, "id": rid, "op": op, "params": params}).encode(), *bodies])
        try:
            reply = sock.recv_multipart()
        except zmq.Again:
            pytest.fail(f"{op} gave no reply in 120 s to {json.dumps(params)[:300]}")
        t1 = time.perf_counter()
        assert sc.running, f"sidecar died on {op} {json.dumps(params)[:300]}"
        header = json.loads(reply[0])
        assert header["id"] == rid
        if not header["ok"]:
            assert header["error"]["code"] in CODES - {"E_INTERNAL"}, (params, header["error"])
        return pinger.worst_wait_ms(t0, t1)

    def probe(params: dict[str, Any], bodies: list[bytes]) -> None:
        # A stall must reproduce: a busy machine (other processes) can delay one PING, a
        # request whose work blocks the event loop delays them every time.
        if send(params, bodies) > STALL_MS and (worst := send(params, bodies)) > STALL_MS:
            stalls.append(f"{op}: a PING waited {worst:.0f} ms twice while {json.dumps(params)[:200]} ran")

    # Every extreme integer in every parameter of every base request...
    for head, bodies in seeds:
        for name in names:
            for value in SWEEP:
                probe(with_value(head["params"], name, value), bodies)

    # ...then random combinations of extreme values of any kind.
    @settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(seed=st.sampled_from(seeds), changes=st.lists(st.tuples(st.sampled_from(names or ["none"]), EXTREMES), min_size=1, max_size=3))
    def combinations(seed: tuple[dict[str, Any], list[bytes]], changes: list[tuple[str, Any]]) -> None:
        params = seed[0]["params"]
        for name, value in changes:
            params = with_value(params, name, value)
        probe(params, seed[1])

    combinations()
    assert not stalls, stalls[:5]
