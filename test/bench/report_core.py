"""BENCHMARKS.md sections of the `core` suite: single-op round trip, batched CPUT/CGET beside
redis, engine-side batched CGET beside two JS Map peers, CRANGE beside a scan and SQLite."""
from __future__ import annotations

from report_common import HEAD, _fmt, _row, at_least, at_most, faster, ratio_rounds


def _roundtrip(r: dict) -> list[str]:
    ratio = r["cget_p50_us"] / r["echo_p50_us"]
    ratios = ratio_rounds(r.get("cget_p50_rounds_us", [r["cget_p50_us"]]), r.get("echo_p50_rounds_us", [r["echo_p50_us"]]))
    return [
        "## Single CGET round trip from Python",
        f"Peer: a bare pyzmq DEALER → zeromq.js ROUTER echo of the same request bytes "
        f"(`test/bench/echo_server.js`). {r['rounds']} rounds × {r['calls_per_round']} calls, ipc, median of the rounds.",
        "", HEAD,
        _row("p50 latency", _fmt(r["cget_p50_us"], " µs"), _fmt(r["echo_p50_us"], " µs"), f"{ratio:.2f}× echo", "≤ 1.3× echo",
             at_most(ratios, 1.3, lambda lo, hi: f"{lo:.2f}–{hi:.2f}× echo over the rounds")),
        _row("p99 latency", _fmt(r["cget_p99_us"], " µs"), _fmt(r["echo_p99_us"], " µs"),
             f"{r['cget_p99_us'] / r['echo_p99_us']:.2f}× echo", "reported", True),
        "",
    ]


def _batch(r: dict) -> list[str]:
    v, p = r["vtpu"], r["redis"]
    lines = [
        f"## Batched CPUT then CGET of {r['n']:,} coordinates (16-byte values, numpy in and out)",
        "Peer: redis-server (unix socket, no persistence) through redis-py pipelines"
        + (f" of {p['pipeline']:,}" if "pipeline" in p else "") + f" (MSET, then MGET). Median of {r['rounds']} rounds after one unmeasured warm-up round, for both; "
        "the spread is the slowest and fastest round. *bytes*: 16-byte rows in, an (N, 16) uint8 array out; "
        "*tensor*: (N, 4) float32 in and out; *shm*: bodies through the shared-memory arenas, *frames*: "
        "through the socket.",
        "", "| figure | vTPU (spread) | redis (spread) | ratio | target | met |", "|---|---|---|---|---|---|",
    ]
    sp = lambda x: f"{_fmt(x[0], '/s')}–{_fmt(x[1], '/s')}"  # noqa: E731
    for var in r.get("variants", [v]):
        label = f"{var.get('kind', 'bytes')}, {'shm' if var.get('shm', False) else 'frames'}"
        for op, key in (("CPUT", "put"), ("CGET", "get")):
            ours, peer = var[f"{key}_per_s"], p.get(f"{key}_per_s")
            spread = var.get(f"{key}_spread", [ours, ours])
            met = at_least(spread, 2e6, lambda lo, hi: sp([lo, hi]))
            peer_s = f"{_fmt(peer, '/s')} ({sp(p[f'{key}_spread'])})" if peer and f"{key}_spread" in p else (_fmt(peer, "/s") if peer else p.get("error", "n/a"))
            lines.append(f"| {op} coordinates/s, {label} | {_fmt(ours, '/s')} ({sp(spread)}) | {peer_s} | "
                         f"{f'{ours / peer:.1f}× redis' if peer else 'n/a'} | ≥ 2 M/s | {met} |")
    lines += ["", "Sidecar memory per stored coordinate (bytes, shm): the store's own arrays (keys, metadata, hash table, "
              f"value heap; from PING) **{v['store_bytes_per_coord']:.0f} bytes**; process RSS growth after the "
              f"first load {v['rss_loaded_bytes_per_coord']:.0f} bytes, and after all rounds "
              f"{v['rss_end_bytes_per_coord']:.0f} bytes (request and reply buffers the garbage collector "
              "had not yet returned, and the reply arena's pages).", ""]
    return lines


