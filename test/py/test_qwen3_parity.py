"""Parity with transformers on the tiny Qwen3 / Qwen3-MoE configs (seeded weights): a left-padded
batch of 2 through the hooked experts, through vtpu_sparse attention, and through both, eager and
compiled (torch.compile, fullgraph) — fp32 logits within 1e-4 at real positions, identical greedy
tokens with dynamic and static caches."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import vtpu  # noqa: E402
import vtpu.integrations as vi  # noqa: E402
import vtpu.integrations.qwen3 as vq  # noqa: E402
from vtpu.integrations import transformers as vt  # noqa: E402
from vtpu.integrations.experts import binding  # noqa: E402
from vtpu.integrations.qwen3_models import load_model  # noqa: E402

PAD = 151_643  # the tiny configs' pad token (Qwen3's)
TOL = 1e-4


@pytest.fixture(scope="module")
def pc(sidecar: vtpu.Sidecar) -> Iterator[vtpu.Client]:
    c = vtpu.connect(sidecar.address, timeout=60)
    vi.set_default_client(c)  # vtpu_sparse uses the integrations' client
    try:
        yield c
    finally:
        vi.set_default_client(None)
        c.close()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two prompts, 12 and 7 tokens, left-padded to 12."""
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 5000, (2, 12), generator=g)
    mask = torch.ones_like(ids)
    ids[1, :5], mask[1, :5] = PAD, 0
    return ids, mask


def pair(backend: str, client: vtpu.Client, layer_base: int) -> tuple[Any, Any]:
    """transformers' model and the same seeded weights through ``backend``."""
    dense = backend == "vtpu_sparse"
    ref = load_model("tiny", dense=dense)
    ours = load_model("tiny", dense=dense, attn_implementation=vt.NAME if backend != "hook" else "sdpa")
    if backend != "vtpu_sparse":
        vq.hook(ours, client, "fp32", layer_base=layer_base)
    return ref, ours


BACKENDS = {"hook": 5000, "vtpu_sparse": 0, "both": 5010}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_left_padded_batch_matches_transformers(pc: vtpu.Client, backend: str) -> None:
    ref, ours = pair(backend, pc, BACKENDS[backend])
    ids, mask = batch()
    kw = dict(attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=PAD)
    try:
        with torch.no_grad():
            a, b = ref(ids, attention_mask=mask).logits, ours(ids, attention_mask=mask).logits
            want = ref.generate(ids, **kw)
            got, static = ours.generate(ids, **kw), ours.generate(ids, cache_implementation="static", **kw)
    finally:
        if backend != "vtpu_sparse":
            vq.unhook(ours)
    assert float((a - b)[mask.bool()].abs().max()) <= TOL
    assert want.shape == (2, 20) and torch.equal(got, want) and torch.equal(static, want)
    assert len(set(want[:, 12:].flatten().tolist())) > 2  # not a degenerate stream


def test_compiled_fullgraph_matches_transformers(pc: vtpu.Client) -> None:
    """Both backends are opaque ops: dynamo traces the whole forward (no graph break), inductor
    compiles around them, a static cache keeps the shapes fixed."""
    ref, ours = pair("both", pc, 5020)
    ids, mask = batch()
    kw = dict(attention_mask=mask, max_new_tokens=3, do_sample=False, pad_token_id=PAD, cache_implementation="static")
    ours.forward = torch.compile(ours.forward, fullgraph=True, dynamic=False)  # two graphs: prefill, decode
    try:
        with torch.no_grad():
            want, got = ref.generate(ids, **kw), ours.generate(ids, **kw)
        assert torch.equal(got, want)
        assert sum(s["calls"] for s in vq.routing_stats(ours).values()) == 2 * 3  # 2 layers x (prefill + 2 decode steps)
        assert [binding(e).uploads for e in vq.expert_modules(ours).values()] == [1, 1]  # compiled calls leave the weights' stamp alone
    finally:
        vq.unhook(ours)
