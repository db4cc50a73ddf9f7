"""The llama.cpp variants of ``bench_qwen3`` (``llama.cpp-Q8_0``, ``llama.cpp-Q4_0``, and
``llama.cpp-Q4_0-denseQ8_0`` with its dense matrices Q8_0 too, from the same fp32 values): the same
seeded model written as GGUF (``qwen3_gguf``), run by llama.cpp through node-llama-cpp
(``llama/run.mjs``, installed by ``setup.sh``) on the same prompt ids, with the same threads.

The GGUF file is written into a temporary directory and removed afterwards; writing it is
not timed. Peak RSS is the node process's (llama.cpp runs in it, the model mmapped).
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from common import median

LLAMA = Path(__file__).resolve().parent / "llama"
VARIANTS = ("llama.cpp-Q8_0", "llama.cpp-Q4_0", "llama.cpp-Q4_0-denseQ8_0")


def available() -> str | None:
    """None when node-llama-cpp is installed, else why not."""
    if not (LLAMA / "node_modules" / "node-llama-cpp").is_dir():
        return f"node-llama-cpp is not installed in {LLAMA} (run test/bench/setup.sh)"
    return None


def version() -> str:
    return json.loads((LLAMA / "node_modules" / "node-llama-cpp" / "package.json").read_text())["version"]


def worker(variant: str, cfg: dict) -> dict:
    """One llama.cpp variant: write the GGUF, run the rounds in node, figures as ``bench_qwen3.worker`` gives them."""
    import torch

    import qwen3_gguf
    from vtpu.integrations import qwen3_models as qm

    why = available()
    if why:
        raise RuntimeError(why)
    qtype, _, dense = variant.removeprefix("llama.cpp-").partition("-dense")  # dense matrices F32 unless named
    config = qm.moe_config(cfg["config"], num_hidden_layers=cfg["layers"], **cfg.get("overrides", {}))
    prompt = torch.randint(0, config.vocab_size, (1, cfg["prompt"]), generator=torch.Generator().manual_seed(7))[0].tolist()
    with tempfile.TemporaryDirectory(prefix="vtpu-bench-gguf-") as d:
        path = qwen3_gguf.write(Path(d) / f"qwen3moe-{qtype}.gguf", config, qtype, dense=dense or "F32", dense_source="F32")
        gguf_bytes = path.stat().st_size
        args = {"model": str(path), "prompt": prompt, "decode": cfg["decode"], "rounds": cfg["rounds"], "threads": cfg["threads"]}
        proc = subprocess.run(["node", str(LLAMA / "run.mjs"), json.dumps(args)], cwd=LLAMA, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"node-llama-cpp failed: {(proc.stderr.strip().splitlines() or ['exit %d' % proc.returncode])[-1][:300]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    decode = median(r["decode_tps_rounds"])
    return {
        "variant": variant, "experts_implementation": f"llama.cpp {qtype}{f', dense {dense}' if dense else ''} (node-llama-cpp {version()})",
        "vocab": config.vocab_size, "gguf_bytes": gguf_bytes,
        "prefill_tps_rounds": r["prefill_tps_rounds"], "decode_tps_rounds": r["decode_tps_rounds"],
        "prefill_tps": median(r["prefill_tps_rounds"]), "decode_tps": decode, "decode_ms_per_token": 1000 / decode,
        "tokens": r["tokens"], "peak_rss_bytes": r["peak_rss_bytes"], "inference_peak_rss_bytes": r["peak_rss_bytes"],
    }
