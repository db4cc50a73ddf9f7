"""CATTEND end to end from PyTorch (torch tensors in, torch tensor out, through the client)
beside torch SDPA with the equivalent boolean mask and compiled flex_attention with the same
block mask, all in one run. Shapes: B 1, Hq 16, Hkv 8, D 128, window 256, globals 0..3, fp32.
Also a decode step with the KV cache in the sidecar vs SDPA over the cache.

Usage: python test/bench/bench_attend.py [--quick]   (quick = small S, a smoke run)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))

import vtpu  # noqa: E402
from attn_ref import sparse_mask  # noqa: E402
from common import child, ipc_address, median  # noqa: E402

HQ, HKV, D, WINDOW = 16, 8, 128, 256
GLOBALS = (0, 1, 2, 3)


def _touch(out):
    """Reads one float per 4 KiB page of the output: our reply is a view of the received frame,
    whose first read costs page faults that a caller pays, so every contender's timing includes it."""
    out.reshape(-1)[::1024].sum()
    return out


def _sidecar_ms(client) -> tuple[int, float]:
    """(count, total ms) of CATTEND requests in the sidecar's metrics."""
    op = client.metrics()["ops"].get("CATTEND") or {}
    return int(op.get("count", 0)), float(op.get("count", 0) * (op.get("mean_ms") or 0.0))


def _timed_rounds(fn, rounds: int, warmup: int = 1):
    """Seconds of each of `rounds` calls (output touched, see _touch) after `warmup` unmeasured calls, and the last output."""
    for _ in range(warmup):
        out = _touch(fn())
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = _touch(fn())
        ts.append(time.perf_counter() - t0)
    return ts, out


def _timed(fn, rounds: int, warmup: int = 1):
    """Median seconds of `rounds` calls (see _timed_rounds) and the last output."""
    ts, out = _timed_rounds(fn, rounds, warmup)
    return median(ts), out


def _flex(q, k, v, s: int, rounds: int, warmup: int):
    """Compiled flex_attention with the same mask as a block mask; (seconds, out) or an error string."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        g = torch.zeros(s, dtype=torch.bool)
        g[list(GLOBALS)] = True

        def mask_mod(b, h, qi, kj):
            return (kj <= qi) & (((qi - kj) < WINDOW) | g[kj] | g[qi])

        bm = create_block_mask(mask_mod, B=None, H=None, Q_LEN=s, KV_LEN=s, device="cpu")
        # one static compile per shape: the default dynamic recompile for the second S failed to build (C++) here
        fn = torch.compile(flex_attention, dynamic=False)
        return _timed_rounds(lambda: fn(q, k, v, block_mask=bm, enable_gqa=True), rounds, warmup)
    except Exception as e:  # the peer's failure is reported as its figure, not hidden
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}", None


def prefill(client, s: int, rounds: int, peer_rounds: int, flex: bool) -> dict:
    g = torch.Generator().manual_seed(s)
    q = torch.randn(1, HQ, s, D, generator=g)
    k = torch.randn(1, HKV, s, D, generator=g)
    v = torch.randn(1, HKV, s, D, generator=g)
    # Two warm-up calls where affordable (JIT, ONNX Runtime session and arenas; compile for flex).
    warmup = 2 if s <= 8192 else 1
    call = lambda: torch.from_numpy(client.cattend(q, k, v, window=WINDOW, global_tokens=GLOBALS))  # noqa: E731
    for _ in range(warmup):
        _touch(call())
    before = _sidecar_ms(client)
    ours_rounds, o = _timed_rounds(call, rounds, 0)
    after = _sidecar_ms(client)
    r: dict = {"s": s, "ours_s": median(ours_rounds), "ours_rounds_s": ours_rounds, "rounds": rounds, "peer_rounds": peer_rounds, "warmup": warmup,
               # mean over the rounds of the sidecar's own time (request received → reply built)
               "ours_sidecar_s": (after[1] - before[1]) / max(1, after[0] - before[0]) / 1e3}
    try:
        mask = sparse_mask(s, s, WINDOW, GLOBALS, True)
        r["sdpa_rounds_s"], ref = _timed_rounds(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True), peer_rounds, warmup)
        r["sdpa_s"] = median(r["sdpa_rounds_s"])
        r["max_abs_err_vs_sdpa"] = float((o - ref).abs().max())
        del mask, ref
    except Exception as e:
        r["sdpa_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    if flex:
        t, out = _flex(q, k, v, s, peer_rounds, warmup)
        if isinstance(t, str):
            r["flex_error"] = t
        else:
            r["flex_s"], r["flex_rounds_s"] = median(t), t
            r["max_abs_err_vs_flex"] = float((o - out).abs().max())
    return r


def decode(client, s: int, rounds: int) -> dict:
    """One decode step at position s-1: send the new token's k/v to the cache, attend from the cache."""
    g = torch.Generator().manual_seed(s + 1)
    k = torch.randn(1, HKV, s, D, generator=g)
    v = torch.randn(1, HKV, s, D, generator=g)
    q = torch.randn(1, HQ, 1, D, generator=g)
    layer = 7
    t0 = time.perf_counter()
    client.kv_put(layer, k[:, :, :-1], v[:, :, :-1])
    prefill_put_s = time.perf_counter() - t0

    def step():
        client.kv_put(layer, k[:, :, -1:], v[:, :, -1:], start=s - 1)
        return torch.from_numpy(client.cattend(q, layer=layer, kv_length=s, window=WINDOW, global_tokens=GLOBALS))

    ours, o = _timed_rounds(step, rounds, 3)
    mask = sparse_mask(1, s, WINDOW, GLOBALS, True)
    sdpa, ref = _timed_rounds(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True), rounds, 3)
    # The peer a PyTorch user would write: slice the cache to the positions the new token sees
    # (the global tokens and the last WINDOW positions, its own included) and attend to those alone.
    globals_end = max(GLOBALS) + 1
    lo = max(globals_end, s - WINDOW)

    def sliced():
        ks = torch.cat([k[:, :, :globals_end], k[:, :, lo:]], dim=2)
        vs = torch.cat([v[:, :, :globals_end], v[:, :, lo:]], dim=2)
        return F.scaled_dot_product_attention(q, ks, vs, enable_gqa=True)

    sliced_rounds, sliced_out = _timed_rounds(sliced, rounds, 3)
    return {"s": s, "ours_s": median(ours), "sdpa_s": median(sdpa), "sliced_s": median(sliced_rounds),
            "ours_rounds_s": ours, "sdpa_rounds_s": sdpa, "sliced_rounds_s": sliced_rounds,
            "rounds": rounds, "kv_put_prefill_s": prefill_put_s,
            "max_abs_err_vs_sdpa": float((o - ref).abs().max()),
            "max_abs_err_vs_sliced": float((o - sliced_out).abs().max())}


