"""Fuzz a live sidecar with random and mutated frames and mutated Arrow bodies: it never
crashes, answers every message with a typed error or a valid reply, and keeps serving a
normal client throughout. Short by default; VTPU_SOAK=1 sends 100,000 frames."""

from __future__ import annotations

import json
import os
import random
from typing import Any, Callable

import numpy as np
import pytest
import zmq

import vtpu
from conftest import CLI_BUILT, NOT_BUILT
from vtpu import arrow
from vtpu.protocol import PROTOCOL
from vtpu.tensors import encode_tensors

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

FRAMES = 100_000 if os.environ.get("VTPU_SOAK") == "1" else 5_000
CODES = set(PROTOCOL["errors"])
ALL = "*.*.*/*.*.*/*.*.*"


def seeds() -> list[tuple[dict[str, Any], list[bytes]]]:
    """Valid requests (header fields, bodies) of every body kind, small."""
    c = [[1, 1, 1, 1, 1, 1, 1, 1, i + 1] for i in range(4)]
    coords = bytes(arrow.encode_coords(c))
    scrolls = bytes(arrow.encode_scrolls(c, ["a", b"bb", "ccc", b"\x00"]))
    tensors = bytes(arrow.encode_scrolls([[4, 1, 1, 1, 1, 1, 1, 1, i + 1] for i in range(2)], np.ones((2, 3), np.float32)))
    names, qbody = encode_tensors({"queries": np.ones((1, 3), np.float32)})
    return [
        ({"op": "PING", "params": {}}, []),
        ({"op": "CGET", "params": {"coord": "1.1.1/1.1.1/1.1.1"}}, []),
        ({"op": "CGET", "params": {"batch": True}}, [coords]),
        ({"op": "CPUT", "params": {"coord": "2.1.1/1.1.1/1.1.1", "kind": "text"}}, [b"hello"]),
        ({"op": "CPUT", "params": {"coord": [3, 1, 1, 1, 1, 1, 1, 1, 1], "kind": "tensor", "dtype": "float32", "shape": [2]}}, [b"\x00" * 8]),
        ({"op": "CPUT", "params": {"batch": True}}, [scrolls]),
        ({"op": "CPUT", "params": {"batch": True}}, [tensors]),
        ({"op": "CDEL", "params": {"batch": True}}, [coords]),
        ({"op": "CRANGE", "params": {"pattern": "1.*.*/*.*.*/*.*.*", "limit": 10}}, []),
        ({"op": "CDELTA", "params": {"batch": True, "offset": [0, 0, 0, 0, 0, 0, 0, 0, 1], "fetch": True}}, [coords]),
        ({"op": "CHIER", "params": {"coord": "1.1.1/1.1.1/1.1.1", "level": 3, "direction": "down", "depth": 1}}, []),
        ({"op": "CROUTE", "params": {"batch": True}}, [coords]),
        ({"op": "PHEXT_IMPORT", "params": {}}, [b"one\x17two\x18three\x01"]),
        ({"op": "PHEXT_EXPORT", "params": {"pattern": "1.*.*/*.*.*/*.*.*"}}, []),
        ({"op": "CNEAREST", "params": {"batch": True, "k": 1}}, [coords]),
        ({"op": "CNEAREST", "params": {"tensors": names, "k": 1, "pattern": "4.*.*/*.*.*/*.*.*", "skip_mismatched": True}}, [bytes(qbody)]),
        ({"op": "PROGRAM", "params": {"steps": [{"op": "CRANGE", "params": {"pattern": "1.*.*/*.*.*/*.*.*"}}, {"op": "CGET", "params": {"batch": True, "body": {"$ref": 0}}}, {"op": "CDEL", "params": {"batch": True, "body": True}}]}}, [coords]),
        ({"op": "CSYNC", "params": {"step": "hello", "pattern": ALL}}, []),
        ({"op": "CSYNC", "params": {"step": "hash", "pattern": ALL, "level": 1, "nodes": [0, 5]}}, []),
        ({"op": "CSYNC", "params": {"step": "list", "pattern": ALL, "level": 2, "nodes": [7]}}, []),
        ({"op": "CSYNC", "params": {"step": "apply", "batch": True, "times": [1, 2, 3, 4]}}, [scrolls]),
        ({"op": "METRICS", "params": {}}, []),
    ]


JUNK: list[Any] = [None, True, -1, 0, 2**31, 2**53, 1.5, "", "x" * 300, [], [1] * 20, {}, {"$ref": 0}, "*.*.*/*.*.*/*.*.*"]


