"""The benchmark report's verdict rules (test/bench/report_common.py) and the seeds' claims
table (report_claims.py), on hand-made results: no benchmark runs here."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import report_claims  # noqa: E402
from report_common import _row, at_least, at_most, faster, ratio_rounds  # noqa: E402


def test_row_without_a_target_has_no_verdict():
    row = _row("p99", "1 ms", "2 ms", "0.5×", "reported", True)
    assert row.endswith("| none | — |")
    assert "yes" not in row


def test_row_with_a_target_keeps_its_verdict():
    assert _row("p50", "1", "2", "x", "≤ 1.3×", True).endswith("| ≤ 1.3× | yes |")
    assert _row("p50", "1", "2", "x", "≤ 1.3×", False).endswith("| **no** |")
    assert _row("p50", "1", "2", "x", "≤ 1.3×", "within noise (a–b)").endswith("| within noise (a–b) |")


def test_spread_straddling_the_target_is_within_noise_with_the_spread_printed():
    assert at_least([2.5, 3.5], 3) == "within noise (2.50–3.50)"
    assert at_most([0.02, 0.04], 0.03) == "within noise (0.02–0.04)"


def test_whole_spread_on_one_side_decides():
    assert at_least([3.1, 9], 3) == "yes"
    assert at_least([1, 2.9], 3) == "**no**"
    assert at_most([0.01, 0.02], 0.03) == "yes"
    assert at_most([0.05, 0.07], 0.03) == "**no**"


def test_ratio_spread_pairs_the_extreme_rounds():
    # ours 2..4 per second, peer 1..2: the ratio can be anywhere from 1 to 4
    assert sorted(ratio_rounds([2, 3, 4], [1, 2])) == [1, 2, 2, 4]
    # times: peer time / ours
    assert max(ratio_rounds([1, 2], [4, 8], higher_is_better=False)) == 8


def test_faster_says_slower_below_one():
    assert faster(2) == "2.00× faster"
    assert faster(0.5) == "2.00× slower"


def _attend(ours_s, sdpa_s, flex_s):
    return {"prefill": [{"s": 8192, "ours_s": ours_s, "sdpa_s": sdpa_s, "flex_s": flex_s}]}


def test_sparse_attention_claim_is_judged_against_the_strongest_peer():
    assert report_claims._sparse_attention(_attend(1, 20, 11))[2] == "held"
    assert report_claims._sparse_attention(_attend(1, 20, 3))[2] == "partly held"
    # 9× dense SDPA does not hold when compiled flex_attention is faster than ours
    verdict, why = report_claims._sparse_attention(_attend(1.7, 15.3, 0.5))[2:]
    assert verdict == "refuted" and "9.0× dense masked SDPA" in why


def test_qwen3_claim_uses_the_fastest_transformers_variant():
    r = {"variants": {"torch": {"prefill_tps": 100, "decode_tps": 10},
                      "torch-eager": {"prefill_tps": 300, "decode_tps": 12},
                      "fp32": {"prefill_tps": 250, "decode_tps": 11}}}
    ours, peer, verdict, why = report_claims._qwen3(r)
    assert verdict == "refuted" and "torch-eager" in peer and "0.83×" in why


def test_claims_table_says_which_suites_did_not_run():
    lines = report_claims.render({})
    assert len([line for line in lines if "not judged" in line]) == len(report_claims.CLAIMS)


def test_incomplete_result_is_shown_not_raised():
    lines = report_claims.render({"moe": {"torch_ms": 1.0}})
    assert any("incomplete result" in line for line in lines)


def _kg(engine_us, e2e_us, nx_us, scipy_us=None):
    k = {"path": [1, 2, 3, 4], "starts": 100, "vtpu": {"path_engine_us": engine_us, "path_e2e_us": e2e_us},
         "networkx": {"path_us": nx_us, "full_graph": True}}
    if scipy_us is not None:
        k["csgraph"] = {"path_us": scipy_us}
    return k


def test_kg_claim_is_judged_against_the_compiled_peer_when_it_ran():
    assert report_claims._kg_hops(_kg(100, 5000, 20_000))[2] == "partly held"  # 200× engine-side, 4× end to end
    assert report_claims._kg_hops(_kg(100, 100, 20_000))[2] == "held"
    verdict, why = report_claims._kg_hops(_kg(280, 1750, 4000, 126))[2:]
    assert verdict == "refuted" and "scipy sparse is faster" in why


def _qwen3_run(name: str, prefill: float, decode: float, **more) -> dict:
    return {"variant": name, "prefill_tps": prefill, "decode_tps": decode, "prefill_tps_rounds": [prefill], "decode_tps_rounds": [decode],
            "decode_ms_per_token": 1000 / decode, "tokens": [1, 2], "peak_rss_bytes": 2**30, "inference_peak_rss_bytes": 2**30, **more}


def _qwen3_text(vs: dict) -> str:
    """The qwen3 suite's section for these variants (4 layers, one round)."""
    import report_qwen3

    cfg = {"layers": 4, "prompt": 512, "decode": 32, "rounds": 1, "threads": 2}
    return "\n".join(report_qwen3.render({"config": cfg, "variants": vs}))


