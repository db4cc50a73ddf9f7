"""CATTEND through the sidecar vs dense PyTorch attention with the same boolean mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import vtpu
from attn_ref import reference_attention, sparse_mask

torch.manual_seed(0)


def _qkv(b, hq, hkv, sq, skv, d, dtype=torch.float32):
    g = torch.Generator().manual_seed(b * 1000 + hq * 100 + sq * 10 + skv + d)
    mk = lambda *s: torch.randn(*s, generator=g).to(dtype)
    return mk(b, hq, sq, d), mk(b, hkv, skv, d), mk(b, hkv, skv, d)


def _ref(q, k, v, window, globals_, causal, scale=None):
    m = sparse_mask(q.shape[-2], k.shape[-2], window, globals_, causal)
    o, lse = reference_attention(q.double(), k.double(), v.double(), m, scale)
    return o.numpy(), lse.numpy()


@pytest.mark.parametrize(
    "b,hq,hkv,sq,skv,d,window,globals_,causal",
    [
        (1, 2, 2, 50, 50, 16, None, (), True),
        (2, 4, 2, 77, 77, 32, 8, (0, 3, 40), True),
        (1, 8, 2, 300, 300, 64, 64, (0, 1, 2, 3), True),  # big enough for the ONNX Runtime path (packed blocks)
        (1, 4, 2, 256, 256, 128, 64, (0, 1, 100), True),  # ONNX Runtime, q used in place (Sq a multiple of the block)
        (1, 4, 1, 19, 60, 8, 5, (7,), True),
        (1, 2, 1, 45, 45, 8, 6, (1, 44), False),
        (1, 3, 3, 30, 40, 8, None, (), False),
    ],
)
def test_forward_matches_dense(client, b, hq, hkv, sq, skv, d, window, globals_, causal):
    q, k, v = _qkv(b, hq, hkv, sq, skv, d)
    o, lse = client.cattend(q, k, v, window=window, global_tokens=globals_, causal=causal, return_lse=True)
    ro, rl = _ref(q, k, v, window, globals_, causal)
    assert o.dtype == np.float32 and o.shape == tuple(q.shape) and lse.shape == (b, hq, sq)
    assert np.abs(o - ro).max() <= 1e-4
    assert np.abs(lse - rl).max() <= 1e-4


def test_three_d_inputs_and_custom_scale(client):
    q, k, v = _qkv(1, 4, 2, 20, 20, 8)
    o = client.cattend(q[0].numpy(), k[0].numpy(), v[0].numpy(), window=4, global_tokens=[2], scale=0.3)
    ro, _ = _ref(q, k, v, 4, [2], True, 0.3)
    assert o.shape == (4, 20, 8)
    assert np.abs(o - ro[0]).max() <= 1e-4


def test_backward_matches_autograd(client):
    q, k, v = _qkv(1, 4, 2, 40, 40, 16)
    window, globals_ = 7, (0, 5)
    o, lse = client.cattend(q, k, v, window=window, global_tokens=globals_, return_lse=True)
    do = torch.randn(q.shape, generator=torch.Generator().manual_seed(3))
    dq, dk, dv = client.cattend_backward(q, k, v, o, do, lse, window=window, global_tokens=globals_)
    qd, kd, vd = (x.double().requires_grad_() for x in (q, k, v))
    ro, _ = reference_attention(qd, kd, vd, sparse_mask(40, 40, window, globals_, True))
    ro.backward(do.double())
    for got, want in ((dq, qd.grad), (dk, kd.grad), (dv, vd.grad)):
        want = want.numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= 1e-3 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_widened(client, dtype):
    q, k, v = _qkv(1, 2, 1, 24, 24, 8, dtype)
    o = client.cattend(q, k, v, window=5, global_tokens=[0])
    ro, _ = _ref(q.float(), k.float(), v.float(), 5, [0], True)
    assert o.dtype == np.float32
    assert np.abs(o - ro).max() <= 1e-4


def test_kv_cache_decode_step_equals_last_row(client, ns):
    b, hq, hkv, s, d = 2, 4, 2, 40, 8
    q, k, v = _qkv(b, hq, hkv, s, s, d)
    full = client.cattend(q, k, v, window=6, global_tokens=[0, 1])
    # Prefill all but the last position, then a decode step sends only the new token.
    assert client.kv_put(ns, k[:, :, :-1], v[:, :, :-1]) == 2 * b * hkv * (s - 1)
    assert client.kv_put(ns, k[:, :, -1:], v[:, :, -1:], start=s - 1) == 2 * b * hkv
    step = client.cattend(q[:, :, -1:], layer=ns, kv_length=s, window=6, global_tokens=[0, 1])
    assert step.shape == (b, hq, 1, d)
    assert np.abs(step - full[:, :, -1:]).max() <= 1e-5
    with pytest.raises(vtpu.ParamError):
        client.cattend(q[:, :, -1:], layer=ns, kv_length=s + 1, window=6)


def test_typed_errors_then_ping(client):
    q, k, v = _qkv(1, 3, 2, 5, 5, 4)
    with pytest.raises(vtpu.ShapeError):
        client.cattend(q, k, v)  # 3 query heads over 2 kv heads
    q, k, v = _qkv(1, 2, 1, 5, 5, 4)
    with pytest.raises(vtpu.ShapeError):
        client.cattend(q, k[..., :3], v[..., :3])
    with pytest.raises(vtpu.DTypeError):
        client.cattend(q.to(torch.int32), k, v)
    with pytest.raises(vtpu.ParamError):
        client.cattend(q, k, v, window=0)
    with pytest.raises(vtpu.ParamError):
        client.cattend(q, k, v, window=2, global_tokens=[5])
    with pytest.raises(vtpu.ParamError):
        client.cattend(q, layer=10**6, kv_length=5)
    with pytest.raises(vtpu.ParamError):
        client.cattend(q, k)
    assert client.ping()["version"] == 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    hkv=st.integers(1, 2),
    ratio=st.sampled_from([1, 2, 4]),
    sq=st.integers(1, 40),
    extra=st.integers(0, 20),
    d=st.sampled_from([1, 4, 8]),
    causal=st.booleans(),
)
def test_property_random_masks(client, data, hkv, ratio, sq, extra, d, causal):
    skv = sq + extra
    window = data.draw(st.one_of(st.none(), st.integers(1, skv + 2)))
    globals_ = data.draw(st.lists(st.integers(0, skv - 1), max_size=4, unique=True))
    q, k, v = _qkv(1, hkv * ratio, hkv, sq, skv, d)
    o, lse = client.cattend(q, k, v, window=window, global_tokens=globals_, causal=causal, return_lse=True)
    ro, rl = _ref(q, k, v, window, globals_, causal)
    assert np.abs(o - ro).max() <= 1e-4
    assert np.allclose(lse, rl, atol=1e-4)
