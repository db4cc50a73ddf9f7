"""Many clients on one sidecar: every reply reaches its caller exactly once, unmixed, and a
client that never reads its replies stalls nobody and cannot grow the sidecar without bound.

16 clients: 4 processes x 2 threads sharing one ``vtpu.Client`` each, 4 threads sharing one
``vtpu.Client`` here, and 4 threads pipelining raw DEALER requests (to see duplicates the
client would hide). ~500 mixed ops each; ``VTPU_SOAK=1`` (``make soak``): 10,000.
Values carry their writer's id, sequence number and a CRC, so a reply meant for another
caller or a damaged value is caught.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import zmq

import numpy as np

import vtpu
from conftest import CLI_BUILT, NOT_BUILT

pytestmark = pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)

OPS = 10_000 if os.environ.get("VTPU_SOAK") == "1" else 500
TIMEOUT = 60.0  # generous: a lost reply shows up as a timeout, never decided by speed


def make_value(cid: int, seq: int, rng: random.Random) -> bytes:
    body = struct.pack("<II", cid, seq) + rng.randbytes(rng.choice((4, 32, 300, 3000)))
    return body + struct.pack("<I", zlib.crc32(body))


def as_bytes(values: np.ndarray, found: np.ndarray) -> list:
    """Bytes values as a list: rows of one width come back as an (N, width) uint8 array."""
    if values.dtype == np.uint8:
        return [bytes(v) if f else None for v, f in zip(values, found)]
    return list(values)


def check_value(v: bytes, cid: int) -> None:
    body, crc = v[:-4], struct.unpack("<I", v[-4:])[0]
    assert zlib.crc32(body) == crc, "value damaged"
    assert struct.unpack("<I", body[:4])[0] == cid, "a reply meant for another client"


def coord(cid: int, x: int, y: int) -> str:
    return f"{cid + 1}.1.1/1.1.1/1.{x}.{y}"


def mixed_ops(client: vtpu.Client, cid: int, n: int, seed: int) -> int:
    """``n`` mixed ops on client ``cid``'s own coordinates, each reply checked against a model."""
    rng = random.Random(seed)
    model: dict[str, bytes] = {}
    keys = [coord(cid, x, y) for x in range(1, 5) for y in range(1, 51)]
    for seq in range(n):
        r = rng.random()
        k = rng.choice(keys)
        if r < 0.3:
            model[k] = make_value(cid, seq, rng)
            assert client.cput(k, model[k], timeout=TIMEOUT) == 1
        elif r < 0.55:
            got = client.cget(k, timeout=TIMEOUT)
            assert got == model.get(k), f"CGET {k}"
            if got is not None:
                check_value(got, cid)
        elif r < 0.65:
            batch = rng.sample(keys, 8)
            vals = [make_value(cid, seq, rng) for _ in batch]
            assert client.cput_batch(vtpu.coords_array(batch), vals, timeout=TIMEOUT) == 8
            model.update(zip(batch, vals))
        elif r < 0.75:
            batch = rng.sample(keys, 8)
            got = client.cget_batch(vtpu.coords_array(batch), timeout=TIMEOUT)
            assert as_bytes(got.values, got.found) == [model.get(b) for b in batch]
        elif r < 0.85:
            assert client.cdel(k, timeout=TIMEOUT) == (model.pop(k, None) is not None)
        elif r < 0.95:
            res = client.crange(f"{cid + 1}.*.*/*.*.*/*.*.*", timeout=TIMEOUT)
            stored = dict(zip((vtpu.format_coord(c) for c in res.coords), as_bytes(res.values, res.found)))
            assert stored == model, "CRANGE disagrees with this client's writes"
        else:
            assert client.ping(timeout=TIMEOUT)["version"] == 1
    return n


def process_worker(address: str, cids: list[int], n: int) -> int:
    """One process: its clients as threads sharing one ``vtpu.Client``."""
    with vtpu.Client(address) as c, ThreadPoolExecutor(len(cids)) as ex:
        return sum(ex.map(lambda cid: mixed_ops(c, cid, n, seed=cid), cids))


