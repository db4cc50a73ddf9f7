"""attn_implementation="vtpu_sparse" on a small Qwen3: exact when dense, the sparse rule when windowed,
generate() with a KV cache, left-padded batches, gradients through the model."""

from __future__ import annotations

import copy
from typing import Any, Iterator

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import vtpu  # noqa: E402
import vtpu.integrations as vi  # noqa: E402
from vtpu.integrations import transformers as vt  # noqa: E402
from vtpu.integrations.masks import dense_attention, key_spans, span_mask  # noqa: E402

from transformers import AttentionInterface, Qwen3Config, Qwen3ForCausalLM  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface  # noqa: E402

REF = "vtpu_test_dense_reference"


def reference_attention(module: Any, q, k, v, mask, dropout=0.0, scaling=None, **kw: Any):
    """CATTEND's rule computed in torch (registered as the comparison implementation)."""
    starts, n = key_spans(mask, q.shape[2], k.shape[2], True)
    window, g = vt.settings(module.config)
    m = span_mask(starts, n, q.shape[2], k.shape[2], window=window, global_tokens=g)[:, None]
    return dense_attention(q, k, v, m, scaling).transpose(1, 2).contiguous(), None


@pytest.fixture(scope="module")
def vc(sidecar: vtpu.Sidecar) -> Iterator[vtpu.Client]:
    c = vtpu.connect(sidecar.address, timeout=30)
    vi.set_default_client(c)
    AttentionInterface.register(REF, reference_attention)
    AttentionMaskInterface.register(REF, vt.vtpu_sparse_mask)
    try:
        yield c
    finally:
        vi.set_default_client(None)
        c.close()


def models(*impls: str) -> list[Qwen3ForCausalLM]:
    """The same seeded small Qwen3 under each attention implementation."""
    cfg = Qwen3Config(
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, vocab_size=1000, max_position_embeddings=256,
    )
    torch.manual_seed(0)
    base = Qwen3ForCausalLM(cfg).eval()
    out = []
    for impl in impls:
        m = Qwen3ForCausalLM._from_config(copy.deepcopy(cfg), attn_implementation=impl).eval()  # own config each
        m.load_state_dict(base.state_dict())
        assert m.config._attn_implementation == impl
        out.append(m)
    assert len({id(m.config) for m in out}) == len(out)
    return out


IDS = torch.randint(0, 1000, (2, 14), generator=torch.Generator().manual_seed(1))


def test_dense_matches_eager(vc: vtpu.Client) -> None:
    eager, ours = models("eager", vt.NAME)
    with torch.no_grad():
        a, b = eager(IDS).logits, ours(IDS).logits
        c = ours(IDS, attention_mask=torch.ones_like(IDS)).logits  # an all-ones mask is plain causal
    assert float((a - b).abs().max()) <= 1e-4
    assert float((a - c).abs().max()) <= 1e-4


def test_window_and_globals_match_the_sparse_reference(vc: vtpu.Client) -> None:
    ref, ours, eager = models(REF, vt.NAME, "eager")
    for m in (ref, ours):
        vt.configure(m, window=4, global_tokens=[0, 9])
    with torch.no_grad():
        a, b, dense = ref(IDS).logits, ours(IDS).logits, eager(IDS).logits
    assert float((a - b).abs().max()) <= 1e-4
    assert float((dense - b).abs().max()) > 1e-3  # the window really changed the attention


@pytest.mark.parametrize("window", [None, 5])
def test_generate_with_kv_cache(vc: vtpu.Client, window) -> None:
    ref, ours = models(REF if window else "eager", vt.NAME)
    for m in (ref, ours):
        vt.configure(m, window=window, global_tokens=[0] if window else [])
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        want = ref.generate(IDS[:, :8], **kw)
        got = ours.generate(IDS[:, :8], **kw)  # decode steps: Sq = 1 over the whole cache
        static = ours.generate(IDS[:1, :8], cache_implementation="static", **kw)  # empty slots cut off
    assert got.shape == (2, 14) and torch.equal(got, want)
    assert torch.equal(static, want[:1])


@pytest.mark.parametrize("window", [None, 5])
def test_generate_with_the_kv_cache_in_vtpu(vc: vtpu.Client, window, monkeypatch: pytest.MonkeyPatch) -> None:
    ref, ours = models(REF if window else "eager", vt.NAME)
    for m in (ref, ours):
        vt.configure(m, window=window, global_tokens=[0] if window else [])
    base = 4000 + (window or 0)  # cache layers no other test uses
    vt.configure(ours, window=window, global_tokens=[0] if window else [], kv_layer=base)
    calls: list[Any] = []
    real = vc.cattend
    monkeypatch.setattr(vc, "cattend", lambda q, *a, **kw: calls.append((tuple(q.shape), kw.get("kv_length"))) or real(q, *a, **kw))
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        want, got = ref.generate(IDS[:, :8], **kw), ours.generate(IDS[:, :8], **kw)
    assert torch.equal(got, want)
    assert calls[0] == ((2, 4, 8, 16), 8) and calls[-1] == ((2, 4, 1, 16), 13)  # decode reads 13 cached positions
    rows = vc.crange(f"{base}.*.*/*.*.*/*.*.*", values=False).coords
    assert len(rows) == 2 * 2 * 2 * 13  # keys and values x batch x kv heads x positions 0..12
    ours.train()
    loss = ours(IDS, labels=IDS).loss  # with autograd the keys travel with the call: gradients work
    loss.backward()
    assert ours.model.layers[0].self_attn.q_proj.weight.grad is not None


