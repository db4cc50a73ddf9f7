"""The examples a user copies must run: each is executed as a script against its own sidecar."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ranch.py starts a Ray of its own: test_cluster_ray.py runs its workload on the session's Ray instead.
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.name != "ranch.py")
ARGS = {  # short runs: test_train_example checks learning, test_qwen3_* the numerics
    "train_moe.py": ["--steps", "5", "--every", "1"],
    "qwen3_30b_a3b.py": ["--layers", "2", "--max-new-tokens", "3", "--threads", "1", "--chunk-experts", "3", "--int8-dense", "also", "--sidecar-dense", "also", *(
        f"--set={kv}" for kv in ("hidden_size=64", "num_attention_heads=4", "num_key_value_heads=2", "head_dim=16",
                                  "moe_intermediate_size=32", "num_experts=8", "num_experts_per_tok=2"))],
    "qwen3_inference.py": ["--config", "tiny", "--max-new-tokens", "4", "--attention", "vtpu_sparse", "--lm-head", "sidecar", "--threads", "1", "--rounds", "2"],
}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path) -> None:
    if not (ROOT / "dist" / "bridge" / "cli.js").exists():
        pytest.skip("sidecar not built (run `make`)")
    proc = subprocess.run([sys.executable, str(script), *ARGS.get(script.name, [])], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.strip(), "an example should show what it did"
    if script.name == "qwen3_inference.py":  # says what it proves and what not
        assert "weights: RANDOM" in proc.stdout and "gibberish by design" in proc.stdout
        assert "same tokens as transformers: True" in proc.stdout
        assert "over 2 interleaved rounds, median [min-max]" in proc.stdout and "hybrid/transformers" in proc.stdout
        assert any(v in proc.stdout for v in ("faster in every round", "slower in every round", "within noise"))  # any: timing decides which
        assert "busiest/mean load" in proc.stdout
        assert "lm_head uploaded to the sidecar too" in proc.stdout  # --lm-head sidecar: the tokens above still match
    if script.name == "qwen3_30b_a3b.py":  # the full-size run's own report, at a toy shape
        assert "weights RANDOM" in proc.stdout and "NOT the real shape" in proc.stdout
        assert "experts generated into the sidecar (q4): 2 layers" in proc.stdout
        assert "tokens/s: prefill" in proc.stdout and "peak RSS: Python" in proc.stdout and "48 layers at these rates" in proc.stdout
        assert "a decode step:" in proc.stdout and "experts calls" in proc.stdout
        # --int8-dense also: measured in bf16, converted in place, measured again on the same upload;
        # --sidecar-dense also: the same seeded matrices again, moved into the sidecar in bf16, measured last
        assert proc.stdout.count("tokens/s: prefill") == 3 and "[dense bf16]" in proc.stdout and "[dense int8]" in proc.stdout
        assert "dense half converted to int8 (attention projections, lm_head; the rest float32)" in proc.stdout
        assert "attention projections and lm_head moved into the sidecar (bf16" in proc.stdout and "[dense bf16 in the sidecar]" in proc.stdout


def _run_readme_snippet(heading_pattern: str) -> str:
    """Runs the first python block after a README heading as written; returns its stdout."""
    import re

    if not (ROOT / "dist" / "bridge" / "cli.js").exists():
        pytest.skip("sidecar not built (run `make`)")
    code = re.search(heading_pattern + r".*?```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert code, f"README.md lost the example under {heading_pattern!r}"
    proc = subprocess.run([sys.executable, "-c", code.group(1)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def test_readme_example_runs() -> None:
    """The README's Python example is run as written, so the docs match behaviour."""
    assert "hello (10, 9) (4, 64)" in _run_readme_snippet(r"## Example\n")


def test_readme_torch_example_runs() -> None:
    """The README's PyTorch/transformers snippet runs as written (on the integrations' default client)."""
    pytest.importorskip("transformers")
    assert "torch.Size([1, 8]) torch.Size([2, 16, 64])" in _run_readme_snippet(r"## PyTorch and transformers\n")


def test_readme_qwen3_experts_example_runs() -> None:
    """The README's Qwen3-MoE experts snippet runs as written."""
    pytest.importorskip("transformers")
    assert "True True (4, 8)" in _run_readme_snippet(r"## Qwen3-MoE experts in the sidecar\n")
