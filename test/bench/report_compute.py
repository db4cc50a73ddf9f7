"""BENCHMARKS.md sections of the compute suites: CMOE (`moe`), CNEAREST (`nearest`), CKG (`kg`)."""
from __future__ import annotations

from report_common import HEAD, NO_TARGET, _fmt, _row, at_least, at_most, faster, spread


def moe(m: dict) -> list[str]:
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


def nearest(r: dict) -> list[str]:
    """CNEAREST beside the strongest exact peer (scipy cKDTree, a k-d tree like ours) and the naive one (FAISS flat)."""
    e, x, f, kd = r["engine"], r["e2e"], r["faiss"], r.get("ckdtree", {"error": "not run"})
    l2 = e["metrics"]["l2"]
    pool = e["pool"]

    def peer(p: dict, which: str) -> tuple[str, float | None]:
        got = p.get(which, {}).get("queries_per_s")
        return (_fmt(got, "/s"), got) if got else (p.get("error", "n/a"), None)

    def rate_rounds(d: dict) -> list[float]:
        return [r["queries"] / t for t in d["rounds"]]

    def vs(ours: dict, p: dict, which: str, name: str) -> str:
        if which not in p:
            return "n/a"
        lo, hi = spread(rate_rounds(ours))
        plo, phi = spread(rate_rounds(p[which]))
        return f"{ours['queries_per_s'] / p[which]['queries_per_s']:.2f}× {name} ({lo / phi:.2f}–{hi / plo:.2f}×)"

    target_ok = r["n"] >= 1_000_000
    at_size = at_least(rate_rounds(l2), 40_000, lambda lo, hi: f"{_fmt(lo, '/s')}–{_fmt(hi, '/s')}") if target_ok else "n/a (N < 1 M)"
    lines = [
        f"## CNEAREST, coordinate space: exact k = {r['k']} nearest of {r['queries']:,} batched queries over {r['n']:,} stored coordinates",
        "Points follow a few coordinate layouts (small ranges in the upper components, wider below). Peers on the same "
        "points and queries, all exact: scipy `cKDTree` (a k-d tree, as ours: the strongest exact peer; float64, "
        "`workers=1` and `workers=-1`), and faiss-cpu `IndexFlatL2` (brute force, float32; FAISS's only exact index — its "
        "IVF and HNSW indexes are approximate — shown as the naive peer), one thread and all threads. Engine-side: one "
        "thread, `Engine.execute` in-process (reply tensors built), and the same batches split across the read pool's "
        "worker threads; the peers are timed in-process too. End to end: `Client.cnearest` over ipc, numpy in and out. "
        f"Median of {r['rounds']} rounds after a warm-up round; ratios carry their spread over the rounds in brackets.",
        "", HEAD,
        _row("l2 queries/s, engine-side (1 thread)", _fmt(l2["queries_per_s"], "/s"), peer(kd, "one_thread")[0] + " (cKDTree, 1 worker)",
             vs(l2, kd, "one_thread", "cKDTree"), "≥ 40 k/s at 1 M", at_size),
        _row("l2 queries/s, engine-side (1 thread)", _fmt(l2["queries_per_s"], "/s"), peer(f, "one_thread")[0] + " (FAISS flat, 1 thread)",
             vs(l2, f, "one_thread", "FAISS flat"), NO_TARGET, True),
        _row(f"l2 queries/s, engine-side, read pool ({pool['threads']} threads)", _fmt(pool["queries_per_s"], "/s"),
             peer(kd, "all_threads")[0] + " (cKDTree, all cores)", vs(pool, kd, "all_threads", "cKDTree"), NO_TARGET, True),
        _row(f"l2 queries/s, engine-side, read pool ({pool['threads']} threads)", _fmt(pool["queries_per_s"], "/s"),
             peer(f, "all_threads")[0] + " (FAISS flat, all threads)", vs(pool, f, "all_threads", "FAISS flat"), NO_TARGET, True),
        _row("l2 queries/s, end to end from Python", _fmt(x["queries_per_s"], "/s"), peer(kd, "all_threads")[0] + " (cKDTree, all cores)",
             vs(x, kd, "all_threads", "cKDTree"), NO_TARGET, True),
        _row("l1 queries/s, engine-side", _fmt(e["metrics"]["l1"]["queries_per_s"], "/s"), "—", "—", NO_TARGET, True),
        _row("hier queries/s, engine-side", _fmt(e["metrics"]["hier"]["queries_per_s"], "/s"), "—", "—", NO_TARGET, True),
        "",
        f"Index builds: our k-d tree is built lazily by the first query after a load, {_fmt(e['first_query_s'] * 1000, ' ms')} "
        f"for {r['n']:,} coordinates (engine-side, first query included)"
        + (f"; `cKDTree` construction {_fmt(kd['build_s'] * 1000, ' ms')}" if "build_s" in kd else "")
        + ". Exactness: the k distances per query equal "
        + " and ".join(f"{name}'s on {r[key] * 100:.1f}%" for name, key in (("FAISS", "agree_with_faiss"), ("cKDTree", "agree_with_ckdtree"))
                       if key in r)
        + " of the queries (tie order may differ; ours is coordinate order).",
        "",
    ]
    if "one_thread" in kd and kd["one_thread"]["queries_per_s"] > l2["queries_per_s"]:
        lines += [f"**Behind the strongest peer:** cKDTree answers {kd['one_thread']['queries_per_s'] / l2['queries_per_s']:.1f}× "
                  "as many queries per thread as our k-d tree (C++ against plain JS over typed arrays, one query at a time).", ""]
    return lines