def _engine(e: dict, sq: dict) -> list[str]:
    c, cr = e["cget"], e["crange"]
    ratio = c["store_lookups_per_s"] / c["map_lookups_per_s"]
    ours = c.get("store_rounds_per_s", [c["store_lookups_per_s"]])
    vs_map = lambda key, median_: at_least(ratio_rounds(ours, c.get(key, [median_])), 3,  # noqa: E731
                                           lambda lo, hi: f"{lo:.1f}–{hi:.1f}× over the rounds")
    lines = [
        f"## Engine-side batched CGET, one thread ({c['n']:,} stored, lookups in shuffled order)",
        "Peers, built from the same Uint32Array rows and gathering the same value bytes: a JS `Map` keyed by the "
        "coordinate string (the naive peer: one string built per lookup), and a `Map` keyed by a 32-bit FNV-1a hash of "
        "the nine components with the keys of each bucket compared component by component (no string per lookup). "
        "Median of the rounds.",
        "", HEAD,
        _row("lookups/s vs string-keyed Map", _fmt(c["store_lookups_per_s"], "/s"), _fmt(c["map_lookups_per_s"], "/s"),
             f"{ratio:.1f}× Map", "≥ 3× Map", vs_map("map_rounds_per_s", c["map_lookups_per_s"])),
    ]
    if "hashed_map_lookups_per_s" in c:
        h = c["hashed_map_lookups_per_s"]
        lines.append(_row("lookups/s vs hash-keyed Map", _fmt(c["store_lookups_per_s"], "/s"), _fmt(h, "/s"),
                          f"{c['store_lookups_per_s'] / h:.1f}× Map", "≥ 3× Map", vs_map("hashed_map_rounds_per_s", h)))
    lines += [
        "",
        f"## CRANGE with a leading wildcard (`*.*.*/k.*.*/*.*.*`) over {cr['n']:,} coordinates",
        "Peers: a linear scan of the same store (test every key, sort, gather — engine-side, same process), "
        "and SQLite in memory with the index a SQLite user would build for this query: the constrained column, then "
        "the rest of the ORDER BY (`SELECT … WHERE c3 = ? ORDER BY c0..c8`; query plan below, no sort step). Ours and "
        "the scan are engine-side (in-process JS, reply arrays built), median of the rounds: *warm* repeats the query, "
        "*cold* runs it right after a scan has pushed the store through the caches. SQLite is timed through Python's "
        "sqlite3 (statement stepped, every row fetched as a tuple), warm: the same query repeated — not on the engine-side "
        "basis, so it is set beside our end-to-end figure in the next table, not beside these.",
        "",
        "| rows selected | vTPU index, warm | vTPU index, cold | linear scan | ratio warm / cold (spread of cold) | SQLite via Python, warm | met (≥ 100× scan, cold) |",
        "|---|---|---|---|---|---|---|",
    ]
    for count, p in cr["patterns"].items():
        rw, rc = p["scan_us"] / p["warm_us"], p["scan_us"] / p["cold_us"]
        colds = ratio_rounds(p.get("cold_rounds_us", [p["cold_us"]]), p.get("scan_rounds_us", [p["scan_us"]]), higher_is_better=False)
        met = at_least(colds, 100, lambda lo, hi: f"{lo:.0f}–{hi:.0f}×")
        if met == "**no**" and rw >= 100:
            met = "**no** (warm only)"
        sqs = sq[count].get("rounds_us", [sq[count]["median_us"]])
        lines.append(f"| {count} | {_fmt(p['warm_us'], ' µs')} | {_fmt(p['cold_us'], ' µs')} | {_fmt(p['scan_us'], ' µs')} | "
                     f"{rw:.0f}× / {rc:.0f}× ({min(colds):.0f}–{max(colds):.0f}×) | {_fmt(sq[count]['median_us'], ' µs')} "
                     f"({_fmt(min(sqs), ' µs')}–{_fmt(max(sqs), ' µs')}) | {met} |")
    plans = sorted({v.get("plan", "") for v in sq.values()} - {""})
    first = ", ".join(f"{k}: {_fmt(v['first_query_us'] / 1000, ' ms')}" for k, v in cr["patterns"].items())
    lines += [
        "",
        f"Queries answered by the index: {cr['index_hits']}, full scans: {cr['scans']}. The index is built lazily "
        f"by the first range query after a bulk load (first query per pattern, build included: {first}). "
        f"Bulk load of {cr['n']:,} coordinates: {_fmt(cr['load_s'] * 1000, ' ms')}."
        + (f" SQLite's query plan: `{'; '.join(plans)}`." if plans else ""),
        f"Engine memory per stored coordinate (every array the store allocated — keys, metadata, hash table, "
        f"value heap, built orderings — including growth slack, `store.stats().allocatedBytes`): "
        f"**{cr['store_bytes_per_coord']:.0f} bytes**.",
        "",
    ]
    return lines


