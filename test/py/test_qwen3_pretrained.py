"""vtpu.integrations.qwen3.from_pretrained: experts streamed from safetensors shards into the sidecar."""

from __future__ import annotations

import json
import shutil
import weakref

import pytest
import torch

pytest.importorskip("transformers")
from safetensors.torch import load_file, save_file  # noqa: E402

import vtpu.integrations.qwen3 as vq  # noqa: E402
from vtpu.errors import ShapeError  # noqa: E402
from vtpu.integrations import qwen3_models as qm  # noqa: E402
from vtpu.integrations.qwen3_pretrained import Checkpoint  # noqa: E402
from vtpu.integrations.sidecar_linear import SidecarLinear  # noqa: E402

VOCAB = 512
BASE = 600  # sidecar layer ids of this file's models (the session's sidecar is shared)
SPECIAL = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)


def tiny(seed: int = 0, **over):
    return qm.build_model(qm.moe_config("tiny", vocab_size=VOCAB, num_hidden_layers=3, **SPECIAL, **over), seed=seed)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny Qwen3-MoE as save_pretrained writes it, in several small shards, and the model."""
    model = tiny()
    d = tmp_path_factory.mktemp("q3moe")
    model.save_pretrained(d, max_shard_size="100KB")
    assert len(list(d.glob("*.safetensors"))) > 3
    return d, model


@pytest.fixture
def sidecar_layers(client):
    """Drops every layer this file's tests uploaded, also when a test fails."""
    yield client
    for info in client.experts_info() + client.dense_info():
        if BASE <= info["layer"] < BASE + 100:
            client.experts_drop(info["layer"])


def ours(client) -> list[int]:
    return [i["layer"] for i in client.experts_info() if BASE <= i["layer"] < BASE + 100]


def padded_batch():
    ids = torch.randint(3, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    ids[1, :4], mask[1, :4] = 0, 0  # left padding
    return ids, mask


@torch.no_grad()
def test_logits_and_greedy_tokens_match_the_hooked_model(saved, sidecar_layers):
    d, model = saved
    ids, mask = padded_batch()
    ref = model(ids, attention_mask=mask).logits
    ref_tokens = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    loaded = vq.from_pretrained(d, expert_format="fp32", client=sidecar_layers, layer_base=BASE, device="cpu")
    assert loaded.config._experts_implementation == "vtpu" and loaded.device.type == "cpu"
    out = loaded(ids, attention_mask=mask).logits
    assert (out - ref)[mask.bool()].abs().max().item() < 1e-4
    assert torch.equal(loaded.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False), ref_tokens)
    vq.hook(model, sidecar_layers, "fp32", layer_base=BASE + 10)
    try:
        hooked = model(ids, attention_mask=mask).logits
    finally:
        vq.unhook(model)
    assert (out - hooked)[mask.bool()].abs().max().item() < 1e-4
    st = vq.routing_stats(loaded)
    assert sorted(st) == [0, 1, 2] and all(s["calls"] > 0 for s in st.values())
    with pytest.raises(ValueError, match="freed"):
        vq.unhook(loaded)


@torch.no_grad()
def test_lm_head_too_matches_and_a_tied_one_keeps_its_embeddings(saved, sidecar_layers, tmp_path):
    d, model = saved
    ids, mask = padded_batch()
    loaded = vq.from_pretrained(d, expert_format="fp32", client=sidecar_layers, layer_base=BASE, lm_head=True)
    assert isinstance(loaded.lm_head, SidecarLinear) and loaded.lm_head.layer == BASE + 3  # after the 3 layers' experts
    assert (loaded(ids, attention_mask=mask).logits - model(ids, attention_mask=mask).logits)[mask.bool()].abs().max().item() < 1e-4
    tied = tiny(seed=1, tie_word_embeddings=True)
    tied.save_pretrained(tmp_path)
    loaded = vq.from_pretrained(tmp_path, expert_format="fp32", client=sidecar_layers, layer_base=BASE + 20, lm_head=True)
    assert loaded.get_input_embeddings().weight.shape == (VOCAB, tied.config.hidden_size)  # shared, so not freed
    assert (loaded(ids).logits - tied(ids).logits).abs().max().item() < 1e-4
    both = vq.from_pretrained(d, expert_format="fp32", client=sidecar_layers, layer_base=BASE + 40, lm_head=True, projections=True)
    assert isinstance(both.model.layers[0].self_attn.q_proj, SidecarLinear) and both.model.layers[0].self_attn.q_proj.layer == BASE + 44
    assert (both(ids, attention_mask=mask).logits - model(ids, attention_mask=mask).logits)[mask.bool()].abs().max().item() < 1e-4
    with pytest.raises(vq.CheckpointError, match="dense_format"):
        vq.from_pretrained(d, client=sidecar_layers, layer_base=BASE + 60, dense_format="q4")


