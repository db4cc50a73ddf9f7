"""CMOE against PyTorch: the stable-sort selection rule, transformers' Qwen3-MoE router and
load-balancing loss, Switch top-1 with capacity, combine and its backward vs autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vtpu
from transformers.models.qwen3_moe import modeling_qwen3_moe as qwen3


def ref_route(logits: torch.Tensor, k: int, renormalize: bool = False, capacity_factor: float | None = None) -> dict:
    """The reference semantics in plain torch (stable sort, python capacity loop)."""
    x = logits.float()
    T, E = x.shape
    probs = torch.softmax(x, dim=-1)
    w, ids = torch.sort(probs, dim=-1, descending=True, stable=True)
    w, ids = w[:, :k], ids[:, :k]
    if renormalize:
        w = w / w.sum(-1, keepdim=True)
    flat = ids.reshape(-1).tolist()
    cap = None if capacity_factor is None else math.ceil(capacity_factor * T * k / E)
    seen = [0] * E
    kept = []
    for e in flat:
        kept.append(cap is None or seen[e] < cap)
        seen[e] += kept[-1]
    kept_t = torch.tensor(kept)
    order = [a for a in torch.argsort(ids.reshape(-1), stable=True).tolist() if kept[a]]
    counts = torch.bincount(ids.reshape(-1)[kept_t], minlength=E)
    f1 = torch.bincount(ids[:, 0], minlength=E).float() / T
    P = probs.mean(0)
    return {
        "ids": ids, "w": w, "order": order, "counts": counts, "kept": kept_t.reshape(T, k), "capacity": cap,
        "tokens_per_expert": torch.bincount(ids.reshape(-1), minlength=E).double() / T,
        "router_prob_per_expert": P.double(),
        "switch_loss": float(E * (f1 * P).sum()),
        "z_loss": float(torch.logsumexp(x, -1).pow(2).mean()),
    }


def check(r: vtpu.MoeRouting, ref: dict) -> None:
    np.testing.assert_array_equal(r.expert_ids, ref["ids"].numpy())
    np.testing.assert_allclose(r.weights, ref["w"].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(r.order, ref["order"])
    np.testing.assert_array_equal(r.counts, ref["counts"].numpy())
    np.testing.assert_array_equal(r.offsets, np.concatenate([[0], np.cumsum(ref["counts"].numpy())]))
    np.testing.assert_array_equal(r.kept, ref["kept"].numpy())
    assert r.capacity == ref["capacity"]
    for name in ("tokens_per_expert", "router_prob_per_expert"):
        np.testing.assert_allclose(r.aux[name], ref[name].numpy(), rtol=0, atol=1e-6)
    assert r.aux["switch_loss"] == pytest.approx(ref["switch_loss"], abs=1e-6)
    assert r.aux["z_loss"] == pytest.approx(ref["z_loss"], rel=1e-6)


def test_ties_follow_the_stable_sort_rule(client):
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(0, 3, (64, 16), generator=g).float()  # rows full of exact ties
    for k in (1, 3, 16):
        r = client.cmoe(logits, k)
        check(r, ref_route(logits, k))
    assert r.expert_ids.dtype == np.int64 and r.order.dtype == np.int64 and r.kept.dtype == np.bool_
    assert r.weights.dtype == np.float32 and r.capacity is None


def test_tie_free_rows_equal_topk_and_qwen3_loss(client):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 64, generator=g)
    r = client.cmoe(logits.numpy(), 4)
    w, ids = torch.topk(torch.softmax(logits, -1), 4, dim=-1)
    np.testing.assert_array_equal(r.expert_ids, ids.numpy())
    np.testing.assert_allclose(r.weights, w.numpy(), atol=1e-6)
    want = qwen3.load_balancing_loss_func((logits,), num_experts=64, top_k=4)
    assert r.aux["aux_loss"] == pytest.approx(float(want), abs=1e-6)
    check(r, ref_route(logits, 4))
    # several layers: transformers pools the counts over the tuple, i.e. over the concatenation
    other = torch.randn(100, 64, generator=g)
    pooled = qwen3.load_balancing_loss_func((logits, other), num_experts=64, top_k=4)
    assert client.cmoe(torch.cat([logits, other]), 4).aux["aux_loss"] == pytest.approx(float(pooled), abs=1e-6)


def test_qwen3_top8_of_128_block_end_to_end(client):
    """The Qwen3-MoE router and sparse block: same experts, weights and output through CMOE."""
    torch.manual_seed(2)
    cfg = qwen3.Qwen3MoeConfig(hidden_size=16, moe_intermediate_size=8, num_experts=128, num_experts_per_tok=8,
                               norm_topk_prob=True, hidden_act="silu")
    block = qwen3.Qwen3MoeSparseMoeBlock(cfg).eval()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.5)
    h = torch.randn(1, 96, 16)
    with torch.no_grad():
        want = block(h).reshape(96, 16)
        logits, scores, idx = block.gate(h.reshape(96, 16))
    r = client.cmoe(logits, 8, renormalize=True)
    np.testing.assert_array_equal(r.expert_ids, idx.numpy())
    np.testing.assert_allclose(r.weights, scores.numpy(), atol=1e-6)
    want_aux = qwen3.load_balancing_loss_func((logits,), num_experts=128, top_k=8)
    assert r.aux["aux_loss"] == pytest.approx(float(want_aux), abs=1e-6)
    # run each expert on its rows of the plan, then let CMOE combine
    ex = block.experts
    tok = torch.as_tensor(r.order // 8)
    rows = []
    with torch.no_grad():
        for e in range(128):
            t = tok[r.offsets[e] : r.offsets[e + 1]]
            gate, up = torch.nn.functional.linear(h.reshape(96, 16)[t], ex.gate_up_proj[e]).chunk(2, dim=-1)
            rows.append(torch.nn.functional.linear(ex.act_fn(gate) * up, ex.down_proj[e]))
    y = client.cmoe_combine(torch.cat(rows), r)
    np.testing.assert_allclose(y, want.numpy(), atol=1e-4, rtol=1e-4)


def test_switch_top1_with_capacity(client):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(200, 8, generator=g)
    logits[:, 2] += 2.0  # overload expert 2 so capacity drops tokens
    r = client.cmoe(logits, 1, capacity_factor=1.25)
    ref = ref_route(logits, 1, capacity_factor=1.25)
    check(r, ref)
    assert r.capacity == 32 and r.counts.max() == 32 and not r.kept.all()
    # the Switch loss by its definition: E · Σ f_e · P_e with f over top-1 choices
    probs = torch.softmax(logits, -1)
    f = torch.bincount(probs.argmax(-1), minlength=8).float() / 200
    assert r.aux["switch_loss"] == pytest.approx(float(8 * (f * probs.mean(0)).sum()), abs=1e-6)


def test_combine_and_backward_match_autograd(client):
    g = torch.Generator().manual_seed(4)
    T, E, k, H = 40, 6, 2, 5
    logits = torch.randn(T, E, generator=g)
    r = client.cmoe(logits, k, capacity_factor=0.8, renormalize=True)
    assert not r.kept.all()
    x = torch.randn(len(r.order), H, generator=g, requires_grad=True)
    w = torch.tensor(r.weights, requires_grad=True)
    order = torch.as_tensor(r.order)
    y = torch.zeros(T, H).index_add(0, order // k, w.reshape(-1)[order, None] * x)
    dy = torch.randn(T, H, generator=g)
    y.backward(dy)
    np.testing.assert_allclose(client.cmoe_combine(x.detach(), r), y.detach().numpy(), atol=1e-5)
    dx, dw = client.cmoe_combine_backward(x.detach(), r, dy)
    np.testing.assert_allclose(dx, x.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(dw, w.grad.numpy(), atol=1e-5)
    assert (dw[~r.kept] == 0).all()


def test_half_precision_logits_and_placement(client):
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(50, 16, generator=g).to(torch.bfloat16)
    r = client.cmoe(logits, 2, expert_shards=[e // 4 for e in range(16)])
    check(r, ref_route(logits.float(), 2))  # computed from the bfloat16 values, in float
    np.testing.assert_array_equal(r.expert_shard, np.arange(16) // 4)
    np.testing.assert_array_equal(r.shard_counts, r.counts.reshape(4, 4).sum(1))
    half = torch.randn(50, 16, generator=g).half()
    check(client.cmoe(half.numpy(), 3), ref_route(half.float(), 3))


def test_expert_base_uses_the_route_table(fresh_sidecar):
    with vtpu.connect(fresh_sidecar.address, timeout=10) as c:
        c.set_route_table([
            {"start": "0.0.0/0.0.0/0.0.0", "end": "2.1.1/1.1.1/1.1.5", "shard": 0, "address": None},
            {"start": "2.1.1/1.1.1/1.1.5", "end": None, "shard": 1, "address": None},
        ])
        r = c.cmoe(np.random.default_rng(6).standard_normal((30, 8), np.float32), 2, expert_base="2.1.1/1.1.1/1.1.1")
    np.testing.assert_array_equal(r.expert_shard, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(r.shard_counts, [r.counts[:4].sum(), r.counts[4:].sum()])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    T=st.integers(1, 24), E=st.integers(1, 10), data=st.data(),
    renorm=st.booleans(), cap=st.one_of(st.none(), st.floats(0.1, 3.0)), ties=st.booleans(),
)
def test_random_small_routings(client, T, E, data, renorm, cap, ties):
    k = data.draw(st.integers(1, E))
    g = torch.Generator().manual_seed(T * 1000 + E * 10 + k)
    logits = torch.randint(0, 3, (T, E), generator=g).float() if ties else torch.randn(T, E, generator=g) * 3
    r = client.cmoe(logits, k, renormalize=renorm, capacity_factor=cap)
    check(r, ref_route(logits, k, renorm, cap))
    if not ties:
        want = qwen3.load_balancing_loss_func((logits,), num_experts=E, top_k=k)
        assert r.aux["aux_loss"] == pytest.approx(float(want), abs=1e-6)
    H = 3
    x = torch.randn(len(r.order), H, generator=g)
    order = torch.as_tensor(r.order)
    want_y = torch.zeros(T, H).index_add(0, order // k, torch.as_tensor(r.weights).reshape(-1)[order, None] * x)
    np.testing.assert_allclose(client.cmoe_combine(x, r), want_y.numpy(), atol=1e-5)


def test_bad_input_is_typed_and_the_sidecar_keeps_serving(client):
    x = np.zeros((4, 8), np.float32)
    with pytest.raises(vtpu.ShapeError):
        client.cmoe(np.zeros(8, np.float32), 1)
    for k in (0, 9):
        with pytest.raises(vtpu.ParamError):
            client.cmoe(x, k)
    with pytest.raises(vtpu.ParamError):
        client.cmoe(x, "two")
    with pytest.raises(vtpu.DTypeError):
        client.cmoe(np.zeros((4, 8), np.int64), 1)
    bad = x.copy()
    bad[1, 3] = np.nan
    with pytest.raises(vtpu.ParamError):
        client.cmoe(bad, 1)
    for c in (0, -1.5):
        with pytest.raises(vtpu.ParamError):
            client.cmoe(x, 1, capacity_factor=c)
    r = client.cmoe(x, 2)
    with pytest.raises(vtpu.ShapeError):
        client.cmoe_combine(np.zeros((len(r.order) + 1, 4), np.float32), r)
    with pytest.raises(vtpu.ShapeError):
        client.cmoe_combine_backward(np.zeros((len(r.order), 4), np.float32), r, np.zeros((3, 4), np.float32))
    with pytest.raises(vtpu.ParamError):
        client.cmoe_combine(np.zeros((8, 4), np.float32), r.expert_ids)
    assert "CMOE" in client.ping()["ops"]
    np.testing.assert_array_equal(client.cmoe(x, 2).expert_ids, np.tile([0, 1], (4, 1)))