def test_qwen3_report_splits_a_decode_token_into_its_parts_and_cores():
    parts = lambda e, a, h, cpu: dict(experts_ms_per_token=e, attention_ms_per_token=a, lm_head_ms_per_token=h, cpu_ms_per_token=cpu)  # noqa: E731
    vs = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", **parts(40, 20, 30, {"python_main": 90, "python_other": 30})),
          "fp32": _qwen3_run("fp32", 120, 9.5, sidecar_rss_bytes=2**30, compute_ms_per_token=20, transport_ms_per_token=5,
                             **parts(25, 24, 33, {"python_main": 70, "python_other": 5, "sidecar": 45}))}
    text = _qwen3_text(vs)
    # step 100 ms = 40 + 20 + 30 + rest 10; cores busy (90 + 30) / 100
    assert "| torch | 100.0 | 40.0 | 20.0 | 30.0 | 10.0 | 90.0 | 30.0 | – | 1.20 |" in text
    assert "| fp32 | 105.3 | 25.0 | 24.0 | 33.0 | 23.3 | 70.0 | 5.0 | 45.0 | 1.14 |" in text
    # a decode miss is explained part by part, not "not measured apart"
    assert "attention 24.00 vs 20.00 ms, lm_head 33.00 vs 30.00 ms" in text
    assert "not measured apart" not in text
    # results without the parts (older runs) get no table
    assert "cores busy" not in _qwen3_text({"torch": _qwen3_run("torch", 100, 10, experts_ms_per_token=40),
                                            "fp32": _qwen3_run("fp32", 120, 10.5, experts_ms_per_token=25)})


def test_qwen3_report_says_what_fp32_head_adds_is_the_lm_head_and_gives_it_no_transport():
    parts = lambda e, h: dict(experts_ms_per_token=e, attention_ms_per_token=20, lm_head_ms_per_token=h, cpu_ms_per_token={"python_main": 50})  # noqa: E731
    vs = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", **parts(40, 30)),
          "fp32": _qwen3_run("fp32", 120, 10, compute_ms_per_token=20, transport_ms_per_token=5, **parts(25, 45)),
          "fp32-head": _qwen3_run("fp32-head", 120, 12.5, compute_ms_per_token=20, sidecar_ms_per_token=None,
                                  transport_ms_per_token=None, **parts(25, 25))}
    text = _qwen3_text(vs)
    assert ("fp32-head is fp32 with the lm_head's product in the sidecar as well (`vq.hook(..., lm_head=True)`): 1.25× "
            "transformers grouped_mm in decode against fp32's 1.00×") in text
    assert "The difference is the lm_head's product, not the experts: lm_head 25.00 ms per token from Python against 45.00 ms in fp32 and 30.00 ms" in text
    assert "| fp32-head | 80.00 | 25.00 | – | 20.00 | – |" in text  # its doorbell time is not the experts' alone
    assert "decode tokens/s, fp32-head experts" in text and "≥ 1× (must)" in text
    assert "fp32-head is" not in _qwen3_text({k: v for k, v in vs.items() if k != "fp32-head"})


