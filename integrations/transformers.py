"""``attn_implementation="vtpu_sparse"`` for transformers models (Qwen3 and alike).

Importing this module registers an attention function and a mask function under the
name ``vtpu_sparse``::

    import vtpu.integrations.transformers as vt
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="vtpu_sparse")
    vt.configure(model, window=256, global_tokens=[0])   # optional: sparse attention

With no window configured the function computes exact causal attention, so switching
the implementation never changes a model's outputs beyond float rounding. The window
lives in vTPU's settings (``config.vtpu_window`` / ``config.vtpu_global_tokens``, or the
process-wide :func:`configure`), not in ``use_sliding_window``: transformers' sliding
caches evict old keys, global tokens among them.

Masks: the registered mask function returns ``None`` when the batch is plain causal
(no padding, queries at the end of the keys), else transformers' boolean mask. The
attention function (one opaque op, ``vtpu::sparse_attention`` in
:mod:`vtpu.integrations.attention_op`, so ``torch.compile`` works) accepts a mask that is
the causal rule over left-padded rows, possibly with trailing keys hidden from every query
(a static cache's empty slots, which it cuts off); right padding, sliding windows or custom
patterns raise ``ValueError`` instead of being ignored.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, causal_mask_function, sdpa_mask

from .attention_op import sparse_attention

__all__ = ["NAME", "configure", "settings", "kv_layer", "vtpu_sparse_attention", "vtpu_sparse_mask", "register"]

NAME = "vtpu_sparse"

_GLOBAL: dict[str, Any] = {"window": None, "global_tokens": (), "client": None, "kv_layer": None}


def configure(
    model: Any = None,
    *,
    window: int | None = None,
    global_tokens: Iterable[int] = (),
    kv_layer: int | None = None,
    client: Any = None,
) -> None:
    """Set the sparsity of ``vtpu_sparse`` attention.

    Parameters
    ----------
    model : transformers.PreTrainedModel or PretrainedConfig, optional
        Given: the settings go to its config (``vtpu_window``, ``vtpu_global_tokens``;
        saved with the model) and override the process-wide ones for it. ``None``: set
        the process-wide settings (and ``client``).
    window : int, optional
        Local window in tokens (a query sees the ``window`` latest positions up to its
        own); ``None`` is dense causal attention.
    global_tokens : iterable of int
        Absolute positions that see and are seen by every position (within causality).
    kv_layer : int, optional
        Keep keys and values in the sidecar's KV cache too, layer ``i`` of the model at
        cache layer ``kv_layer + i``: outside autograd, each call then sends only the new
        positions' keys and values (``kv_put``) and CATTEND reads the rest from the store.
        The cache is keyed by layer, head, position and batch row only, so give models
        or concurrent generations sharing a sidecar disjoint layer ranges. ``None``
        (default): keys and values travel with every call.
    client : vtpu.Client, optional
        Process-wide only: the client to use instead of the integrations' default.
    """
    if window is not None and int(window) < 1:
        raise ValueError(f"window must be >= 1 or None, got {window}")
    if kv_layer is not None and int(kv_layer) < 0:
        raise ValueError(f"kv_layer must be >= 0 or None, got {kv_layer}")
    g = [int(t) for t in global_tokens]
    if model is None:
        _GLOBAL.update(window=window, global_tokens=tuple(g), client=client, kv_layer=kv_layer)
        return
    if client is not None:
        raise ValueError("a client is process-wide: call configure(client=...) without a model")
    cfg = getattr(model, "config", model)
    for c in (cfg, getattr(cfg, "text_config", None)):  # multimodal wrappers keep the decoder's settings there
        if c is not None:
            c.vtpu_window, c.vtpu_global_tokens, c.vtpu_kv_layer = window, g, kv_layer


def settings(config: Any = None) -> tuple[int | None, tuple[int, ...]]:
    """``(window, global_tokens)`` in effect for a model config (its own, else process-wide)."""
    if config is not None and hasattr(config, "vtpu_window"):
        return config.vtpu_window, tuple(getattr(config, "vtpu_global_tokens", ()) or ())
    return _GLOBAL["window"], _GLOBAL["global_tokens"]


def kv_layer(config: Any = None) -> int | None:
    """First KV-cache layer of a model (its own setting, else process-wide), or ``None``."""
    if config is not None and hasattr(config, "vtpu_window"):
        return getattr(config, "vtpu_kv_layer", None)
    return _GLOBAL["kv_layer"]


def vtpu_sparse_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function: Any = causal_mask_function,
    attention_mask: torch.Tensor | None = None,
    allow_is_causal_skip: bool = True,
    **kwargs: Any,
) -> torch.Tensor | None:
    """Mask function for ``vtpu_sparse``: ``None`` when CATTEND's own causal rule is the
    mask (no padding, queries aligned to the end of the keys), else the boolean
    (B, 1, q, kv) mask of :func:`transformers.masking_utils.sdpa_mask` for the attention
    function to check."""
    plain = (
        allow_is_causal_skip
        and mask_function is causal_mask_function
        # while compiling, the mask's values are not known: the attention op reads them
        and (attention_mask is None or (not torch.compiler.is_compiling() and bool(attention_mask.all())))
        and q_offset + q_length == kv_offset + kv_length
    )
    if plain:
        return None
    return sdpa_mask(
        batch_size=batch_size,
        q_length=q_length,
        kv_length=kv_length,
        q_offset=q_offset,
        kv_offset=kv_offset,
        mask_function=mask_function,
        attention_mask=attention_mask,
        allow_is_causal_skip=False,
        **kwargs,
    )


def vtpu_sparse_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    sliding_window: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: CATTEND on (B, H, S, D) states -> (B, Sq, H, D)."""
    if dropout:
        raise ValueError("vtpu_sparse has no attention dropout; set attention_dropout=0")
    if sliding_window is not None:
        raise ValueError(
            "this layer uses transformers' sliding window; set use_sliding_window=False and configure the window with "
            "vtpu.integrations.transformers.configure(model, window=...)"
        )
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    cfg = getattr(module, "config", None)
    window, global_tokens = settings(cfg)
    base = kv_layer(cfg)
    grads = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad)
    layer = -1
    if base is not None and not grads:
        idx = getattr(module, "layer_idx", None)
        if idx is None:
            raise ValueError("kv_layer needs attention modules that know their layer_idx")
        layer = base + int(idx)
    o, _ = sparse_attention(query, key, value, attention_mask, window, list(global_tokens), causal, scaling, grads, layer)
    return o.transpose(1, 2).contiguous(), None


def register() -> None:
    """Register ``vtpu_sparse`` with transformers (done on import; idempotent)."""
    AttentionInterface.register(NAME, vtpu_sparse_attention)
    AttentionMaskInterface.register(NAME, vtpu_sparse_mask)


register()
