"""Renders benchmark results (see run.py) as BENCHMARKS.md: our figure, the peer's, the ratio,
the issue's target, and whether it was met — a miss is printed as a miss."""
from __future__ import annotations


def _fmt(x: float, unit: str = "") -> str:
    if unit == " µs" and x >= 1000:
        return _fmt(x / 1000, " ms")
    if x >= 1e6:
        s = f"{x / 1e6:.2f} M"
    elif x >= 1e4:
        s = f"{x / 1e3:.0f} k"
    elif x >= 100:
        s = f"{x:.0f}"
    else:
        s = f"{x:.2f}"
    return f"{s}{unit}".replace("M ", "M").strip()


def _row(name, ours, peer, ratio, target, met) -> str:
    return f"| {name} | {ours} | {peer} | {ratio} | {target} | {'yes' if met else '**no**'} |"


HEAD = "| figure | vTPU | peer | ratio | target | met |\n|---|---|---|---|---|---|"


def _roundtrip(r: dict) -> list[str]:
    ratio = r["cget_p50_us"] / r["echo_p50_us"]
    return [
        "## Single CGET round trip from Python",
        f"Peer: a bare pyzmq DEALER → zeromq.js ROUTER echo of the same request bytes "
        f"(`test/bench/echo_server.js`). {r['rounds']} rounds × {r['calls_per_round']} calls, ipc, median of the rounds.",
        "", HEAD,
        _row("p50 latency", _fmt(r["cget_p50_us"], " µs"), _fmt(r["echo_p50_us"], " µs"), f"{ratio:.2f}× echo", "≤ 1.3× echo", ratio <= 1.3),
        _row("p99 latency", _fmt(r["cget_p99_us"], " µs"), _fmt(r["echo_p99_us"], " µs"),
             f"{r['cget_p99_us'] / r['echo_p99_us']:.2f}× echo", "reported", True),
        "",
    ]


def _batch(r: dict) -> list[str]:
    v, p = r["vtpu"], r["redis"]
    lines = [
        f"## Batched CPUT then CGET of {r['n']:,} coordinates (16-byte values, numpy in and out)",
        "Peer: redis-server (unix socket, no persistence) through redis-py pipelines of 10,000 "
        f"(SET, then MGET). Median of {r['rounds']} rounds after one unmeasured warm-up round, for both.",
        "", HEAD,
    ]
    for op, key in (("CPUT", "put_per_s"), ("CGET", "get_per_s")):
        peer = p.get(key)
        ratio = f"{v[key] / peer:.1f}× redis" if peer else "n/a"
        lines.append(_row(f"{op} coordinates/s", _fmt(v[key], "/s"), _fmt(peer, "/s") if peer else p.get("error", "n/a"),
                          ratio, "≥ 2 M/s", v[key] >= 2e6))
    lines += ["", "Sidecar memory per stored coordinate: the store's own arrays (keys, metadata, hash table, "
              f"value heap; from PING) **{v['store_bytes_per_coord']:.0f} bytes**; process RSS growth after the "
              f"first load {v['rss_loaded_bytes_per_coord']:.0f} bytes, and after all rounds "
              f"{v['rss_end_bytes_per_coord']:.0f} bytes (request and reply buffers the garbage collector "
              "had not yet returned).", ""]
    return lines