def test_qwen3_report_says_what_q4_proj_adds_to_q4_head_and_judges_it_against_llama_f32_dense():
    parts = lambda e, a, h: dict(experts_ms_per_token=e, attention_ms_per_token=a, lm_head_ms_per_token=h, cpu_ms_per_token={"python_main": 50})  # noqa: E731
    vs = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", **parts(40, 20, 30)),
          "q4-head": _qwen3_run("q4-head", 150, 19, sidecar_ms_per_token=None, transport_ms_per_token=None, **parts(5, 20, 20)),
          "q4-proj": _qwen3_run("q4-proj", 160, 22, sidecar_ms_per_token=None, transport_ms_per_token=None, **parts(5, 12, 20)),
          "llama.cpp-Q4_0": _qwen3_run("llama.cpp-Q4_0", 200, 20, experts_implementation="llama.cpp Q4_0")}
    text = _qwen3_text(vs)
    assert ("q4-proj is q4-head with every attention projection in the sidecar as well (`vq.hook(..., lm_head=True, projections=True)`): "
            "2.20× transformers grouped_mm in decode against q4-head's 1.90×") in text
    assert "not the experts: attention 12.00 ms per token from Python against 20.00 ms in q4-head and 20.00 ms in transformers grouped_mm" in text
    assert "| decode tokens/s, q4-proj experts | 22.00/s | 10.00/s (transformers grouped_mm) | 2.20× (2.20–2.20) | ≥ 2× (target) | yes |" in text
    assert "| decode tokens/s, q4-proj experts vs llama.cpp-Q4_0 | 22.00/s | 20.00/s | 1.10× (1.10–1.10) |" in text


def test_qwen3_report_explains_a_miss_and_a_caveat_against_the_decode_peer_not_the_default_run():
    miss = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", experts_ms_per_token=40),
            "torch-eager": _qwen3_run("torch-eager", 90, 12.5, experts_implementation="eager", experts_ms_per_token=30),
            "fp32": _qwen3_run("fp32", 120, 11, experts_ms_per_token=25, compute_ms_per_token=20, transport_ms_per_token=5)}
    text = _qwen3_text(miss)
    # 11/s misses against eager's 12.5/s (it beats the default run's 10/s): eager's step is what explains it
    assert "Why: in the decode peer (transformers eager) the experts take 30.00 of 80.00 ms per decode token (38%)" in text
    assert "against 30.00 ms for that peer's on the same cores" in text and "40.00 of 100.00" not in text
    # faster than the peer while its experts were slower: said to be parity, against that peer
    caveat = {**miss, "fp32": _qwen3_run("fp32", 120, 13, experts_ms_per_token=35)}
    assert "Caveat: fp32 decode reaches 1.04× transformers eager only through the rest of the step" in _qwen3_text(caveat)


def test_qwen3_report_names_every_peer_and_judges_q4_against_llama_cpp():
    vs = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", experts_ms_per_token=50),
          "torch-eager": _qwen3_run("torch-eager", 120, 12, experts_implementation="eager", experts_ms_per_token=40,
                                    prefill_ratio=1.2, decode_ratio=1.2),
          "torch-deepgemm": {"error": "RuntimeError: needs CUDA"},
          "q4": _qwen3_run("q4", 150, 30, experts_ms_per_token=5, sidecar_rss_bytes=2**30),
          "q4-head": _qwen3_run("q4-head", 150, 38, experts_ms_per_token=5, sidecar_rss_bytes=2**30),
          "llama.cpp-Q4_0": _qwen3_run("llama.cpp-Q4_0", 300, 40, experts_implementation="llama.cpp Q4_0")}
    text = _qwen3_text(vs)
    # both hybrids of llama.cpp Q4_0's precision (F32 dense matrices) are judged against it
    assert "| decode tokens/s, q4-head experts vs llama.cpp-Q4_0 | 38.00/s | 40.00/s | 0.95× (0.95–0.95) | ≥ 0.5× (target) | yes |" in text
    assert "(`grouped_mm`, `eager`; default `grouped_mm`)" in text
    assert "did not run on this CPU: `deepgemm` (RuntimeError: needs CUDA)" in text
    assert "| decode tokens/s, q4 experts vs llama.cpp-Q4_0 | 30.00/s | 40.00/s | 0.75× (0.75–0.75) | ≥ 0.5× (target) | yes |" in text
    assert "| decode tokens/s, q4 experts | 30.00/s | 12.00/s (transformers eager)" in text  # the fastest transformers peer
    assert report_claims._qwen3({"variants": vs})[0].endswith("(q4-head)")  # llama.cpp is a peer, not ours


