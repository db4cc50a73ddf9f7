"""Dense layers in the sidecar (CEXPERTS dense_load / dense_run, vtpu.ops_dense) and
SidecarLinear, a Qwen3-MoE lm_head moved there (vq.hook(..., lm_head=True))."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pytest

import vtpu
from vtpu import bell as vbell

K, N = 40, 83  # N: five panels of 16 and one of 3 rows
H, I, E = 16, 8, 4  # an experts layer for the id-sharing test


def weight(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((N, K), np.float32) * 0.1


def rows(T: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((T, K), np.float32)


def chunk(c: vtpu.Client, layer: int, w: np.ndarray, **params) -> dict:
    """One raw dense_load request (the client always starts with replace and whole chunks)."""
    p = {"mode": "dense_load", "layer": layer, "rows": N, "cols": K, **params}
    return c.compute("CEXPERTS", p, {"w": w})[0]


@pytest.mark.parametrize("T", [1, 7, 40])
def test_dense_run_matches_float64_through_the_bell_and_the_socket(client, ns, T):
    c, layer, W = client, 7000 + ns, weight()
    info = c.dense_load(c_layer := layer, W, chunk_bytes=32 * K * 4)  # three chunks: 32 + 32 + 19 rows
    assert info == {"layer": c_layer, "rows": N, "cols": K, "format": "fp32", "received": N, "complete": True, "bytes": 6 * 16 * K * 4, "threads": info["threads"]}
    x = rows(T)
    want = x.astype(np.float64) @ W.astype(np.float64).T
    by_socket = c.dense_run(layer, x)  # no out_features: never the bell
    got = c.dense_run(layer, x, out_features=N)
    assert got.shape == (T, N) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()
    assert np.array_equal(got, by_socket)  # the same kernel and panels
    link = c._t._local.conn.link
    if link and vbell.supported():
        assert link.bell.last_why == 0  # the shm client's run went through its bell


def test_dense_errors_are_typed_and_leave_the_layer_usable(client, ns):
    c, layer, W, x = client, 7100 + ns, weight(), rows(2)
    with pytest.raises(vtpu.ParamError, match="no dense layer"):
        c.dense_run(layer, x)
    c.dense_load(layer, W)
    with pytest.raises(vtpu.ShapeError, match="columns"):
        c.dense_run(layer, rows(2)[:, :-1])
    with pytest.raises(vtpu.ShapeError, match="columns"):  # the bell refuses it, the socket says why
        c.dense_run(layer, rows(2)[:, :-1], out_features=N)
    with pytest.raises(vtpu.ShapeError, match="outputs"):
        c.dense_run(layer, x, out_features=N + 1)
    with pytest.raises(vtpu.ParamError, match="uploaded already"):
        chunk(c, layer, W[:16])
    with pytest.raises(vtpu.ParamError, match="multiple of 16"):
        chunk(c, layer, W[:16], first=8)
    with pytest.raises(vtpu.ShapeError, match="replace"):
        chunk(c, layer, W[:16], rows=N + 16)
    with pytest.raises(vtpu.ShapeError, match="multiple of 16 rows"):
        chunk(c, layer, W[:10], replace=True)
    with pytest.raises(vtpu.ParamError, match="needs rows"):
        c.compute("CEXPERTS", {"mode": "dense_load", "layer": layer, "cols": K}, {"w": W[:16]})
    with pytest.raises(vtpu.ParamError, match=r"\(N, K\)"):
        c.dense_load(layer, np.zeros(5, np.float32))
    assert np.array_equal(c.dense_run(layer, x, out_features=N), c.dense_run(layer, x))  # still whole
    chunk(c, layer, W[:16], replace=True)  # a fresh layer, one chunk of six
    assert c.dense_info(layer)[0]["received"] == 16
    for out in (None, N):  # neither the socket nor the bell answers an incomplete layer
        with pytest.raises(vtpu.ParamError, match="16 of its 83 rows"):
            c.dense_run(layer, x, out_features=out)
    assert c.experts_drop(layer) == 1 and c.dense_info(layer) == []


def test_a_layer_id_holds_experts_or_a_dense_matrix(client, ns):
    c, layer, W = client, 7200 + ns, weight()
    rng = np.random.default_rng(2)
    gu, dn = rng.standard_normal((E, 2 * I, H), np.float32), rng.standard_normal((E, H, I), np.float32)
    c.experts_load(layer, gu, dn, format="fp32")
    with pytest.raises(vtpu.ParamError, match="holds experts"):
        c.dense_run(layer, rows(1))
    with pytest.raises(vtpu.ParamError, match="holds experts"):
        chunk(c, layer, W[:16])
    c.dense_load(layer, W)  # its first chunk says replace: the experts go
    assert c.experts_info(layer) == [] and c.dense_info(layer)[0]["complete"]
    xs, ids, ws = rng.standard_normal((1, H), np.float32), np.array([[0, 1]], np.int32), np.ones((1, 2), np.float32)
    with pytest.raises(vtpu.ParamError, match="dense layer"):  # through the bell too: it refuses, the socket says why
        c.experts_run(layer, xs, expert_ids=ids, weights=ws)
    with pytest.raises(vtpu.ParamError, match="dense layer"):
        c.compute("CEXPERTS", {"mode": "load", "layer": layer, "experts": E, "hidden": H, "intermediate": I}, {"gate_up": gu, "down": dn})
    c.experts_load(layer, gu, dn, format="fp32")  # replace: the dense layer goes
    assert c.dense_info(layer) == [] and c.experts_info(layer)[0]["complete"]
    assert c.experts_run(layer, xs, expert_ids=ids, weights=ws).y.shape == (1, H)
    assert c.experts_drop(layer) == 1
    with pytest.raises(vtpu.ParamError, match="no dense layer"):  # a dropped id holds nothing
        c.dense_run(layer, rows(1))
    assert chunk(c, layer, W[:16])["info"]["received"] == 16  # nor needs replace
    assert c.experts_drop(layer) == 1


def nearest_bf16(w: np.ndarray) -> np.ndarray:
    """Each float32 of ``w`` rounded to its nearest bfloat16 (ties to even), as float32."""
    u = w.astype(np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("T", [1, 7])
def test_a_bf16_dense_layer_holds_the_rounded_weights_and_runs_in_float32(client, ns, T):
    c, layer, W, x = client, 7050 + ns, weight(3), rows(T)
    info = c.dense_load(layer, W, format="bf16", chunk_bytes=32 * K * 4)
    assert (info["format"], info["bytes"], info["complete"]) == ("bf16", 6 * 16 * K * 2, True)  # half the fp32 layer's bytes
    got, by_socket = c.dense_run(layer, x, out_features=N), c.dense_run(layer, x)
    assert np.array_equal(got, by_socket) and got.dtype == np.float32
    Wr = nearest_bf16(W)
    want = x.astype(np.float64) @ Wr.astype(np.float64).T
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()  # float32 sums of the rounded weights
    c.dense_load(layer + 1, Wr)  # the same rounded weights in an fp32 layer: the same sums in the same order
    assert np.array_equal(c.dense_run(layer + 1, x, out_features=N), got)
    exact = x.astype(np.float64) @ W.astype(np.float64).T
    assert 0 < np.abs(got - exact).max() < 1e-2 * np.abs(exact).max()  # what bf16 costs on unrounded weights
    with pytest.raises(vtpu.ParamError, match="held in bf16"):  # one format a layer, unless replaced
        chunk(c, layer, W[:16], format="fp32")
    with pytest.raises(vtpu.ParamError, match="format is one of"):
        chunk(c, layer, W[:16], format="q4", replace=True)
    with pytest.raises(vtpu.ParamError, match="format is one of"):
        c.dense_load(layer, W, format="fp16")
    assert np.array_equal(c.dense_run(layer, x, out_features=N), got)  # refusals left it as it was
    assert c.experts_drop(layer) == 1 and c.experts_drop(layer + 1) == 1


# -- SidecarLinear: the lm_head of a tiny Qwen3-MoE -------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import vtpu.integrations.qwen3 as vq  # noqa: E402
from vtpu.integrations.qwen3_models import load_model  # noqa: E402
from vtpu.integrations.sidecar_linear import SidecarLinear  # noqa: E402

from test_qwen3_parity import PAD, batch  # noqa: E402 - the same left-padded batch of 2


@pytest.fixture(scope="module")
def pc(sidecar: vtpu.Sidecar) -> Iterator[vtpu.Client]:
    with vtpu.connect(sidecar.address, timeout=60) as c:
        yield c


@pytest.fixture
def head_pair(pc) -> Iterator[tuple]:
    """transformers' tiny Qwen3-MoE and the same weights with experts and lm_head in the sidecar."""
    ref, ours = load_model("tiny"), load_model("tiny")
    vq.hook(ours, pc, "fp32", layer_base=7300, lm_head=True)
    try:
        yield ref, ours
    finally:
        pc.experts_drop()  # unhook is refused: the lm_head's weight is only in the sidecar