def raw_worker(address: str, cid: int, n: int, window: int = 16) -> int:
    """Pipelines ``window`` raw requests: every id sent comes back exactly once, nothing else."""
    rng = random.Random(cid)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    sock.connect(address)
    # id -> (op, key, value written | values a CGET may see: the acked one or one still in flight)
    outstanding: dict[int, tuple[str, str, list[bytes]]] = {}
    acked: dict[str, bytes] = {}
    done = 0
    try:
        rid = 0
        while done < n:
            while len(outstanding) < window and rid < n:
                rid += 1
                k = coord(cid, rng.randint(1, 4), rng.randint(1, 50))
                if k in acked and rng.random() < 0.5:
                    seen = [acked[k], *(v[0] for op, kk, v in outstanding.values() if op == "CPUT" and kk == k)]
                    outstanding[rid] = ("CGET", k, seen)
                    sock.send(json.dumps({"v": 1, "id": rid, "op": "CGET", "params": {"coord": k}}).encode())
                else:
                    v = make_value(cid, rid, rng)
                    outstanding[rid] = ("CPUT", k, [v])
                    head = {"v": 1, "id": rid, "op": "CPUT", "params": {"coord": k, "kind": "bytes"}}
                    sock.send_multipart([json.dumps(head).encode(), v])
            frames = sock.recv_multipart()
            h = json.loads(frames[0])
            assert h["id"] in outstanding, f"reply {h['id']}: duplicated or not ours"
            op, k, vals = outstanding.pop(h["id"])
            assert h["ok"], h
            if op == "CPUT":
                acked[k] = vals[0]
            else:
                assert any(v in frames[1] for v in vals), f"CGET {k}: not a value this client wrote there"
            done += 1
        assert not outstanding
        assert sock.poll(300) == 0, "a reply arrived after every request was answered"
    finally:
        sock.close(0)
    return done


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_sixteen_clients_every_reply_to_its_caller() -> None:
    with vtpu.Sidecar() as sc:
        with vtpu.Client(sc.address) as warm:
            mixed_ops(warm, 99, 200, seed=1)
        before = rss(sc.proc.pid)
        ctx = mp.get_context("spawn")
        with ctx.Pool(4) as procs, vtpu.Client(sc.address) as shared, ThreadPoolExecutor(8) as threads:
            in_procs = [procs.apply_async(process_worker, (sc.address, [2 * p, 2 * p + 1], OPS)) for p in range(4)]
            in_threads = [threads.submit(mixed_ops, shared, cid, OPS, cid) for cid in range(8, 12)]
            raw = [threads.submit(raw_worker, sc.address, cid, OPS) for cid in range(12, 16)]
            total = sum(f.result() for f in in_threads + raw) + sum(r.get(timeout=600) for r in in_procs)
        assert total == 16 * OPS
        assert sc.running
        # Bounded: 16 clients x 200 keys x <= 3 KB of live data, plus per-connection buffers.
        assert rss(sc.proc.pid) - before < 256 << 20


def test_a_client_that_never_reads_stalls_nobody() -> None:
    big = b"z" * 65536
    with vtpu.Sidecar() as sc, vtpu.Client(sc.address) as c:
        c.cput("9.9.9/9.9.9/9.9.9", big)
        before = rss(sc.proc.pid)
        slow = zmq.Context.instance().socket(zmq.DEALER)
        slow.setsockopt(zmq.LINGER, 0)
        slow.setsockopt(zmq.RCVHWM, 1)
        slow.connect(sc.address)
        try:
            sent = 8000  # 512 MB of replies if the sidecar queued them all
            for i in range(1, sent + 1):
                slow.send(json.dumps({"v": 1, "id": i, "op": "CGET", "params": {"coord": "9.9.9/9.9.9/9.9.9"}}).encode())
            with ThreadPoolExecutor(4) as ex:
                assert sum(ex.map(lambda cid: mixed_ops(c, cid, 100, seed=cid), range(4))) == 400
            # Replies to the slow client stop queueing at the send high-water mark.
            grown = rss(sc.proc.pid) - before
            assert grown < 256 << 20, f"sidecar grew {grown >> 20} MB for one client that does not read"
            got = 0
            while slow.poll(500):
                slow.recv_multipart()
                got += 1
            assert 0 < got < sent, "beyond the high-water mark a non-reading client's replies are dropped"
            assert c.cget("9.9.9/9.9.9/9.9.9") == big
        finally:
            slow.close(0)