def _engine(e: dict, sq: dict) -> list[str]:
    c, cr = e["cget"], e["crange"]
    ratio = c["store_lookups_per_s"] / c["map_lookups_per_s"]
    lines = [
        f"## Engine-side batched CGET, one thread ({c['n']:,} stored, lookups in shuffled order)",
        "Peer: a JS `Map` keyed by the coordinate string, built from the same Uint32Array rows, "
        "gathering the same value bytes. Median of the rounds.",
        "", HEAD,
        _row("lookups/s", _fmt(c["store_lookups_per_s"], "/s"), _fmt(c["map_lookups_per_s"], "/s"), f"{ratio:.1f}× Map", "≥ 3× Map", ratio >= 3),
        "",
        f"## CRANGE with a leading wildcard (`*.*.*/k.*.*/*.*.*`) over {cr['n']:,} coordinates",
        "Peers: a linear scan of the same store (test every key, sort, gather — engine-side, same process), "
        "and SQLite in memory with an index on the constrained column (`SELECT … WHERE c3 = ? ORDER BY c0..c8`, "
        "Python sqlite3). Engine figures are engine-side, median of the rounds: *warm* repeats the query, "
        "*cold* runs it right after a scan has pushed the store through the caches.",
        "",
        "| rows selected | vTPU index, warm | vTPU index, cold | linear scan | ratio warm / cold | SQLite (indexed) | target ≥ 100× scan |",
        "|---|---|---|---|---|---|---|",
    ]
    for count, p in cr["patterns"].items():
        rw, rc = p["scan_us"] / p["warm_us"], p["scan_us"] / p["cold_us"]
        met = "yes" if rc >= 100 else ("warm only" if rw >= 100 else "**no**")
        lines.append(f"| {count} | {_fmt(p['warm_us'], ' µs')} | {_fmt(p['cold_us'], ' µs')} | {_fmt(p['scan_us'], ' µs')} | "
                     f"{rw:.0f}× / {rc:.0f}× | {_fmt(sq[count]['median_us'], ' µs')} | {met} |")
    first = ", ".join(f"{k}: {_fmt(v['first_query_us'] / 1000, ' ms')}" for k, v in cr["patterns"].items())
    lines += [
        "",
        f"Queries answered by the index: {cr['index_hits']}, full scans: {cr['scans']}. The index is built lazily "
        f"by the first range query after a bulk load (first query per pattern, build included: {first}). "
        f"Bulk load of {cr['n']:,} coordinates: {_fmt(cr['load_s'] * 1000, ' ms')}.",
        f"Engine memory per stored coordinate (every array the store allocated — keys, metadata, hash table, "
        f"value heap, built orderings — including growth slack, `store.stats().allocatedBytes`): "
        f"**{cr['store_bytes_per_coord']:.0f} bytes**.",
        "",
    ]
    return lines


def _attend(r: dict) -> list[str]:
    sh = r["shape"]
    lines = [
        f"## CATTEND sparse attention from PyTorch (B {sh['B']}, Hq {sh['Hq']}, Hkv {sh['Hkv']}, D {sh['D']}, "
        f"window {sh['window']}, globals {sh['globals']}, causal, fp32)",
        "End to end through the client: torch tensors in, torch tensor out. Peers in the same run: "
        "`F.scaled_dot_product_attention` with the equivalent boolean mask (`enable_gqa=True`) and "
        f"`torch.compile(flex_attention)` with the same mask as a block mask (torch {r['torch']}, "
        f"{r['torch_threads']} threads). Median of the rounds after warm-up calls (two up to S=8192, one above, for "
        "every contender); the max abs difference "
        "to each peer's output is printed beside it.",
        "", HEAD,
    ]
    for p in r["prefill"]:
        s = p["s"]
        rounds = f"{p['rounds']} rounds (peers {p['peer_rounds']})"
        if "sdpa_s" in p:
            ratio = p["sdpa_s"] / p["ours_s"]
            lines.append(_row(f"prefill S={s}, vs SDPA ({rounds}; max err {p['max_abs_err_vs_sdpa']:.1e})", _fmt(p["ours_s"] * 1e3, " ms"),
                              _fmt(p["sdpa_s"] * 1e3, " ms"), f"{ratio:.1f}× faster", "≥ 5× SDPA", ratio >= 5))
        else:
            lines.append(_row(f"prefill S={s}, vs SDPA", _fmt(p["ours_s"] * 1e3, " ms"), f"could not run: {p['sdpa_error']}", "n/a", "≥ 5× SDPA", False))
        if "flex_s" in p:
            ratio = p["flex_s"] / p["ours_s"]
            lines.append(_row(f"prefill S={s}, vs compiled flex_attention (max err {p['max_abs_err_vs_flex']:.1e})", _fmt(p["ours_s"] * 1e3, " ms"),
                              _fmt(p["flex_s"] * 1e3, " ms"), f"{ratio:.1f}× faster", "≥ 1× flex", ratio >= 1))
        else:
            lines.append(_row(f"prefill S={s}, vs compiled flex_attention", _fmt(p["ours_s"] * 1e3, " ms"),
                              f"failed: {p.get('flex_error', 'not run')}", "n/a", "≥ 1× flex", False))
    for d in r["decode"]:
        ratio = d["sdpa_s"] / d["ours_s"]
        lines.append(_row(f"decode step at S={d['s']} (KV cache in the sidecar: send new k/v + attend; {d['rounds']} rounds)",
                          _fmt(d["ours_s"] * 1e6, " µs"), _fmt(d["sdpa_s"] * 1e6, " µs"), f"{ratio:.2f}× SDPA", "reported", True))
    lines += ["", "Forward prefill runs on ONNX Runtime (a band-attention graph built in TS; its intra-op threads use "
              "every core), decode steps on the plain-JS kernel over only the visible cache positions.", ""]
    return lines


