"""The benchmark's seeded Qwen3-MoE written as a GGUF file (arch ``qwen3moe``) for llama.cpp.

The same weights as the sidecar variants (``qwen3_models.random_dense`` and
``random_expert_chunks`` with the same seed): the experts quantised by the ``gguf`` package to
Q8_0 or Q4_0 (llama.cpp's own block formats; Q4_0 is what its ``--cpu-moe`` users run on CPU),
the dense half in the dtype the torch half of the hybrid run has (F32, or BF16 for the
full-size run, or Q8_0 beside the hybrid's int8 dense half: its matrices quantised from the
values the hybrid converted, ``dense_source``, the token embeddings kept in that dtype since a
lookup's format decides no speed; norms and routers stay F32, as llama.cpp's converter keeps
them, which holds the same values). Tensor names and metadata follow llama.cpp's ``convert_hf_to_gguf.py`` for
Qwen3-MoE; the tokenizer is the real Qwen3 one (``qwen3_models.load_tokenizer``), cut to the
config's vocabulary for reduced shapes. The file is streamed: every tensor's header first, then
the data, one layer's experts in float32 at a time (quantised, written, dropped), so a model
bigger than memory can be written; or the experts' bytes copied from a GGUF written before with
the same weights, when only the dense half's format differs (minutes instead of a quarter hour
at full size).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: GGUF expert formats this writer makes, by the name the benchmark uses.
QTYPES = ("Q8_0", "Q4_0")
#: dtypes of the dense half (matrices; norms and routers are F32 either way).
DENSE = ("F32", "BF16", "Q8_0")


def _tokenizer(writer: Any, config: Any) -> None:
    """Qwen3's BPE vocabulary as convert_hf_to_gguf writes it (gpt2 model, qwen2 pre-tokenizer)."""
    import json

    import gguf

    from vtpu.integrations import qwen3_models as qm

    tok = qm.load_tokenizer()
    n = config.vocab_size
    by_id = {i: t for t, i in tok.get_vocab().items()}
    added = {t.content for t in tok.added_tokens_decoder.values()}
    tokens, types = [], []
    for i in range(n):
        t = by_id.get(i)
        if t is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(t)
            types.append(gguf.TokenType.CONTROL if t in added else gguf.TokenType.NORMAL)
    merges = json.loads((qm.tokenizer_dir() / "tokenizer.json").read_text())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    writer.add_pad_token_id(config.pad_token_id)


_DENSE = {  # transformers name (after "model.layers.N.") -> GGUF name (after "blk.N.")
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate.weight": "ffn_gate_inp.weight",
}
_TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}


#: Dense tensors stored in the run's dense dtype; the rest (norms, routers) stay F32.
_MATRICES = ("token_embd.weight", "output.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight")


def _dense_type(gname: str, dense: str, source: str) -> Any:
    """GGML type of a dense tensor (BF16, Q8_0), or None for plain F32."""
    import gguf

    if dense == "F32" or not gname.endswith(_MATRICES):
        return None
    if dense == "Q8_0" and gname != "token_embd.weight":
        return gguf.GGMLQuantizationType.Q8_0
    return gguf.GGMLQuantizationType.BF16 if source == "BF16" else None


def _experts_from(path: str | Path, config: Any, qtype: Any) -> dict[str, Any]:
    """The expert tensors of a GGUF written before (name -> its bytes, memory-mapped), checked
    against the config and expert type this file is written with."""
    import gguf

    E, H, I = config.num_experts, config.hidden_size, config.moe_intermediate_size
    want = {f"blk.{layer}.{g}.weight": gguf.quants.quant_shape_to_byte_shape(shape, qtype)
            for layer in range(config.num_hidden_layers)
            for g, shape in (("ffn_gate_exps", (E, I, H)), ("ffn_up_exps", (E, I, H)), ("ffn_down_exps", (E, H, I)))}
    got = {t.name: t for t in gguf.GGUFReader(str(path)).tensors if t.name in want}
    for name, shape in want.items():
        t = got.get(name)
        if t is None or t.tensor_type != qtype or tuple(t.data.shape) != tuple(shape):
            raise ValueError(f"{path}: {name} is missing or not {qtype.name} of byte shape {shape}")
    return {name: got[name].data for name in want}


