"""Single CGET round trip from Python vs a bare pyzmq -> zeromq.js echo of the same request bytes."""
from __future__ import annotations

import json
import time

import zmq

import vtpu
from common import child, ipc_address, median, percentile

COORD = "1.2.3/4.5.6/7.8.9"


def _latencies(call, n: int) -> list[float]:
    for _ in range(min(1000, n)):
        call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - t0) / 1000.0)
    out.sort()
    return out


def echo_round(address: str, n: int) -> list[float]:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(address)
    header = json.dumps({"v": 1, "id": 1, "op": "CGET", "params": {"coord": COORD}}).encode()

    def call():
        sock.send(header, copy=True)
        sock.recv_multipart()

    try:
        return _latencies(call, n)
    finally:
        sock.close()


def vtpu_round(client, n: int) -> list[float]:
    return _latencies(lambda: client.cget(COORD), n)


def run(rounds: int = 5, n: int = 20000) -> dict:
    echo_addr, side_addr = ipc_address("echo"), ipc_address("sidecar")
    echo_p50, echo_p99, our_p50, our_p99 = [], [], [], []
    e = v = []
    with child(["node", "test/bench/echo_server.js", echo_addr], "echo listening"), \
         child(["node", "bin/vtpu.js", "serve", "--address", side_addr], "vtpu sidecar listening"):
        with vtpu.connect(side_addr) as client:
            client.cput(COORD, b"0123456789abcdef")
            for _ in range(rounds):
                e = echo_round(echo_addr, n)
                v = vtpu_round(client, n)
                echo_p50.append(percentile(e, 0.5)); echo_p99.append(percentile(e, 0.99))
                our_p50.append(percentile(v, 0.5)); our_p99.append(percentile(v, 0.99))
    quantiles = [i / 100 for i in range(1, 100)] + [0.995, 0.999]
    return {
        "echo_p50_us": median(echo_p50), "echo_p99_us": median(echo_p99),
        "cget_p50_us": median(our_p50), "cget_p99_us": median(our_p99),
        "echo_p50_rounds_us": echo_p50, "cget_p50_rounds_us": our_p50,
        # the last round's latency distribution (percentiles 1..99, 99.5, 99.9), for the plot
        "quantiles": quantiles,
        "echo_quantiles_us": [percentile(e, q) for q in quantiles],
        "cget_quantiles_us": [percentile(v, q) for q in quantiles],
        "rounds": rounds, "calls_per_round": n,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