def _misses(results: dict) -> list[str]:
    """Why each missed target was missed: what the profiles taken while building this showed."""
    r, cr = results["roundtrip"], results["engine"]["crange"]  # the core suite
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
        warm = [k for k in cold if cr["patterns"][k]["scan_us"] / cr["patterns"][k]["warm_us"] >= 100]
        out.append(f"- **CRANGE, cold, {', '.join(cold)} rows.** The index finds the rows in microseconds; the "
                   "time goes to gathering them: each row's key, metadata and value sit at its insertion "
                   "position, so a cold query pays cache and TLB misses on the pages of every row "
                   "(the V8 heap gets no huge pages here). "
                   + (f"Warm, the same query meets the target ({', '.join(warm)} rows)." if warm else
                      "Warm, it missed too in this run."))
    for op, key in (("CPUT", "put_per_s"), ("CGET", "get_per_s")):
        if results["batch"]["vtpu"][key] < 2e6:
            out.append(f"- **Batched {op}.** Below 2 M/s in this run; see the round-by-round figures with "
                       "`python test/bench/bench_batch.py`.")
    return ["## Misses (core)", ""] + out + [""] if out else []


def render(r: dict) -> list[str]:
    return (_roundtrip(r["roundtrip"]) + _batch(r["batch"]) + _engine(r["engine"], r["sqlite"]) + _sqlite(r) + _misses(r))


def _sqlite(r: dict) -> list[str]:
    """CRANGE beside SQLite, both timed the same way: a call from Python returning every selected row."""
    sq, ours = r["sqlite"], r.get("crange_e2e")
    if not ours:
        return []
    plans = sorted({v.get("plan", "") for v in sq.values()} - {""})
    lines = [f"### CRANGE vs SQLite, both from Python (the same {r['engine']['crange']['n']:,} rows)",
             "vTPU: `client.crange(pattern)` over ipc, coordinates and values returned as numpy arrays. SQLite: in memory, "
             "indexed for the query (constrained column, then the rest of the ORDER BY"
             + (f"; plan `{'; '.join(plans)}`" if plans else "") + "), `execute(...).fetchall()`. Both warm (the query "
             "repeated after a first, untimed one), 16-byte values, median of the rounds; spread: fastest–slowest round.",
             "", "| rows selected | vTPU via Python | SQLite via Python | ratio | target | met |", "|---|---|---|---|---|---|"]
    for count, o in ours.items():
        s = sq[count]
        ratios = ratio_rounds(o["rounds_us"], s.get("rounds_us", [s["median_us"]]), higher_is_better=False)
        us = lambda d: f"{_fmt(d['median_us'], ' µs')} ({_fmt(min(d['rounds_us']), ' µs')}–{_fmt(max(d['rounds_us']), ' µs')})"  # noqa: E731
        lines.append(f"| {count} | {us(o)} | {us(s) if 'rounds_us' in s else _fmt(s['median_us'], ' µs')} | "
                     f"{faster(s['median_us'] / o['median_us'])} ({min(ratios):.2f}–{max(ratios):.2f}× SQLite's speed) | none | — |")
    return lines + [""]