def test_qwen3_report_takes_the_fastest_openmp_wait_of_transformers_as_the_peer():
    vs = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", experts_ms_per_token=50),
          "torch+spin": _qwen3_run("torch+spin", 110, 9, experts_implementation="grouped_mm", experts_ms_per_token=50,
                                   prefill_ratio=1.1, decode_ratio=0.9),
          "torch-eager+passive": _qwen3_run("torch-eager+passive", 90, 10.2, experts_implementation="eager", experts_ms_per_token=50,
                                            prefill_ratio=0.9, decode_ratio=1.02),
          "fp32": _qwen3_run("fp32", 120, 10.5, experts_ms_per_token=40, sidecar_rss_bytes=2**30)}
    text = _qwen3_text(vs)
    assert "default `grouped_mm`), each with OpenMP's idle threads spinning briefly (`GOMP_SPINCOUNT=10000`" in text
    assert "| prefill tokens/s, transformers grouped_mm (OpenMP spinning) experts (peer) | 110/s | 100/s (transformers grouped_mm) |" in text
    # prefill: libgomp's default spin is the fastest peer; decode: the passive eager run
    assert "| prefill tokens/s, fp32 experts | 120/s | 110/s (transformers grouped_mm (OpenMP spinning)) |" in text
    assert "| decode tokens/s, fp32 experts | 10.50/s | 10.20/s (transformers eager (OpenMP passive)) |" in text
    assert "prefill 110 tok/s (transformers grouped_mm (OpenMP spinning))" in report_claims._qwen3({"variants": vs})[1]


def test_each_variant_runs_with_its_openmp_wait():
    import bench_qwen3

    from vtpu.integrations import SHORT_SPIN

    assert bench_qwen3.child_env("fp32")["GOMP_SPINCOUNT"] == SHORT_SPIN and "OMP_WAIT_POLICY" not in bench_qwen3.child_env("fp32")
    assert bench_qwen3.child_env("torch-eager+passive")["OMP_WAIT_POLICY"] == "PASSIVE"
    spin = bench_qwen3.child_env("torch+spin")
    assert "GOMP_SPINCOUNT" not in spin and "OMP_WAIT_POLICY" not in spin


def test_qwen3_report_int8_dense_variant_meets_its_matched_peers():
    vs = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", experts_ms_per_token=5),
          "int8dense-torch": _qwen3_run("int8dense-torch", 150, 15, experts_implementation="grouped_mm", experts_ms_per_token=5,
                                        prefill_ratio=1.5, decode_ratio=1.5),
          "q4-int8dense": _qwen3_run("q4-int8dense", 200, 21, experts_ms_per_token=2, sidecar_rss_bytes=2**30),
          "llama.cpp-Q4_0-denseQ8_0": _qwen3_run("llama.cpp-Q4_0-denseQ8_0", 300, 60, experts_implementation="llama.cpp Q4_0, dense Q8_0")}
    text = _qwen3_text(vs)
    # the target is against fp32 transformers (int8dense-torch is not "the fastest transformers variant")...
    assert "| decode tokens/s, q4-int8dense experts | 21.00/s | 10.00/s (transformers grouped_mm) | 2.10× (2.10–2.10) | ≥ 2× (target) | yes |" in text
    # ...and the matched peers are shown beside it
    assert "| decode tokens/s, q4-int8dense vs transformers grouped_mm experts + int8 dense | 21.00/s | 15.00/s | 1.40× (1.40–1.40) |" in text
    assert "| decode tokens/s, transformers grouped_mm experts + int8 dense (peer) | 15.00/s | 10.00/s (fp32 dense) |" in text
    assert "| decode tokens/s, q4-int8dense experts vs llama.cpp-Q4_0-denseQ8_0 | 21.00/s | 60.00/s | 0.35× (0.35–0.35) | ≥ 0.5× (target) | **no** |" in text
    ours, peer, verdict, _ = report_claims._qwen3({"variants": vs})
    assert ours.endswith("(q4-int8dense)") and "decode 15.00 tok/s (transformers grouped_mm + int8 dense)" in peer
    assert verdict == "partly held"  # the int8 peer counts