def assert_generates_like(ref, ours) -> None:
    """fp32 logits within 1e-4 at real positions and the same greedy tokens as ``ref`` on the parity
    suite's left-padded batch of 2: eager, with a static cache and compiled fullgraph (``ours`` stays compiled)."""
    ids, mask = batch()
    kw = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    with torch.no_grad():
        a, b = ref(ids, attention_mask=mask).logits, ours(ids, attention_mask=mask).logits
        want = ref.generate(ids, **kw)
        got, static = ours.generate(ids, **kw), ours.generate(ids, cache_implementation="static", **kw)
        ours.forward = torch.compile(ours.forward, fullgraph=True, dynamic=False)
        compiled = ours.generate(ids, cache_implementation="static", **kw)
    assert float((a - b)[mask.bool()].abs().max()) <= 1e-4
    assert torch.equal(got, want) and torch.equal(static, want) and torch.equal(compiled, want)


def test_lm_head_in_the_sidecar_matches_transformers_eager_and_compiled(head_pair, pc):
    ref, ours = head_pair
    assert isinstance(ours.lm_head, SidecarLinear) and ours.lm_head.uploads == 1
    assert pc.dense_info(7300 + ours.config.num_hidden_layers)[0]["rows"] == ours.config.vocab_size
    assert not any("lm_head" in k for k in ours.state_dict())  # the weight left torch
    assert_generates_like(ref, ours)
    with pytest.raises(ValueError, match="lm_head"):
        vq.unhook(ours)


