"""vtpu.integrations against the engine: autograd through CATTEND and CMOE's combine, the modules."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import vtpu  # noqa: E402
import vtpu.integrations as vi  # noqa: E402
from vtpu.integrations.autograd import cattend, moe_combine  # noqa: E402
from vtpu.integrations.masks import dense_attention, sparse_mask  # noqa: E402
from vtpu.integrations.modules import SparseAttention, VtpuMoE, selected_weights  # noqa: E402


@pytest.fixture(scope="module")
def vc(sidecar: vtpu.Sidecar) -> Iterator[vtpu.Client]:
    """One client for the module, also the integrations' default."""
    c = vtpu.connect(sidecar.address, timeout=30)
    vi.set_default_client(c)
    try:
        yield c
    finally:
        vi.set_default_client(None)
        c.close()


def err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference."""
    return float((a.detach().double() - b.detach().double()).abs().max())


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest error relative to the reference's largest magnitude."""
    return err(a, b) / max(float(b.detach().abs().max()), 1e-12)


CASES = [  # B, Hq, Hkv, Sq, Skv, D, window, globals, causal
    (2, 2, 2, 8, 8, 16, None, (), True),
    (1, 4, 2, 9, 9, 8, 3, (0,), True),
    (2, 4, 1, 7, 7, 8, 2, (5,), False),
    (1, 4, 2, 3, 10, 16, 4, (1, 8), True),  # queries at the end of a longer key sequence
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_cattend_function_matches_dense_torch(vc: vtpu.Client, case: tuple) -> None:
    b, hq, hkv, sq, skv, d, window, g, causal = case
    gen = torch.Generator().manual_seed(hash(case) % 2**31)
    q64 = torch.randn(b, hq, sq, d, generator=gen, dtype=torch.float64, requires_grad=True)
    k64 = torch.randn(b, hkv, skv, d, generator=gen, dtype=torch.float64, requires_grad=True)
    v64 = torch.randn(b, hkv, skv, d, generator=gen, dtype=torch.float64, requires_grad=True)
    do = torch.randn(b, hq, sq, d, generator=gen, dtype=torch.float64)
    ref = dense_attention(q64, k64, v64, sparse_mask(sq, skv, window=window, global_tokens=g, causal=causal))
    ref.backward(do)
    q, k, v = (t.detach().float().requires_grad_() for t in (q64, k64, v64))
    o = cattend(q, k, v, window=window, global_tokens=g, causal=causal)
    assert o.dtype == torch.float32 and o.shape == ref.shape
    assert err(o, ref) <= 1e-4
    o.backward(do.float())
    for got, want in ((q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)):
        assert got.shape == want.shape and rel(got, want) <= 1e-3


def test_cattend_without_grad_and_in_bf16(vc: vtpu.Client) -> None:
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    with torch.no_grad():
        o = cattend(q.requires_grad_(), k, v, window=2)
    assert o.grad_fn is None
    ref = dense_attention(q.detach(), k, v, sparse_mask(5, 5, window=2))
    assert err(o, ref) <= 1e-4
    ob = cattend(q.detach().bfloat16(), k.bfloat16(), v.bfloat16(), window=2)
    assert ob.dtype == torch.bfloat16 and err(ob, ref) < 0.1


def test_cattend_bad_input_is_a_typed_error_and_the_sidecar_serves_on(vc: vtpu.Client) -> None:
    q, k = torch.randn(1, 3, 4, 8), torch.randn(1, 2, 4, 8)  # 3 query heads over 2 kv heads
    with pytest.raises(vtpu.VtpuError):
        cattend(q, k, k)
    with pytest.raises(vtpu.VtpuError):
        cattend(torch.randn(1, 2, 4, 8), k, k, window=0)
    o = cattend(torch.randn(1, 2, 4, 8), k, k)
    assert o.shape == (1, 2, 4, 8)


def reference_combine(expert_out: torch.Tensor, weights: torch.Tensor, r) -> torch.Tensor:
    """y[t] = sum of kept w[t,s] * row of (t,s), in torch."""
    order = torch.as_tensor(r.order).long()
    k = r.expert_ids.shape[1]
    w = weights.reshape(-1)[order]
    y = expert_out.new_zeros(r.expert_ids.shape[0], expert_out.shape[1])
    return y.index_add(0, order // k, expert_out * w[:, None])


@pytest.mark.parametrize("capacity_factor", [None, 0.5])
def test_moe_combine_function_gradients(vc: vtpu.Client, capacity_factor) -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(12, 4, generator=gen)
    r = vc.cmoe(logits, 2, capacity_factor=capacity_factor)
    n = len(r.order)
    assert (n < 24) == (capacity_factor is not None)  # half capacity drops assignments
    eo = torch.randn(n, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.as_tensor(r.weights, dtype=torch.float64).requires_grad_()
    dy = torch.randn(12, 6, generator=gen, dtype=torch.float64)
    ref = reference_combine(eo, w, r)
    ref.backward(dy)
    eo32, w32 = eo.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    y = moe_combine(eo32, w32, r)
    assert err(y, ref) <= 1e-5
    y.backward(dy.float())
    assert rel(eo32.grad, eo.grad) <= 1e-5
    kept = torch.as_tensor(r.kept)
    assert rel(w32.grad[kept], w.grad[kept]) <= 1e-5 and float(w32.grad[~kept].abs().sum()) == 0.0


def reference_moe(moe: VtpuMoE, x: torch.Tensor, kept: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The same MoE layer entirely in torch: softmax, top-k, experts, weighted sum of the
    ``kept`` assignments (capacity is CMOE's to decide), aux loss."""
    logits = moe.router(x)
    probs = torch.softmax(logits, -1)
    w, ids = probs.topk(moe.top_k, -1)
    if moe.renormalize:
        w = w / w.sum(-1, keepdim=True)
    y = torch.zeros_like(x)
    for e, expert in enumerate(moe.experts):
        t, s = ((ids == e) & torch.as_tensor(kept)).nonzero(as_tuple=True)
        if len(t):
            y = y.index_add(0, t, expert(x[t]) * w[t, s][:, None])
    f = torch.nn.functional.one_hot(ids, moe.num_experts).float().mean(0)
    return y, moe.num_experts * (f * probs.mean(0)).sum()


@pytest.mark.parametrize("renormalize,capacity_factor", [(False, None), (True, None), (True, 0.6)])
def test_moe_module_matches_torch_and_trains(vc: vtpu.Client, renormalize: bool, capacity_factor) -> None:
    torch.manual_seed(5)
    moe = VtpuMoE(16, 24, 4, 2, renormalize=renormalize, capacity_factor=capacity_factor)
    x = torch.randn(2, 5, 16, requires_grad=True)
    y, aux = moe(x)
    r = moe.last_routing
    assert y.shape == x.shape
    assert bool(r.kept.all()) == (capacity_factor is None)  # 0.6 drops some assignments
    _, w = selected_weights(moe.router(x.reshape(-1, 16)), torch.as_tensor(r.expert_ids).long(), renormalize)
    assert np.allclose(w.detach().numpy(), r.weights, atol=1e-6)  # torch's weights are CMOE's
    assert abs(aux.item() - float(r.aux["aux_loss"])) <= 1e-5
    (y.square().sum() + aux).backward()
    got = {n: p.grad.clone() for n, p in moe.named_parameters() if p.grad is not None}
    gx = x.grad.clone()
    assert "router.weight" in got and float(got["router.weight"].abs().sum()) > 0
    used = {int(e) for e in np.unique(r.expert_ids)}
    assert all(f"experts.{e}.down.weight" in got for e in used)
    moe.zero_grad()
    x.grad = None
    ry, raux = reference_moe(moe, x.reshape(-1, 16), r.kept)
    assert err(y.reshape(-1, 16), ry) <= 1e-5
    (ry.square().sum() + raux).backward()
    for n, p in moe.named_parameters():
        if p.grad is not None and float(p.grad.abs().max()) > 0:
            assert rel(got[n], p.grad) <= 1e-4, n
    assert rel(gx, x.grad) <= 1e-4


def test_sparse_attention_module(vc: vtpu.Client) -> None:
    torch.manual_seed(7)
    m = SparseAttention(32, 4, 2, window=3, global_tokens=[0])
    x = torch.randn(2, 6, 32, requires_grad=True)
    y = m(x)
    q = m.q_proj(x).view(2, 6, 4, 8).transpose(1, 2)
    k = m.k_proj(x).view(2, 6, 2, 8).transpose(1, 2)
    v = m.v_proj(x).view(2, 6, 2, 8).transpose(1, 2)
    ref = m.o_proj(dense_attention(q, k, v, sparse_mask(6, 6, window=3, global_tokens=[0])).transpose(1, 2).reshape(2, 6, 32))
    assert err(y, ref) <= 1e-4
    y.sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.parameters())


def test_global_tokens_past_the_keys_are_dropped_and_lazy_exports(vc: vtpu.Client) -> None:
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    a = vi.cattend(q, k, v, window=2, global_tokens=(0, 100))  # 100 does not exist yet: a short prompt
    b = dense_attention(q, k, v, sparse_mask(4, 6, window=2, global_tokens=(0,)))
    assert err(a, b) <= 1e-4
    assert vi.SparseAttention is SparseAttention and vi.VtpuMoE is VtpuMoE
    with pytest.raises(AttributeError):
        vi.no_such_thing


@pytest.mark.parametrize(("env", "imports_torch", "want"), [
    ({}, False, "True 10000 None"),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, False, "False None PASSIVE"),  # the user's own choice is kept
    ({"GOMP_SPINCOUNT": "5"}, False, "False 5 None"),
    ({}, True, "False None None"),  # libgomp read its environment when torch loaded: too late
])
def test_share_cores_sets_a_short_openmp_spin_before_torch_loads(env: dict, imports_torch: bool, want: str) -> None:
    import os
    import subprocess
    import sys

    code = ("import os\n" + ("import torch\n" if imports_torch else "") + "import vtpu.integrations as vi\n"
            "print(vi.share_cores(), os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))")
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == want
    assert vi.SHORT_SPIN == "10000"