def transfer_floor(s: int, rounds: int) -> float:
    """Median seconds to move CATTEND's bytes with no compute: q and k+v (two frames) from pyzmq
    to a bare zeromq.js echo that sends back only the first (o's size), reply touched as ours is."""
    g = torch.Generator().manual_seed(s)
    q = torch.randn(1, HQ, s, D, generator=g).numpy()
    kv = torch.randn(2, HKV, s, D, generator=g).numpy()
    addr = ipc_address("attend-echo")
    with child(["node", "test/bench/echo_server.js", addr, "--first-body"], "echo listening"):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(addr)
        try:
            def once():
                sock.send_multipart([q, kv], copy=False)
                reply = sock.recv_multipart(copy=False)
                return np.frombuffer(reply[0].buffer, np.float32)

            return _timed(once, rounds, 1)[0]
        finally:
            sock.close()


def run(quick: bool = False, rounds: int = 5) -> dict:
    # Four sizes for the time-vs-S plot; quick runs two small ones so the plot still has a line.
    sizes = [512, 1024] if quick else [4096, 8192, 16384, 32768]
    out: dict = {"shape": {"B": 1, "Hq": HQ, "Hkv": HKV, "D": D, "window": WINDOW, "globals": list(GLOBALS)},
                 "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "prefill": [], "decode": []}
    addr = ipc_address("attend")
    with child(["node", "bin/vtpu.js", "serve", "--address", addr], "vtpu sidecar listening"):
        with vtpu.connect(addr, timeout=1800) as client:
            for s in sizes:
                # SDPA with a mask computes all S×S scores: at 32k one round takes minutes.
                out["prefill"].append(prefill(client, s, rounds if s <= 8192 else 2, rounds if s <= 8192 else 1, flex=True))
                out["prefill"][-1]["transfer_floor_s"] = transfer_floor(s, rounds if s <= 8192 else 2)
            for s in ([1024] if quick else [8192, 32768]):
                out["decode"].append(decode(client, s, 20))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small S only (a smoke run)")
    args = ap.parse_args()
    print(json.dumps(run(quick=args.quick, rounds=3 if args.quick else 5), indent=1))


if __name__ == "__main__":
    main()