def test_lm_head_load_state_dict_uploads_and_gradients_are_refused(head_pair):
    ref, ours = head_pair
    other = load_model("tiny", seed=5)
    ids, _ = batch()
    with torch.no_grad():
        ours.load_state_dict(other.state_dict())  # experts and the sidecar's lm_head both follow
        assert ours.lm_head.uploads == 2
        assert float((ours(ids).logits - other(ids).logits).abs().max()) <= 1e-4
    bad = {"weight": torch.zeros(3, 3)}
    with pytest.raises(RuntimeError, match="weight must be"):
        ours.lm_head.load_state_dict(bad)
    x = torch.randn(1, ours.config.hidden_size, requires_grad=True)
    with pytest.raises(RuntimeError, match="inference only"):
        ours.lm_head(x)
    with pytest.raises(TypeError, match="not an nn.Linear"):
        vq.offload_head(ours)


def test_projections_and_head_in_bf16_match_transformers_on_bf16_weights(pc):
    """hook(projections=True, dense_format="bf16") on a model whose weights are bfloat16 values (a
    bf16 checkpoint's, in float32): the sidecar holds them exactly, so logits stay within 1e-4 and
    greedy tokens match, eager, with a static cache and compiled."""
    ref, ours = load_model("tiny"), load_model("tiny")
    with torch.no_grad():
        for m in (ref, ours):
            for p in m.parameters():
                p.copy_(p.bfloat16().float())
    vq.hook(ours, pc, "fp32", layer_base=7500, lm_head=True, projections=True, dense_format="bf16")
    try:
        L = ours.config.num_hidden_layers
        attn = ours.model.layers[L - 1].self_attn
        assert all(isinstance(getattr(attn, n), SidecarLinear) for n in vq.PROJECTIONS)
        assert attn.o_proj.layer == 7500 + L + 1 + 4 * (L - 1) + 3 and attn.o_proj.format == "bf16"
        assert {d["format"] for d in pc.dense_info()} == {"bf16"} and len(pc.dense_info()) == 4 * L + 1
        assert_generates_like(ref, ours)
        with pytest.raises(ValueError, match="q_proj"):
            vq.unhook(ours)
        with pytest.raises(ValueError, match="dense_format"):
            vq.hook(ours, pc, "fp32", layer_base=7500, dense_format="int4")
    finally:
        pc.experts_drop()
