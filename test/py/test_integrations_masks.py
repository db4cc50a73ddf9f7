"""vtpu.integrations without the engine: the mask rule, transformers' mask plumbing, the default client."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import vtpu  # noqa: E402
import vtpu.integrations as vi  # noqa: E402
from vtpu.integrations import transformers as vt  # noqa: E402
from vtpu.integrations.masks import dense_attention, key_spans, span_mask, sparse_mask  # noqa: E402


def rule(p: int, j: int, window, g, causal: bool) -> bool:
    """CATTEND's visibility rule, written out per pair."""
    near = window is None or (p - j < window if causal else abs(p - j) < window)
    vis = near or j in g or p in g
    return vis and j <= p if causal else vis


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("window", [None, 1, 3])
@pytest.mark.parametrize("sq,skv", [(6, 6), (2, 7), (1, 5)])
def test_sparse_mask_is_the_rule(sq: int, skv: int, window, causal: bool) -> None:
    g = {0, 4}
    m = sparse_mask(sq, skv, window=window, global_tokens=g, causal=causal)
    want = [[rule(skv - sq + i, j, window, g, causal) for j in range(skv)] for i in range(sq)]
    assert m.tolist() == want


def test_dense_attention_blind_query_is_zero() -> None:
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)
    m = torch.ones(3, 3, dtype=torch.bool)
    m[1] = False
    o = dense_attention(q, k, v, m)
    assert o.shape == (1, 2, 3, 4) and bool((o[:, :, 1] == 0).all()) and bool(o[:, :, 0].abs().sum() > 0)


def test_mask_function_skips_plain_causal_only() -> None:
    ones = torch.ones(2, 6, dtype=torch.bool)
    assert vt.vtpu_sparse_mask(2, 6, 6, attention_mask=ones) is None
    assert vt.vtpu_sparse_mask(2, 1, 6, q_offset=5, kv_offset=0) is None  # decode step
    pad = ones.clone()
    pad[0, :2] = False
    m = vt.vtpu_sparse_mask(2, 6, 6, attention_mask=pad)
    assert m is not None and m.shape == (2, 1, 6, 6)
    # a static cache: 8 slots, 3 in use, queries not at the end of the keys
    m = vt.vtpu_sparse_mask(1, 3, 8, q_offset=0, kv_offset=0)
    assert m is not None and key_spans(m, 3, 8, True) == ([0], 3)
    assert key_spans(vt.vtpu_sparse_mask(2, 6, 6, attention_mask=pad), 6, 6, True) == ([2, 0], 6)


def test_key_spans_accepts_left_padding_and_refuses_the_rest() -> None:
    assert key_spans(None, 4, 9, True) == ([0], 9)
    causal = sparse_mask(3, 5)[None, None].expand(2, 1, 3, 5)
    assert key_spans(causal, 3, 5, True) == ([0, 0], 5)
    additive = torch.zeros(1, 1, 3, 5).masked_fill(~sparse_mask(3, 5), float("-inf"))
    assert key_spans(additive, 3, 5, True) == ([0], 5)
    left = span_mask([3, 0], 5, 5, 7)[:, None]  # prefill: row 0 padded by 3, two empty cache slots
    assert key_spans(left, 5, 7, True) == ([3, 0], 5)
    assert not bool(left[0, 0, :3].any()) and bool(left[0, 0, 3:, 3:5].any())  # queries on padding see nothing
    right = causal.clone()
    right[1, :, :, 4] = False  # row 1 ends a key earlier: right padding
    with pytest.raises(ValueError, match="left padding only"):
        key_spans(right, 3, 5, True)
    holed = causal[:1].clone()
    holed[..., 1] = False  # padding inside the row
    with pytest.raises(ValueError, match="padding inside a row"):
        key_spans(holed, 3, 5, True)
    heads = torch.cat([causal[:1], left[:1, :, :3, 2:]], 1)
    with pytest.raises(ValueError, match="every head"):
        key_spans(heads, 3, 5, True)
    with pytest.raises(ValueError, match="sliding window"):
        key_spans(sparse_mask(3, 5, window=2)[None, None], 3, 5, True)
    with pytest.raises(ValueError, match="bias"):
        key_spans(torch.full((1, 1, 3, 5), 0.5), 3, 5, True)
    with pytest.raises(ValueError, match="hides every key"):
        key_spans(torch.zeros(1, 1, 3, 5, dtype=torch.bool), 3, 5, True)
    assert key_spans(torch.ones(1, 1, 3, 5, dtype=torch.bool), 3, 5, False) == ([0], 5)


