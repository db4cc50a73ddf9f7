"""Qwen3-30B-A3B at its real shape on this machine: the sidecar's q4 experts with the dense half in
torch (``examples/qwen3_30b_a3b.py``) beside llama.cpp Q4_0 on the same weights, and what
transformers alone does when it tries.

Child processes, one after the other (the machine holds one of them at a time):

1. the example, at ``VTPU_BENCH_QWEN3_FULL_LAYERS`` layers (default 48: the whole depth): dense
   half generated in torch bf16, experts generated a chunk at a time into the sidecar as q4;
   prefill and decode tokens/s over rounds after a warm-up, peak RSS of Python and the sidecar;
   then, on the same upload, again with the attention projections and lm_head converted to
   torch's dynamic int8 (``--int8-dense also``), and once more with those matrices held in the
   sidecar in bf16 (``--sidecar-dense also``), the peer of that run being the BF16 GGUF;
2. the same seeded weights written as GGUF (``qwen3_gguf``: experts Q4_0, dense matrices BF16),
   run by llama.cpp (``llama/run.mjs``) on the example's prompt ids, same threads, same rounds;
   peak RSS of its process; then a second GGUF with the dense matrices Q8_0 (the peer of the
   int8 dense half; its expert bytes copied from the first), run the same way;
3. transformers building ``Qwen3MoeForCausalLM`` in bf16 with its address space capped at the
   machine's memory less 2 GiB (uncapped, the OOM killer would take the machine's processes):
   whether it builds, and how long it took to fail.

Usage: python test/bench/bench_qwen3_full.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import median

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "qwen3_30b_a3b.py"
LLAMA = Path(__file__).resolve().parent / "llama"
FULL = {"layers": int(os.environ.get("VTPU_BENCH_QWEN3_FULL_LAYERS", "48")), "new_tokens": 16, "rounds": 3, "overrides": {}}
#: A toy shape for bench-quick (the example's own smoke shape).
QUICK = {"layers": 2, "new_tokens": 4, "rounds": 1,
         "overrides": {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                       "moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2}}
#: Experts per generated chunk: seeds the chunks, so the GGUF writer must use the example's value.
CHUNK_EXPERTS = 8


def _config(cfg: dict):
    from vtpu.integrations import qwen3_models as qm

    return qm.moe_config("30b-a3b", num_hidden_layers=cfg["layers"], **cfg["overrides"])


def _tail(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]


def sidecar_run(cfg: dict, d: str) -> dict:
    out = Path(d) / "vtpu.json"
    args = [sys.executable, str(EXAMPLE), "--layers", str(cfg["layers"]), "--max-new-tokens", str(cfg["new_tokens"]),
            "--rounds", str(cfg["rounds"]), "--chunk-experts", str(CHUNK_EXPERTS), "--json", str(out), "--int8-dense", "also", "--sidecar-dense", "also",
            *(f"--set={k}={v}" for k, v in cfg["overrides"].items())]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=4 * 3600)
    if proc.returncode != 0:
        return {"error": _tail(proc)}
    return json.loads(out.read_text())


def _gguf(d: str, dense: str) -> Path:
    """Where this run writes its GGUF with ``dense`` matrices."""
    return Path(d) / f"qwen3moe-Q4_0-dense-{dense}.gguf"


def llama_run(cfg: dict, d: str, prompt_ids: list[int], threads: int, dense: str = "BF16", experts_from: str | None = None) -> dict:
    """GGUF written by a child process (it holds the dense half while writing), then llama.cpp.
    ``experts_from``: the dense precision of a GGUF of this run whose expert bytes the new one copies."""
    import bench_qwen3_llamacpp

    why = bench_qwen3_llamacpp.available()
    if why:
        return {"error": why}
    path = _gguf(d, dense)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--write-gguf", str(path), "--dense", dense, "--cfg", json.dumps(cfg),
                           *(["--experts-from", str(_gguf(d, experts_from))] if experts_from else [])],
                          capture_output=True, text=True, timeout=4 * 3600)
    if proc.returncode != 0:
        return {"error": f"writing the GGUF: {_tail(proc)}"}
    written_s = time.perf_counter() - t0
    args = {"model": str(path), "prompt": prompt_ids, "decode": cfg["new_tokens"], "rounds": cfg["rounds"], "threads": threads}
    proc = subprocess.run(["node", str(LLAMA / "run.mjs"), json.dumps(args)], cwd=LLAMA, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": f"node-llama-cpp: {_tail(proc)}"}
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**r, "prefill_tps": median(r["prefill_tps_rounds"]), "decode_tps": median(r["decode_tps_rounds"]),
            "gguf_bytes": path.stat().st_size, "gguf_write_s": written_s, "dense": dense,
            "implementation": f"llama.cpp Q4_0, dense {dense} (node-llama-cpp {bench_qwen3_llamacpp.version()})"}


def transformers_alone(cfg: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--transformers", "--cfg", json.dumps(cfg)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"built": False, "error": _tail(proc)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _build_capped(cfg: dict) -> dict:
    """transformers' own way: the whole model in torch (bf16, the checkpoint's dtype), address space capped."""
    import resource

    import torch
    from transformers import Qwen3MoeForCausalLM

    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    cap = total - 2 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    config = _config(cfg)
    torch.set_default_dtype(torch.bfloat16)
    t0 = time.perf_counter()
    try:
        model = Qwen3MoeForCausalLM(config)
    except (RuntimeError, MemoryError) as e:
        return {"built": False, "cap_bytes": cap, "seconds": time.perf_counter() - t0, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    n = sum(p.numel() for p in model.parameters())
    return {"built": True, "cap_bytes": cap, "seconds": time.perf_counter() - t0, "parameters": n, "bytes": n * 2}


def run(quick: bool = False) -> dict:
    cfg = QUICK if quick else FULL
    out: dict = {"config": cfg}
    with tempfile.TemporaryDirectory(prefix="vtpu-bench-full-") as d:
        out["sidecar"] = sidecar_run(cfg, d)
        s = out["sidecar"]
        if "error" not in s:
            out["llama"] = llama_run(cfg, d, s["prompt_ids"], s["threads"])
            if "int8_dense" in s:  # the peer of the int8 dense half: the same GGUF with Q8_0 dense matrices
                copied = "BF16" if "error" not in out["llama"] else None
                out["llama_q8_dense"] = llama_run(cfg, d, s["prompt_ids"], s["threads"], "Q8_0", copied)
    out["transformers"] = transformers_alone(cfg)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a toy shape (a smoke run)")
    ap.add_argument("--write-gguf", help=argparse.SUPPRESS)
    ap.add_argument("--transformers", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    ap.add_argument("--dense", default="BF16", help=argparse.SUPPRESS)
    ap.add_argument("--experts-from", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_gguf:
        import qwen3_gguf

        qwen3_gguf.write(args.write_gguf, _config(json.loads(args.cfg)), "Q4_0", dense=args.dense, chunk_experts=CHUNK_EXPERTS,
                         experts_from=args.experts_from)
        return
    if args.transformers:
        print(json.dumps(_build_capped(json.loads(args.cfg))))
        return
    print(json.dumps(run(args.quick), indent=1))


if __name__ == "__main__":
    main()