def mutate_bytes(b: bytes, rng: random.Random) -> bytes:
    if not b:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    x = bytearray(b)
    how = rng.randrange(5)
    if how == 0:  # bit flips
        for _ in range(rng.randint(1, 8)):
            x[rng.randrange(len(x))] ^= 1 << rng.randrange(8)
    elif how == 1:  # truncate
        x = x[: rng.randrange(len(x))]
    elif how == 2:  # overwrite a run with extreme bytes
        at = rng.randrange(len(x))
        x[at : at + 8] = bytes([rng.choice([0, 0xFF, 0x7F, 0x80])] * 8)
    elif how == 3:  # duplicate a slice
        a = rng.randrange(len(x))
        x[a:a] = x[a : a + rng.randint(1, 64)]
    else:  # random bytes inside
        at = rng.randrange(len(x))
        x[at : at + 4] = bytes(rng.getrandbits(8) for _ in range(4))
    return bytes(x)


def mutate_header(h: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    h = json.loads(json.dumps(h))
    p = h["params"]
    how = rng.randrange(4)
    if how == 0 and p:
        p[rng.choice(list(p))] = rng.choice(JUNK)
    elif how == 1:
        p[rng.choice(["batch", "coord", "pattern", "level", "nodes", "times", "k", "limit", "step", "body"])] = rng.choice(JUNK)
    elif how == 2:
        h["op"] = rng.choice(list(PROTOCOL["ops"]) + ["NOPE", ""])
    elif p:
        del p[rng.choice(list(p))]
    return h


def make_frames(i: int, rng: random.Random, base: list[tuple[dict[str, Any], list[bytes]]]) -> list[bytes]:
    head, bodies = rng.choice(base)
    kind = rng.randrange(8)
    header = {"v": 1, "id": i, **head}
    if kind == 0:  # pure noise, 1-3 frames
        return [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))) for _ in range(rng.randint(1, 3))]
    if kind in (1, 2):  # mutated header, bodies intact
        return [json.dumps({"v": 1, "id": i, **mutate_header(head, rng)}).encode(), *bodies]
    if kind in (3, 4, 5) and bodies:  # mutated Arrow / raw body
        k = rng.randrange(len(bodies))
        return [json.dumps(header).encode(), *bodies[:k], mutate_bytes(bodies[k], rng), *bodies[k + 1 :]]
    if kind == 6:  # header bytes mutated
        return [mutate_bytes(json.dumps(header).encode(), rng), *bodies]
    # frame count wrong: a body dropped, or an extra one
    if rng.random() < 0.5:
        return [json.dumps(header).encode(), *bodies, rng.choice([b for _, bs in base for b in bs])]
    return [json.dumps(header).encode(), *bodies[:-1]]


def check_reply(frames: list[bytes], sent: list[bytes], internal: list[str]) -> None:
    head = json.loads(frames[0])
    assert head.get("v") == 1 and isinstance(head.get("id"), int), head
    if head["ok"] is True:
        assert isinstance(head.get("result"), dict), head
        return
    err = head["error"]
    assert err["code"] in CODES, head
    if err["code"] == "E_INTERNAL":
        internal.append(f"{err['message']} <- {sent[0][:200]!r}")


def test_fuzzed_frames_get_typed_answers_and_the_sidecar_keeps_serving(fresh_sidecar: vtpu.Sidecar) -> None:
    rng = random.Random(int(os.environ.get("VTPU_FUZZ_SEED", "20261202")))
    base = seeds()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(fresh_sidecar.address)
    internal: list[str] = []
    try:
        with vtpu.connect(fresh_sidecar.address, timeout=10) as normal:
            # The seeds themselves are valid.
            for i, (h, bodies) in enumerate(base):
                sock.send_multipart([json.dumps({"v": 1, "id": i, **h}).encode(), *bodies])
                reply = sock.recv_multipart()
                assert json.loads(reply[0])["ok"], (h, reply[0][:300])
            for i in range(FRAMES):
                frames = make_frames(i + 1000, rng, base)
                sock.send_multipart(frames)
                try:
                    reply = sock.recv_multipart()
                except zmq.Again:
                    pytest.fail(f"no reply to fuzz frame {i}: {frames[0][:200]!r}")
                check_reply(reply, frames, internal)
                if i % 250 == 0:
                    coord = [9, 9, 9, 9, 9, 9, 9, 9, 1 + i % 999]
                    normal.cput(coord, f"normal {i}")
                    assert normal.cget(coord) == f"normal {i}"
            assert fresh_sidecar.running
            assert normal.ping()["ops"]
    finally:
        sock.close(linger=0)
    assert not internal, internal[:5]