def test_qwen3_report_int8_dense_variants_meet_the_faster_int8_peer_in_each_phase():
    vs = {"torch": _qwen3_run("torch", 100, 10, experts_implementation="grouped_mm", experts_ms_per_token=5),
          "int8dense-torch": _qwen3_run("int8dense-torch", 150, 15, experts_implementation="grouped_mm", experts_ms_per_token=5,
                                        prefill_ratio=1.5, decode_ratio=1.5),
          "int8dense-torch-eager": _qwen3_run("int8dense-torch-eager", 120, 20, experts_implementation="eager", experts_ms_per_token=5,
                                              prefill_ratio=1.2, decode_ratio=2.0),
          "q8-int8dense": _qwen3_run("q8-int8dense", 180, 24, experts_ms_per_token=2, sidecar_rss_bytes=2**30)}
    text = _qwen3_text(vs)
    # prefill: grouped_mm's int8 run is the faster peer; decode: eager's
    assert "| prefill tokens/s, q8-int8dense vs transformers grouped_mm experts + int8 dense | 180/s | 150/s | 1.20× (1.20–1.20) |" in text
    assert "| decode tokens/s, q8-int8dense vs transformers eager experts + int8 dense | 24.00/s | 20.00/s | 1.20× (1.20–1.20) |" in text
    assert "vs transformers grouped_mm experts + int8 dense | 24.00/s" not in text
    assert "| decode tokens/s, transformers eager experts + int8 dense (peer) | 20.00/s | 10.00/s (fp32 dense) |" in text
    assert "decode 20.00 tok/s (transformers eager + int8 dense)" in report_claims._qwen3({"variants": vs})[1]


def test_qwen3_full_report_judges_each_dense_precision_against_its_own_peer():
    import report_qwen3_full

    rounds = lambda x: {"prefill_tps_rounds": [x, x], "decode_tps_rounds": [x / 4, x / 4], "prefill_tps": x, "decode_tps": x / 4}  # noqa: E731
    side = {**rounds(4.0), "tokens": [1, 2], "prompt_ids": [5] * 22, "threads": 2, "dtype": "bf16", "expert_format": "q4",
            "python_peak_rss": 4 * 2**30, "sidecar_peak_rss": 17 * 2**30, "expert_bytes_per_layer": 2**28, "sidecar_rss_per_layer": 2**28,
            "dense_bytes_per_layer": 2**25, "fixed_bytes": 2**30, "upload_s": 480.0, "projected_48_layers_bytes": 0, "deepest_fitting_layers": 48,
            "int8_dense": {**rounds(8.0), "tokens": [1, 2], "python_rss_after": 2 * 2**30, "dense_bytes_per_layer": 2**24, "fixed_bytes": 2**29,
                           "rest_dtype": "float32"}}
    peer = lambda x, dense: {**rounds(x), "tokens": [1, 2], "peak_rss_bytes": 20 * 2**30, "gguf_bytes": 2**34, "gguf_write_s": 60.0, "dense": dense}  # noqa: E731
    r = {"config": {"layers": 48, "new_tokens": 16, "rounds": 2, "overrides": {}}, "sidecar": side,
         "llama": peer(8.0, "BF16"), "llama_q8_dense": peer(12.0, "Q8_0"), "transformers": {"built": False, "error": "x"}}
    text = "\n".join(report_qwen3_full.render(r))
    assert "| decode tokens/s, q4 experts + bf16 dense vs llama.cpp Q4_0 experts, BF16 dense | 1.00/s (1.00–1.00) | 2.00/s (2.00–2.00) | 0.50× (0.50–0.50) | ≥ 0.5× (target; moonshot 1×) | yes |" in text
    assert "| decode tokens/s, q4 experts + int8 dense vs llama.cpp Q4_0 experts, Q8_0 dense | 2.00/s (2.00–2.00) | 3.00/s (3.00–3.00) | 0.67× (0.67–0.67) |" in text
    assert "| memory (Python's RSS after the run + the sidecar's peak) vs llama.cpp (Q8_0 dense, its process's peak) | 19.00 GiB | 20.00 GiB | 0.95× |" in text
    assert "Greedy tokens (Q8_0 dense pair): the same" in text and "in int8, 16 MiB a layer and 0.50 GiB fixed" in text
    assert "(`vtpu.integrations.dense_int8`; embeddings, norms and routers in float32)" in text
    del r["sidecar"]["int8_dense"]["rest_dtype"]  # an older result does not say: nor does the report
    assert "(`vtpu.integrations.dense_int8`)" in "\n".join(report_qwen3_full.render(r))
    assert "in the sidecar" not in text  # no sidecar-dense run: no such pair
    # the dense matrices in the sidecar (bf16): judged against the BF16 GGUF, its memory from its own run
    r["sidecar"]["sidecar_dense"] = {**rounds(10.0), "tokens": [1, 2], "format": "bf16", "python_rss_after": 2**30, "sidecar_peak_rss_after": 19 * 2**30}
    text = "\n".join(report_qwen3_full.render(r))
    assert "| decode tokens/s, q4 experts + bf16 dense in the sidecar vs llama.cpp Q4_0 experts, BF16 dense | 2.50/s (2.50–2.50) | 2.00/s (2.00–2.00) | 1.25× (1.25–1.25) | ≥ 0.5× (target; moonshot 1×) | yes |" in text
    assert "| memory (Python's RSS after the run + the sidecar's peak) vs llama.cpp (BF16 dense, its process's peak) | 20.00 GiB | 20.00 GiB | 1.00× |" in text
    assert "held in the sidecar instead, as bf16 dense layers" in text