def test_span_mask_counts_positions_from_each_rows_first_token() -> None:
    m = span_mask([2, 0], 6, 4, 6, window=2, global_tokens=[0])
    assert torch.equal(m[1], sparse_mask(4, 6, window=2, global_tokens=[0]))
    assert torch.equal(m[0, :, 2:], sparse_mask(4, 4, window=2, global_tokens=[0]))  # token 2 is row 0's global 0
    assert not bool(m[0, :, :2].any())


def test_configure_per_model_and_process_wide() -> None:
    from transformers import Qwen3Config

    cfg = Qwen3Config(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    try:
        vt.configure(window=8, global_tokens=[0])
        assert vt.settings(cfg) == (8, (0,))
        vt.configure(cfg, window=4, global_tokens=[0, 1])
        assert vt.settings(cfg) == (4, (0, 1))
        assert cfg.to_dict()["vtpu_window"] == 4  # saved with the model
        assert vt.kv_layer(cfg) is None and vt.kv_layer(None) is None
        vt.configure(cfg, kv_layer=100)
        assert vt.kv_layer(cfg) == 100 and vt.settings(cfg) == (None, ())
        with pytest.raises(ValueError):
            vt.configure(window=0)
        with pytest.raises(ValueError):
            vt.configure(cfg, kv_layer=-1)
    finally:
        vt.configure()
    assert vt.settings(None) == (None, ())


def test_default_client_lazy_settable_and_closed(sidecar: vtpu.Sidecar) -> None:
    mine = vtpu.connect(sidecar.address, timeout=10)
    try:
        vi.set_default_client(mine)
        assert vi.default_client() is mine and vi.resolve_client() is mine
        vi.set_default_client(None)
        assert not mine.closed  # a client you pass in stays yours
        own = vi.default_client()  # lazily started (a private sidecar or $VTPU_ADDRESS)
        assert own is not mine and own.ping()["version"]
        vi.set_default_client(mine)
        assert own.closed  # the one the integrations created is closed when replaced
    finally:
        vi.set_default_client(None)
        mine.close()


def test_a_mask_is_read_once_per_object_and_version(monkeypatch) -> None:
    """Every layer of a forward gets the same mask object: its spans are read once, and again after an in-place edit."""
    from vtpu.integrations import attention_op

    calls = []
    monkeypatch.setattr(attention_op, "key_spans", lambda *a: calls.append(a) or key_spans(*a))
    mask = span_mask([3, 0], 5, 5, 7)[:, None]
    for _ in range(4):  # four layers
        assert attention_op._spans(mask, 5, 7, True) == ([3, 0], 5)
    assert len(calls) == 1
    mask.copy_(span_mask([1, 0], 5, 5, 7)[:, None])  # edited in place: its version moves
    assert attention_op._spans(mask, 5, 7, True) == ([1, 0], 5)
    assert attention_op._spans(mask.clone(), 5, 7, True) == ([1, 0], 5)  # another object: read again
    assert len(calls) == 3
    bad = torch.ones(2, 1, 5, 7, dtype=torch.bool)  # sees keys past the causal diagonal
    for _ in range(2):  # a refused mask is refused at every layer, never remembered
        with pytest.raises(ValueError):
            attention_op._spans(bad, 5, 7, True)