def left_padded(ids: torch.Tensor, pads: list[int], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` with row ``b``'s first ``pads[b]`` tokens replaced by padding, and the mask."""
    ids, mask = ids.clone(), torch.ones_like(ids)
    for b, p in enumerate(pads):
        ids[b, :p], mask[b, :p] = pad_id, 0
    return ids, mask


def test_left_padded_batch_matches_transformers(vc: vtpu.Client) -> None:
    eager, ours = models("eager", vt.NAME)
    ids, mask = left_padded(IDS, [3, 0])
    with torch.no_grad():
        a, b = eager(ids, attention_mask=mask).logits, ours(ids, attention_mask=mask).logits
    real = mask.bool()
    assert float((a - b)[real].abs().max()) <= 1e-4  # padded positions are garbage in both
    right = mask.flip(-1)
    with torch.no_grad(), pytest.raises(ValueError, match="left padding only"):
        ours(ids.flip(-1), attention_mask=right)


@pytest.mark.parametrize("window", [None, 5])
def test_padded_generate_with_dynamic_and_static_caches(vc: vtpu.Client, window) -> None:
    ref, ours = models(REF if window else "eager", vt.NAME)
    for m in (ref, ours):
        vt.configure(m, window=window, global_tokens=[0] if window else [])
    ids, mask = left_padded(IDS[:, :9], [4, 0])
    kw = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        want = ref.generate(ids, **kw)
        got = ours.generate(ids, **kw)
        static = ours.generate(ids, cache_implementation="static", **kw)
        alone = ours.generate(ids[:1, 4:], max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert got.shape == (2, 15) and torch.equal(got, want) and torch.equal(static, want)
    assert torch.equal(alone, got[:1, 4:])  # positions, window and global token 0 count from the row's first token


def test_padding_with_the_kv_cache_in_vtpu_is_refused(vc: vtpu.Client) -> None:
    (ours,) = models(vt.NAME)
    vt.configure(ours, kv_layer=4100)
    ids, mask = left_padded(IDS, [3, 0])
    with torch.no_grad(), pytest.raises(ValueError, match="kv_layer"):
        ours(ids, attention_mask=mask)


def test_padded_gradients_match_eager(vc: vtpu.Client) -> None:
    eager, ours = models("eager", vt.NAME)
    ids, mask = left_padded(IDS, [5, 0])
    labels = ids.masked_fill(mask == 0, -100)
    labels[0, 5] = -100  # the logit predicting it sits on padding (garbage in both)
    for m in (eager, ours):
        m.train()
        m(ids, attention_mask=mask, labels=labels).loss.backward()
    for (name, a), (_, b) in zip(eager.named_parameters(), ours.named_parameters()):
        scale = max(float(a.grad.abs().max()), 1e-12)
        assert float((a.grad - b.grad).abs().max()) / scale <= 1e-3, name


def test_transformers_sliding_window_is_refused(vc: vtpu.Client) -> None:
    cfg = Qwen3Config(
        num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1,
        head_dim=16, vocab_size=100, use_sliding_window=True, sliding_window=4, max_window_layers=0,
    )
    m = Qwen3ForCausalLM._from_config(cfg, attn_implementation=vt.NAME).eval()
    with torch.no_grad(), pytest.raises(ValueError, match="configure"):
        m(IDS[:, :6] % 100)


def test_gradients_through_the_model_match_eager(vc: vtpu.Client) -> None:
    eager, ours = models("eager", vt.NAME)
    for m in (eager, ours):
        m.train()
        m(IDS, labels=IDS).loss.backward()
    for (name, a), (_, b) in zip(eager.named_parameters(), ours.named_parameters()):
        scale = max(float(a.grad.abs().max()), 1e-12)
        assert float((a.grad - b.grad).abs().max()) / scale <= 1e-3, name


def tiny_qwen3_moe(impl: str, norm: bool) -> Any:
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    cfg = Qwen3MoeConfig(
        num_hidden_layers=2, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_experts=4,
        num_experts_per_tok=2, norm_topk_prob=norm, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        vocab_size=1000, output_router_logits=True, router_aux_loss_coef=0.01,
    )
    torch.manual_seed(0)
    return Qwen3MoeForCausalLM._from_config(cfg, attn_implementation=impl)


@pytest.mark.parametrize("norm", [False, True])
def test_qwen3_moe_attention_and_routing_through_vtpu(vc: vtpu.Client, norm: bool) -> None:
    from vtpu.integrations.qwen3_moe import use_vtpu_routing

    eager, ours = tiny_qwen3_moe("eager", norm), tiny_qwen3_moe(vt.NAME, norm)
    ours.load_state_dict(eager.state_dict())
    assert use_vtpu_routing(ours) == 2
    assert use_vtpu_routing(torch.nn.Linear(2, 2)) == 0
    outs = []
    for m in (eager, ours):
        m.train()
        out = m(IDS, labels=IDS)
        out.loss.backward()  # includes the router aux loss (output_router_logits)
        outs.append(out)
    assert float(ours.model.layers[0].mlp.gate.weight.detach().std()) > 0  # random router: no tied probabilities
    assert float((outs[0].logits - outs[1].logits).detach().abs().max()) <= 1e-4
    assert abs(outs[0].aux_loss.item() - outs[1].aux_loss.item()) <= 1e-5
    for (name, a), (_, b) in zip(eager.named_parameters(), ours.named_parameters()):
        scale = max(float(a.grad.abs().max()), 1e-12)
        assert float((a.grad - b.grad).abs().max()) / scale <= 1e-3, name
    assert float(ours.model.layers[0].mlp.gate.weight.grad.abs().sum()) > 0  # the router trains