def write(path: str | Path, config: Any, qtype: str, *, seed: int = 0, dense: str = "F32", chunk_experts: int = 8,
          experts_from: str | Path | None = None, dense_source: str | None = None) -> Path:
    """Write the seeded model of ``config`` (experts in ``qtype``, dense matrices in ``dense``) to
    ``path``; returns it. ``chunk_experts`` must be what the sidecar run used (it seeds the chunks).
    ``experts_from``: a GGUF this function wrote with the same config, seed, ``qtype`` and
    ``chunk_experts``, whose expert bytes are copied instead of generated and quantised again.
    ``dense_source``: the dtype the dense weights are generated in before ``dense`` is applied
    (``F32`` or ``BF16``; default F32 for F32, else BF16)."""
    import gguf
    import torch

    from vtpu.integrations import qwen3_models as qm
    from vtpu.integrations.qwen3_pretrained import empty_model

    if qtype not in QTYPES:
        raise ValueError(f"qtype must be one of {QTYPES}, got {qtype!r}")
    if dense not in DENSE:
        raise ValueError(f"dense must be one of {DENSE}, got {dense!r}")
    source = dense_source or ("F32" if dense == "F32" else "BF16")
    if source not in ("F32", "BF16") or (dense == "BF16" and source != "BF16"):
        raise ValueError(f"dense_source must be F32 or BF16 (BF16 for BF16 dense), got {dense_source!r}")
    q = getattr(gguf.GGMLQuantizationType, qtype)
    copied = _experts_from(experts_from, config, q) if experts_from is not None else None
    std = config.initializer_range
    model = empty_model(config)
    qm.random_dense(model, torch.float32 if source == "F32" else torch.bfloat16, seed=seed, std=std)
    w = gguf.GGUFWriter(str(path), "qwen3moe")
    w.add_name("vtpu-bench-qwen3moe-random")
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_key_length(config.head_dim)
    w.add_value_length(config.head_dim)
    w.add_rope_freq_base(config.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_expert_count(config.num_experts)
    w.add_expert_used_count(config.num_experts_per_tok)
    w.add_expert_feed_forward_length(config.moe_intermediate_size)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if qtype == "Q8_0" else gguf.LlamaFileType.MOSTLY_Q4_0)
    _tokenizer(w, config)
    dense_params = []
    for name, p in model.named_parameters():
        if ".mlp.experts." in name:
            continue
        if name in _TOP:
            dense_params.append((_TOP[name], p))
            continue
        layer, rest = name.removeprefix("model.layers.").split(".", 1)
        dense_params.append((f"blk.{layer}.{_DENSE[rest]}", p))
    for gname, p in dense_params:  # headers first (shapes and types), the data below in the same order
        raw = _dense_type(gname, dense, source)
        if raw is None:
            w.add_tensor_info(gname, tuple(p.shape), np.dtype(np.float32), p.numel() * 4)
        else:
            byte_shape = gguf.quants.quant_shape_to_byte_shape(tuple(p.shape), raw)
            w.add_tensor_info(gname, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=raw)
    E, H, I = config.num_experts, config.hidden_size, config.moe_intermediate_size
    experts = (("ffn_gate_exps", (E, I, H)), ("ffn_up_exps", (E, I, H)), ("ffn_down_exps", (E, H, I)))
    for layer in range(config.num_hidden_layers):
        for gname, shape in experts:
            byte_shape = gguf.quants.quant_shape_to_byte_shape(shape, q)
            w.add_tensor_info(f"blk.{layer}.{gname}.weight", byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for gname, p in dense_params:
        a, raw = p.detach().float().numpy(), _dense_type(gname, dense, source)
        w.write_tensor_data(a if raw is None else gguf.quants.quantize(a, raw))
    del model, dense_params
    if copied is not None:
        for arr in copied.values():  # the same order as the headers: layer by layer, gate, up, down
            w.write_tensor_data(arr)
        w.close()
        return Path(path)
    chunks = qm.random_expert_chunks(seed=seed, per=chunk_experts, std=std)
    for layer in range(config.num_hidden_layers):
        gate_up, down = np.empty((E, 2 * I, H), np.float32), np.empty((E, H, I), np.float32)
        for first, gu, dn in chunks(layer, E, H, I):
            gate_up[first : first + len(gu)], down[first : first + len(dn)] = gu, dn
        for arr in (gate_up[:, :I], gate_up[:, I:], down):
            w.write_tensor_data(gguf.quants.quantize(np.ascontiguousarray(arr), q))
        del gate_up, down
    w.close()
    return Path(path)