def _moe(m: dict) -> list[str]:
    """CMOE routing + dispatch plan + aux statistics beside PyTorch on the CPU."""
    eng, e2e = m["vtpu_engine_ms"], m["vtpu_end_to_end_ms"]
    agree = "yes" if m["same_experts"] and m["same_plan"] else "**no**"
    return [
        f"## CMOE: routing + dispatch plan + aux losses, {m['tokens']:,} tokens × {m['experts']} experts, top-{m['top_k']}",
        "Peer: PyTorch on the CPU computing the same outputs (softmax, topk, renormalize, stable argsort + "
        "bincount for the plan, the transformers load-balancing loss, the Switch loss, the z-loss) from a tensor "
        "already in memory. vTPU engine-side is the op's own time (`elapsed_ms`, no transfer; one thread); "
        f"end to end is `client.cmoe` from Python with the float32 logits sent over ipc. Median of {m['rounds']} "
        f"rounds after one unmeasured warm-up. Same experts and plan as the peer: {agree} "
        f"(largest weight difference {m['max_weight_diff']:.1e}, aux-loss difference {m['aux_loss_diff']:.1e}).",
        "", HEAD,
        _row("engine-side", _fmt(eng, " ms"), f"{_fmt(m['torch_1thread_ms'], ' ms')} (torch, 1 thread)",
             f"{eng / m['torch_1thread_ms']:.2f}× torch time", "reported", True),
        _row("engine-side", _fmt(eng, " ms"), f"{_fmt(m['torch_ms'], ' ms')} (torch, {m['torch_threads']} threads)",
             f"{eng / m['torch_ms']:.2f}× torch time", "reported", True),
        _row("end to end from Python", _fmt(e2e, " ms"), f"{_fmt(m['torch_ms'], ' ms')} (torch, {m['torch_threads']} threads)",
             f"{e2e / m['torch_ms']:.2f}× torch time", "reported", True),
        "",
    ]


def _misses(results: dict) -> list[str]:
    """Why each missed target was missed: what the profiles taken while building this showed."""
    r, cr = results["roundtrip"], results["engine"]["crange"]
    out = []
    if r["cget_p50_us"] / r["echo_p50_us"] > 1.3:
        out.append("- **Single CGET p50.** The echo does one send and one receive of raw bytes. A CGET "
                   "also builds and parses a JSON header on both sides, runs the engine, and replies with "
                   "two frames (header + value); the Python client adds its own layers (coordinate "
                   "validation, per-thread socket lookup, the reply-to-value conversion). Profiles put most "
                   "of the extra time in the Python code that runs once per request — cold after each wait, "
                   "so every line costs several times its in-loop cost — and the rest in the sidecar's "
                   "header parse and reply build.")
    cold = [k for k, p in cr["patterns"].items() if p["scan_us"] / p["cold_us"] < 100]
    if cold:
        out.append(f"- **CRANGE, cold, {', '.join(cold)} rows.** The index finds the rows in microseconds; the "
                   "time goes to gathering them: each row's key, metadata and value sit at its insertion "
                   "position, so a cold query pays cache and TLB misses on three random pages per row "
                   "(the V8 heap gets no huge pages here). Warm, the same query meets the target.")
    for op, key in (("CPUT", "put_per_s"), ("CGET", "get_per_s")):
        if results["batch"]["vtpu"][key] < 2e6:
            out.append(f"- **Batched {op}.** Below 2 M/s in this run; see the round-by-round figures with "
                       "`python test/bench/bench_batch.py`.")
    for p in results.get("attend", {}).get("prefill", []):
        if "sdpa_s" in p and p["sdpa_s"] / p["ours_s"] < 5:
            out.append(f"- **CATTEND prefill S={p['s']} vs SDPA.** SDPA computes all S² scores, so our advantage grows "
                       "with S/window; at small S the band (block + window + globals) is a large share of S and the "
                       "ONNX Runtime graph's gather, bias add and softmax passes cost as much as SDPA's dense kernel.")
        if "flex_s" in p and p["flex_s"] < p["ours_s"]:
            out.append(f"- **CATTEND prefill S={p['s']} vs flex_attention.** Below compiled flex_attention in this run.")
    return ["## Misses", ""] + out + [""] if out else []


def render(results: dict, meta: dict) -> str:
    out = [
        "# Benchmarks",
        "",
        f"Produced by `{meta['command']}` ({meta['date']}); every figure below was printed by that run, "
        "each beside its peer measured in the same run.",
        "",
        f"Machine: {meta['machine']}.",
        "",
    ]
    out += _roundtrip(results["roundtrip"])
    out += _batch(results["batch"])
    out += _engine(results["engine"], results["sqlite"])
    if "attend" in results:
        out += _attend(results["attend"])
    if "moe" in results:
        out += _moe(results["moe"])
    out += _misses(results)
    return "\n".join(out) + "\n"