@torch.no_grad()
def test_q4_experts_equal_hook_q4(saved, sidecar_layers):
    d, model = saved
    ids, _ = padded_batch()
    loaded = vq.from_pretrained(d, client=sidecar_layers, layer_base=BASE)  # q4 by default
    assert {i["format"] for i in sidecar_layers.experts_info() if i["layer"] in ours(sidecar_layers)} == {"q4"}
    vq.hook(model, sidecar_layers, "q4", layer_base=BASE + 10)
    try:
        hooked = model(ids).logits
    finally:
        vq.unhook(model)
    assert (loaded(ids).logits - hooked).abs().max().item() < 1e-5  # same weights, same quantisation


@torch.no_grad()
def test_streamed_one_tensor_at_a_time_and_torch_holds_no_experts(saved, sidecar_layers, monkeypatch):
    d, model = saved
    alive, peak = [0], [0]
    read = Checkpoint.expert

    def counted(self, *a):
        t = read(self, *a)
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        weakref.finalize(t, lambda: alive.__setitem__(0, alive[0] - 1))
        return t

    sent: list[tuple[int, int, int]] = []
    compute = sidecar_layers.compute

    def recording(op, params, tensors=None, **kw):
        if op == "CEXPERTS" and params.get("mode") == "load":
            sent.append((params["layer"], params["first"], sum(t.nbytes for t in tensors.values())))
        return compute(op, params, tensors, **kw)

    monkeypatch.setattr(Checkpoint, "expert", counted)
    monkeypatch.setattr(sidecar_layers, "compute", recording)
    cfg = model.config
    per_expert = 3 * cfg.hidden_size * cfg.moe_intermediate_size * 4
    loaded = vq.from_pretrained(d, expert_format="q8", client=sidecar_layers, layer_base=BASE, chunk_bytes=3 * per_expert)
    assert peak[0] == 1  # each expert tensor is copied into its chunk and dropped before the next read
    assert [(l_, f) for l_, f, _ in sent] == [(BASE + i, f) for i in range(3) for f in (0, 3, 6)]
    assert max(b for *_, b in sent) <= 3 * per_expert  # never more than a chunk in flight
    expert_params = [p for n, p in loaded.named_parameters() if ".mlp.experts." in n]
    assert len(expert_params) == 6 and all(p.numel() == 0 for p in expert_params)
    dense = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts." not in n)
    assert sum(p.numel() for p in loaded.parameters()) == dense
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])


@torch.no_grad()
def test_fused_layout_and_config_overrides(saved, sidecar_layers, tmp_path):
    d, model = saved
    shutil.copy(d / "config.json", tmp_path / "config.json")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    assert "model.layers.0.mlp.experts.gate_up_proj" in Checkpoint(tmp_path).shapes
    ids, _ = padded_batch()
    loaded = vq.from_pretrained(tmp_path, expert_format="fp32", client=sidecar_layers, layer_base=BASE)
    assert (loaded(ids).logits - model(ids).logits).abs().max().item() < 1e-4
    two = vq.from_pretrained(d, expert_format="fp32", client=sidecar_layers, layer_base=BASE + 20, num_hidden_layers=2)
    assert two.config.num_hidden_layers == 2 and sorted(vq.routing_stats(two)) == [0, 1]


