"""Qwen3-MoE experts in the sidecar (CEXPERTS, experts_implementation="vtpu") on a tiny model."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM  # noqa: E402

import vtpu  # noqa: E402
import vtpu.integrations.qwen3 as vq  # noqa: E402
from conftest import CLI_BUILT, NOT_BUILT  # noqa: E402

VOCAB = 256


def tiny_model(seed: int = 0) -> Qwen3MoeForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen3MoeConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=True, max_position_embeddings=256, decoder_sparse_step=1, mlp_only_layers=[],
    )
    return Qwen3MoeForCausalLM(cfg).eval()


def prompts(n: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def model(client):
    m = tiny_model()
    yield m
    vq.unhook(m)


def test_fp32_logits_match_transformers(model, client):
    ids = prompts(3, 16)
    with torch.no_grad():
        ref = model(ids).logits
        vq.hook(model, client, "fp32", layer_base=100)
        assert model.config._experts_implementation == "vtpu"
        out = model(ids).logits
    assert (out - ref).abs().max().item() < 1e-4
    st = vq.routing_stats(model)
    assert sorted(st) == [0, 1, 2, 3]
    for s in st.values():  # every token went to top_k experts
        assert s["last"].sum() == 3 * 16 * 2 and s["calls"] == 1
        assert 0 < s["sidecar_ms"] <= s["call_ms"]  # the runtime's time is part of the call's


def test_greedy_and_sampled_generation_match(model, client):
    ids = prompts(2, 8)
    ref = model.generate(ids, max_new_tokens=32, do_sample=False)
    torch.manual_seed(7)
    ref_s = model.generate(ids[:1], max_new_tokens=12, do_sample=True, top_k=20)
    vq.hook(model, client, layer_base=110)
    out = model.generate(ids, max_new_tokens=32, do_sample=False)
    torch.manual_seed(7)
    out_s = model.generate(ids[:1], max_new_tokens=12, do_sample=True, top_k=20)
    assert out.shape == (2, 40) and torch.equal(out, ref)
    assert torch.equal(out_s, ref_s)
    vq.unhook(model)
    assert model.config._experts_implementation != "vtpu"
    assert client.experts_info(110) == []


def test_some_layers_only(model, client):
    ids = prompts(1, 10)
    with torch.no_grad():
        ref = model(ids).logits
        vq.hook(model, client, layers=[1, 3], layer_base=120, threads=1)
        out = model(ids).logits
    assert sorted(vq.routing_stats(model)) == [1, 3]
    assert (out - ref).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match="no MoE experts"):
        vq.hook(tiny_model(), client, layers=[9])


def test_release_frees_torch_weights(client):
    m = tiny_model()
    ids = prompts(1, 8)
    ref = m.generate(ids, max_new_tokens=8, do_sample=False)
    vq.hook(m, client, "int8", layer_base=150, release=True)
    assert all(e.gate_up_proj.numel() == 0 and e.down_proj.numel() == 0 for e in vq.expert_modules(m).values())
    out = m.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape == ref.shape
    with pytest.raises(ValueError, match="freed"):
        vq.unhook(m)
    assert client.experts_info(150)[0]["format"] == "int8"
    assert client.experts_drop(150) == 1


# int8 holds 7-bit codes (exact on CPUs without VNNI, see quantizeRows): a little below q8.
@pytest.mark.parametrize("fmt, agreement", [("int8", 0.98), ("q8", 0.99), ("q4", 0.95)])
def test_quantised_accuracy_cost(client, fmt, agreement):
    m = tiny_model()
    r = vq.format_accuracy(m, prompts(8, 32, seed=3), fmt, client=client, layer_base=130)
    print(f"{fmt} experts: max |dlogit| {r['max_abs_dlogit']:.4f}, top-1 agreement {r['top1_agreement']:.4f} over {r['positions']} positions")
    assert r["positions"] == 256
    assert r["top1_agreement"] >= agreement
    assert 0 < r["max_abs_dlogit"] < 0.5  # quantised: not bit-exact, but close


def test_q4_and_q8_run_on_native_kernels(client):
    rng = np.random.default_rng(1)
    gu, dn = rng.standard_normal((4, 16, 8)).astype(np.float32), rng.standard_normal((4, 8, 8)).astype(np.float32)
    # native/experts_q4.c and native/experts_q8.c, built by make build; int8 has no native kernel
    assert client.experts_load(160, gu, dn, format="q4")["kernel"] == "native"
    assert client.experts_load(161, gu, dn, format="q8")["kernel"] == "native"
    assert client.experts_load(162, gu, dn, format="int8")["kernel"] == "onnxruntime"
    assert [l["kernel"] for l in client.experts_info(161)] == ["native"]
    assert client.experts_drop(160) + client.experts_drop(161) + client.experts_drop(162) == 3


def test_missing_and_mismatched_uploads_are_typed(client):
    rng = np.random.default_rng(0)
    gu = rng.standard_normal((4, 16, 8)).astype(np.float32)
    dn = rng.standard_normal((4, 8, 8)).astype(np.float32)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    ids, w = np.zeros((3, 2), np.int32), np.full((3, 2), 0.5, np.float32)
    with pytest.raises(vtpu.ParamError, match="no experts uploaded for layer 140"):
        client.experts_run(140, x, expert_ids=ids, weights=w)
    # half a layer: experts 2-3 never arrive
    client.compute("CEXPERTS", {"mode": "load", "layer": 141, "experts": 4, "hidden": 8, "intermediate": 8, "replace": True},
                   {"gate_up": gu[:2], "down": dn[:2]})
    with pytest.raises(vtpu.ParamError, match="missing experts 2-3"):
        client.experts_run(141, x, expert_ids=ids, weights=w)
    with pytest.raises(vtpu.ParamError, match="already uploaded"):
        client.compute("CEXPERTS", {"mode": "load", "layer": 141, "experts": 4, "hidden": 8, "intermediate": 8, "first": 1},
                       {"gate_up": gu[1:2], "down": dn[1:2]})
    with pytest.raises(vtpu.ShapeError, match="holds experts of"):
        client.compute("CEXPERTS", {"mode": "load", "layer": 141, "experts": 4, "hidden": 8, "intermediate": 8, "format": "int8", "first": 2},
                       {"gate_up": gu[2:], "down": dn[2:]})
    with pytest.raises(vtpu.ShapeError):
        client.experts_load(142, gu, dn[:, :, :4])  # I differs between gate_up and down
    info = client.experts_load(143, torch.from_numpy(gu).bfloat16(), dn, chunk_bytes=1)  # one expert per request
    assert info["complete"] and info["received"] == 4 and info["experts"] == 4
    with pytest.raises(vtpu.ShapeError):
        client.experts_run(143, x[:, :4], expert_ids=ids, weights=w)
    with pytest.raises(vtpu.ParamError, match="outside"):
        client.experts_run(143, x, expert_ids=ids + 7, weights=w)
    with pytest.raises(vtpu.ParamError):
        client.experts_load(144, gu, dn, format="int3")
    with pytest.raises(vtpu.ParamError, match="threads"):
        client.experts_load(144, gu, dn, threads=-1)
    assert client.experts_drop(141) == 1 and client.experts_drop(143) == 1
    client.ping()  # still serving


@pytest.mark.skipif(not CLI_BUILT, reason=NOT_BUILT)
def test_sidecar_killed_mid_generation_raises():
    m = tiny_model()
    with vtpu.connect(timeout=30) as c:  # its own sidecar, killed below
        vq.hook(m, c)
        calls = [0]

        def kill_on_third(*_):
            calls[0] += 1
            if calls[0] == 3:
                c.sidecar.proc.kill()

        m.model.layers[2].register_forward_pre_hook(kill_on_third)
        t = time.monotonic()
        with pytest.raises(vtpu.SidecarError, match="exited"):
            m.generate(prompts(1, 6), max_new_tokens=16, do_sample=False)
        assert time.monotonic() - t < 10


def test_external_sidecar_killed_mid_generation_raises(fresh_sidecar):
    m = tiny_model()
    with vtpu.connect(fresh_sidecar.address, timeout=2) as c:  # not ours: noticed by the timeout
        vq.hook(m, c)
        calls = [0]

        def kill_on_third(*_):
            calls[0] += 1
            if calls[0] == 3:
                fresh_sidecar.proc.kill()
                fresh_sidecar.proc.wait()

        m.model.layers[1].register_forward_pre_hook(kill_on_third)
        t = time.monotonic()
        with pytest.raises(vtpu.SidecarError):
            m.generate(prompts(1, 6), max_new_tokens=16, do_sample=False)
        assert time.monotonic() - t < 10