def _cluster(rows_per_s: float, server_ms: float) -> dict:
    op = {"rows_per_s": rows_per_s, "rounds_rows_per_s": [rows_per_s]}
    return {
        "cores": 2,
        "scaling": {"rows": 1000, "batch": 100, "value_bytes": 256, "plain": {o: op for o in ("cput", "cget", "crange")},
                    "shards": {"1": {o: op for o in ("cput", "cget", "crange")}},
                    "server_ms": {w: server_ms for w in ("CPUT", "CGET", "CRANGE")},
                    "bytes_per_row": {w: 256.0 for w in ("CPUT", "CGET", "CRANGE")}},
        "routing": {"batch": 100, "ping_us": 0.0, "single": {"cluster_us": [100, 120], "plain_us": [100, 105]},
                    "batched": {"cluster_rows_per_s": [1e5, 1e5], "plain_rows_per_s": [1e5, 1e5]}},
        "recovery": {"scrolls": 10, "value_bytes": 256, "ours_s": 2.0, "ours_rounds_s": [2.0], "peer_s": 1.0, "peer_rounds_s": [1.0]},
        "rebalance": {"scrolls": 10, "moved_scrolls": 5, "seconds": 1.0, "bytes": 100, "whole_s": 0.5, "whole_bytes": 200},
    }


def test_cluster_model_separates_client_and_node_costs():
    import report_cluster

    # All of the 1-shard time is the sidecar's (100 rows per 10 ms = 10k rows/s): nodes add throughput.
    r = _cluster(10_000, 10.0)
    one_1, many_1 = report_cluster.model(r, "cget", "CGET", 1)
    one_6, many_6 = report_cluster.model(r, "cget", "CGET", 6)
    assert one_6 > 4 * one_1 and many_6 > 5 * many_1
    # None of it is the sidecar's: one client gains nothing from more nodes.
    r = _cluster(10_000, 0.0)
    assert report_cluster.model(r, "cget", "CGET", 60)[0] <= report_cluster.model(r, "cget", "CGET", 1)[0]
    md = "\n".join(report_cluster.render(r))
    assert "| single CGET p50 |" in md and "within noise" in md and "| batched CGET (shuffled) | 60 |" in md