def test_missing_shard_wrong_shape_and_dense_config_leave_the_sidecar_as_it_was(saved, sidecar_layers, tmp_path):
    d, _ = saved
    before = sidecar_layers.experts_info()
    broken = tmp_path / "missing"
    shutil.copytree(d, broken)
    shard = sorted(broken.glob("*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(vq.CheckpointError, match=shard.name) as e:
        vq.from_pretrained(broken, client=sidecar_layers, layer_base=BASE)
    assert e.value.code == "E_PARAM"

    wrong = tmp_path / "wrong"
    shutil.copytree(d, wrong)
    index = json.loads((wrong / "model.safetensors.index.json").read_text())["weight_map"]
    key = "model.layers.2.mlp.experts.5.down_proj.weight"
    tensors = load_file(str(wrong / index[key]))
    tensors[key] = tensors[key][:, :-1].contiguous()
    save_file(tensors, str(wrong / index[key]), metadata={"format": "pt"})
    with pytest.raises(ShapeError, match="experts.5.down_proj") as e:
        vq.from_pretrained(wrong, client=sidecar_layers, layer_base=BASE)
    assert e.value.code == "E_SHAPE"

    dense = tmp_path / "dense"
    qm.build_model(qm.dense_config("tiny", vocab_size=VOCAB, **SPECIAL)).save_pretrained(dense)
    with pytest.raises(vq.CheckpointError, match="not qwen3_moe"):
        vq.from_pretrained(dense, client=sidecar_layers, layer_base=BASE)
    with pytest.raises(vq.CheckpointError, match="no config.json"):
        vq.from_pretrained(tmp_path, client=sidecar_layers, layer_base=BASE)
    with pytest.raises(vq.CheckpointError, match="expert_format"):
        vq.from_pretrained(d, expert_format="q3", client=sidecar_layers, layer_base=BASE)
    assert sidecar_layers.experts_info() == before


def test_failure_during_upload_drops_the_layers_already_uploaded(saved, sidecar_layers, monkeypatch):
    d, _ = saved
    read = Checkpoint.expert

    def failing(self, prefix, e, proj):
        if prefix.startswith("model.layers.2.") and e == 4:
            raise OSError("disk read failed")
        return read(self, prefix, e, proj)

    monkeypatch.setattr(Checkpoint, "expert", failing)
    with pytest.raises(OSError, match="disk read failed"):
        vq.from_pretrained(d, client=sidecar_layers, layer_base=BASE)
    assert ours(sidecar_layers) == []  # layers 0 and 1 were complete, 2 half: all dropped


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the dense half on the GPU, experts in the sidecar)")
@torch.no_grad()
def test_dense_half_on_cuda(saved, sidecar_layers):
    d, model = saved
    ids, mask = padded_batch()
    loaded = vq.from_pretrained(d, expert_format="fp32", client=sidecar_layers, layer_base=BASE, device="cuda")
    assert loaded.device.type == "cuda"
    out = loaded(ids.cuda(), attention_mask=mask.cuda()).logits.cpu()
    assert (out - model(ids, attention_mask=mask).logits)[mask.bool()].abs().max().item() < 1e-3


@torch.no_grad()
def test_seeded_weights_streamed_and_in_torch_are_the_same_model(sidecar_layers):
    """What the benchmark and the 30B-A3B example build: the peer's experts in torch equal the sidecar's."""
    from vtpu.integrations.qwen3_pretrained import empty_model, upload_experts

    cfg = qm.moe_config("tiny", vocab_size=VOCAB, num_hidden_layers=2, **SPECIAL)
    chunks = qm.random_expert_chunks(seed=3, per=3, std=0.1)
    peer, hybrid = empty_model(cfg), empty_model(cfg)
    assert qm.random_dense(peer, torch.float32, seed=3, std=0.1) == qm.random_dense(hybrid, torch.float32, seed=3, std=0.1)
    assert qm.experts_into_torch(peer, chunks) == 2 * 8 * 3 * 64 * 32 * 4
    upload_experts(hybrid, chunks, client=sidecar_layers, expert_format="fp32", layer_base=BASE)
    ids, mask = padded_batch()
    ref, out = peer(ids, attention_mask=mask).logits, hybrid(ids, attention_mask=mask).logits
    assert ref.abs().max() > 0.1 and (out - ref)[mask.bool()].abs().max().item() < 1e-4


@torch.no_grad()
def test_tied_embeddings_and_bf16_dense(sidecar_layers, tmp_path):
    model = tiny(seed=1, tie_word_embeddings=True)
    model.save_pretrained(tmp_path)
    assert "lm_head.weight" not in Checkpoint(tmp_path)
    loaded = vq.from_pretrained(tmp_path, expert_format="fp32", client=sidecar_layers, layer_base=BASE, dtype=torch.bfloat16)
    assert loaded.lm_head.weight is loaded.get_input_embeddings().weight and loaded.lm_head.weight.dtype == torch.bfloat16
    ids, _ = padded_batch()
    ref = model(ids).logits
    assert (loaded(ids).logits.float() - ref).abs().max().item() < 0.05 * ref.abs().max().item()  # bf16 dense half