def kg(k: dict) -> list[str]:
    v, x = k["vtpu"], k["networkx"]
    same = x["full_graph"]  # else networkx ran the path query on a smaller graph: no ratio
    peer = "networkx (same process, MultiDiGraph keyed by relation"
    peer += ", the same graph)" if x["full_graph"] else f", only the first {x['edges']:,} edges: the full graph would not fit in memory)"
    lines = [
        f"## CKG knowledge-graph traversal ({k['entities']:,} entities, {k['edges']:,} relations)",
        f"Peers: {peer}" + ("; and scipy's sparse matrices, compiled (second part of the table)" if k.get("csgraph") else "")
        + f". A {len(k['path'])}-hop relation path ({' → '.join(map(str, k['path']))}) from a batch of {k['starts']} starts "
        f"({k['path_ends']:,} ends), and a full BFS of a " + (f"{k['tree_nodes']:,}-node " if "tree_nodes" in k else "")
        + "dependency tree stored in the same graph. *Engine-side* is "
        "the op's own `elapsed_us` (traversal and reply rows; not Arrow encoding or the socket); *end to end* is the Python "
        f"call. Median of {k['rounds']} rounds × {k['reps']} calls after a warm-up round, for both.",
        "", HEAD,
        _row("tree BFS, engine-side", _fmt(v["tree_engine_us"], " µs"), _fmt(x["tree_us"], " µs"),
             f"{x['tree_us'] / max(v['tree_engine_us'], 1):.1f}× faster", "< 1 ms",
             at_most(v.get("tree_engine_spread_us", [v["tree_engine_us"]]), 999.999, lambda lo, hi: f"{_fmt(lo, ' µs')}–{_fmt(hi, ' µs')}")),
        _row("tree BFS, end to end", _fmt(v["tree_e2e_us"], " µs"), _fmt(x["tree_us"], " µs"),
             f"{x['tree_us'] / v['tree_e2e_us']:.2f}× networkx speed", "reported", True),
        _row(f"{len(k['path'])}-hop path × starts, engine-side", _fmt(v["path_engine_us"], " µs"), _fmt(x["path_us"], " µs"),
             f"{x['path_us'] / max(v['path_engine_us'], 1):.1f}× faster" if same else "n/a (other graph)", "reported", True),
        _row(f"{len(k['path'])}-hop path × starts, end to end", _fmt(v["path_e2e_us"], " µs"), _fmt(x["path_us"], " µs"),
             f"{x['path_us'] / v['path_e2e_us']:.2f}× networkx speed" if same else "n/a (other graph)", "reported", True),
    ]
    c = k.get("csgraph")
    if c:
        lines += [
            _row("tree BFS, engine-side", _fmt(v["tree_engine_us"], " µs"), _fmt(c["tree_us"], " µs") + " (scipy csgraph)",
                 faster(c["tree_us"] / max(v["tree_engine_us"], 1)), NO_TARGET, True),
            _row(f"{len(k['path'])}-hop path × starts, engine-side", _fmt(v["path_engine_us"], " µs"),
                 _fmt(c["path_us"], " µs") + " (scipy sparse)", faster(c["path_us"] / max(v["path_engine_us"], 1)), NO_TARGET, True),
            _row(f"{len(k['path'])}-hop path × starts, end to end", _fmt(v["path_e2e_us"], " µs"),
                 _fmt(c["path_us"], " µs") + " (scipy sparse)", faster(c["path_us"] / v["path_e2e_us"]), NO_TARGET, True),
            "",
            "The compiled peer (scipy, same process, same answers checked): one CSR matrix per relation, built once in "
            f"{_fmt(c['build_s'] * 1000, ' ms')}; the path as successive sparse products from the starts' indicator rows, "
            "the tree as `csgraph.breadth_first_order`.",
        ]
    lines += [
        "",
        f"End to end includes the fixed cost of a round trip (a `PING` took {_fmt(k['ping_us'], ' µs')} in this run) and "
        "the Arrow encoding of the reply on both sides"
        + ("; that fixed cost is why networkx, working in process, is faster end to end on the tree."
           if v["tree_e2e_us"] > x["tree_us"] else "."),
        "",
        f"Load: batched `kg_put` of {k['edges']:,} edges in {_fmt(k['load_s'] * 1000, ' ms')} "
        f"({_fmt(k['edges'] / k['load_s'], '/s')}); the first CKG after it builds the adjacency (CSR) in "
        f"{_fmt(k['build_us'] / 1000, ' ms')} (networkx graph build: {_fmt(x['build_s'] * 1000, ' ms')}). After a write "
        f"the next CKG updates it in place: appending {k['update'].get('edges_per_write', '?')} edges (as many new entities) cost "
        f"{_fmt(k['update']['append_us'], ' µs')}, deleting them {_fmt(k['update']['delete_us'], ' µs')} engine-side "
        f"(the tree BFS right after an append: {_fmt(k['update']['query_after_write_us'], ' µs')}, update included). "
        "Engine memory: store arrays "
        f"{k['store']['allocated_bytes'] / k['edges']:.0f} bytes per edge (`PING`), sidecar RSS growth "
        f"{k['rss_bytes_per_edge']:.0f} bytes per edge (store plus adjacency).",
        "",
    ]
    if v["tree_engine_us"] >= 1000:
        lines += [f"**Miss:** the tree BFS took {_fmt(v['tree_engine_us'], ' µs')} engine-side at the median in this run; "
                  "see `python test/bench/bench_kg.py`.", ""]
    return lines


