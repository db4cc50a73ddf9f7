"""Qwen3-MoE with its routed experts in the vTPU sidecar (ONNX Runtime), in one call.

    import vtpu.integrations.qwen3 as vq
    model = Qwen3MoeForCausalLM.from_pretrained(path)    # or built from a config
    vq.hook(model, expert_format="int8")                 # upload experts, switch to "vtpu"
    vq.hook(model, "fp32", lm_head=True)                 # ... and the lm_head's product too
    vq.hook(model, "q4", lm_head=True, projections=True, dense_format="bf16")  # ... and every attention projection
    model = vq.from_pretrained(path, expert_format="q4") # or: experts streamed from the shards, never in torch
    model.generate(ids, max_new_tokens=32)               # unchanged
    vq.routing_stats(model)                              # tokens per expert, per layer
    vq.unhook(model)                                     # back to transformers' experts

The router, attention and everything else stay in PyTorch; each MoE layer sends its
hidden states and transformers' routing to the sidecar, which groups tokens by expert,
runs each active expert's SwiGLU FFN and returns the weighted sum. Importing this module
registers ``experts_implementation="vtpu"`` (see :mod:`vtpu.integrations.experts`).

The hooked experts are one opaque op per layer (``torch.compile`` works), differentiable
(the backward runs in torch), and never stale: weights changed in torch
(``load_state_dict``, an optimizer step, in-place edits) are uploaded again before the next
forward; after edits through ``param.data`` call :func:`refresh`.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

from . import resolve_client
from .experts import refresh as refresh_module
from .experts import NAME, ExpertsBinding, bind, binding, unbind
from .qwen3_pretrained import CheckpointError, from_pretrained
from .sidecar_linear import SidecarLinear, offload_linear
from ..ops_dense import DENSE_FORMATS

__all__ = ["from_pretrained", "CheckpointError", "hook", "offload_head", "offload_projections", "move_dense", "unhook", "refresh", "expert_modules", "routing_stats", "reset_stats", "load_matrix", "format_accuracy", "EXPERT_FORMATS"]

#: Weight formats ``hook`` accepts.
EXPERT_FORMATS = ("fp32", "int8", "q8", "q4")
#: A decoder layer's attention projections, in their sidecar ids' order (:func:`offload_projections`).
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def expert_modules(model: torch.nn.Module) -> dict[int, torch.nn.Module]:
    """The fused experts module of every MoE decoder layer, by layer index."""
    out: dict[int, torch.nn.Module] = {}
    for name, m in model.named_modules():
        if hasattr(m, "gate_up_proj") and hasattr(m, "down_proj") and name.endswith("mlp.experts"):
            parts = name.split(".")
            out[int(parts[parts.index("layers") + 1])] = m
    return out


def hook(
    model: torch.nn.Module,
    client: Any = None,
    expert_format: str = "fp32",
    layers: Iterable[int] | None = None,
    *,
    layer_base: int = 0,
    group: int | None = None,
    threads: int | None = None,
    release: bool = False,
    lm_head: bool = False,
    projections: bool = False,
    dense_format: str = "fp32",
) -> torch.nn.Module:
    """Upload a Qwen3-MoE model's experts to the sidecar and route them there.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A Qwen3-MoE model (any transformers 5.x model whose experts use the fused
        ``gate_up_proj`` / ``down_proj`` layout with SwiGLU works too).
    client : vtpu.Client, optional
        Default: :func:`vtpu.integrations.default_client`.
    expert_format : {"fp32", "int8", "q8", "q4"}
        ``int8``: per-channel 7-bit codes in int8 with per-call activation quantisation
        (about 4× less expert memory, faster); ``q8`` / ``q4``: 8-bit weights in blocks of
        32 / 4-bit in blocks of 128, int8 activations per block (ONNX Runtime's MatMulNBits;
        ``q4`` on the sidecar's native kernel; ``fp32`` on its native float kernel). See the
        README for each one's accuracy cost.
    layers : iterable of int, optional
        Decoder layers to offload (default all MoE layers); the others keep
        transformers' eager experts.
    layer_base : int
        Sidecar layer id of decoder layer 0 (give models sharing a sidecar disjoint ranges).
    group : int, optional
        Experts per ONNX Runtime session in the sidecar.
    threads : int, optional
        Threads of each layer in the sidecar (ONNX Runtime's per session, or the native
        kernel's; default one per core);
        e.g. ``torch.get_num_threads()`` for a like-for-like comparison.
    release : bool
        Free the model's torch copies of the offloaded expert weights after the upload (the
        Python process then holds no expert weights; :func:`unhook` is no longer possible).
    lm_head : bool
        Move the lm_head too (:func:`offload_head`): its weight goes to the sidecar, and a
        decode token's product over the vocabulary runs there on every core. Inference only;
        :func:`unhook` is then refused.
    projections : bool
        Move every decoder layer's attention projections too (:func:`offload_projections`),
        with the same limits.
    dense_format : {"fp32", "bf16"}
        How the sidecar holds the moved matrices (``bf16``: half the bytes a token reads,
        exact for a bf16 checkpoint; the products stay float32).

    Returns
    -------
    torch.nn.Module
        ``model``, now with ``experts_implementation="vtpu"``.

    Raises
    ------
    ValueError
        Unknown format, a layer without MoE experts, a model without any.
    """
    if expert_format not in EXPERT_FORMATS:
        raise ValueError(f"expert_format must be one of {EXPERT_FORMATS}, got {expert_format!r}")
    if dense_format not in DENSE_FORMATS:
        raise ValueError(f"dense_format must be one of {DENSE_FORMATS}, got {dense_format!r}")
    mods = expert_modules(model)
    if not mods:
        raise ValueError(f"{type(model).__name__} has no fused MoE experts to offload")
    chosen = sorted(mods) if layers is None else sorted({int(i) for i in layers})
    missing = [i for i in chosen if i not in mods]
    if missing:
        raise ValueError(f"layers {missing} have no MoE experts (MoE layers: {sorted(mods)})")
    resolve_client(client)  # fail before changing anything when no sidecar is reachable
    if not hasattr(model, "_vtpu_prev_experts"):
        model._vtpu_prev_experts = model.config._experts_implementation
    for i in chosen:
        bind(mods[i], layer_base + i, client=client, format=expert_format, group=group, threads=threads, release=release)
    model.set_experts_implementation(NAME)
    move_dense(model, client, lm_head=lm_head, projections=projections, layer_base=layer_base, threads=threads, format=dense_format)
    return model


def move_dense(model: torch.nn.Module, client: Any = None, *, lm_head: bool, projections: bool, layer_base: int = 0,
               threads: int | None = None, format: str = "fp32") -> None:
    """What ``hook`` and ``from_pretrained`` do for ``lm_head=`` / ``projections=``: :func:`offload_head`,
    then :func:`offload_projections`, each when asked."""
    if lm_head:
        offload_head(model, client, layer_base=layer_base, threads=threads, format=format)
    if projections:
        offload_projections(model, client, layer_base=layer_base, threads=threads, format=format)


def offload_head(model: torch.nn.Module, client: Any = None, *, layer_base: int = 0, threads: int | None = None,
                 format: str = "fp32") -> SidecarLinear:
    """Move the model's lm_head into the sidecar (a dense layer with id ``layer_base +
    num_hidden_layers``, after the experts' ids); returns the :class:`SidecarLinear` now in its place.

    Raises
    ------
    TypeError
        The model's lm_head is not an ``nn.Linear`` (offloaded already, or another kind).
    """
    return offload_linear(model, "lm_head", layer_base + int(model.config.num_hidden_layers), client, threads=threads, format=format)


def offload_projections(model: torch.nn.Module, client: Any = None, *, layer_base: int = 0, threads: int | None = None,
                        format: str = "fp32") -> list[SidecarLinear]:
    """Move every decoder layer's attention projections (:data:`PROJECTIONS`) into the sidecar.

    Layer ``i``'s ``PROJECTIONS[j]`` becomes dense layer ``layer_base + L + 1 + 4i + j`` (L the
    model's layers: after the experts' ids and the lm_head's). A decode token reads them all; in
    torch each is a one-row product on one core. Returns the :class:`SidecarLinear` modules.

    Raises
    ------
    TypeError
        A projection is not an ``nn.Linear`` (offloaded already, or another kind); those moved
        before it stay moved.
    """
    L = int(model.config.num_hidden_layers)
    attn = [m.self_attn for m in model.model.layers]
    return [offload_linear(a, name, layer_base + L + 1 + len(PROJECTIONS) * i + j, client, threads=threads, format=format)
            for i, a in enumerate(attn) for j, name in enumerate(PROJECTIONS)]


def unhook(model: torch.nn.Module, *, drop: bool = True) -> torch.nn.Module:
    """Undo :func:`hook`: the previous experts implementation, layers released in the sidecar.

    Raises ``ValueError`` (changing nothing) when ``hook(..., release=True)`` freed the weights.
    """
    if any(b.released for b in _bindings(model).values()):
        raise ValueError("hook(release=True) freed this model's expert weights: they live only in the sidecar now")
    moved = [n for n, m in model.named_modules() if isinstance(m, SidecarLinear)]
    if moved:
        raise ValueError(f"hook(lm_head=True / projections=True) moved {', '.join(moved[:3])}{' ...' if len(moved) > 3 else ''} into the sidecar: "
                         "those weights are not in torch any more")
    for m in expert_modules(model).values():
        unbind(m, drop=drop)
    prev = model.__dict__.pop("_vtpu_prev_experts", None)
    if prev is not None and prev != NAME:
        model.set_experts_implementation(prev)
    return model


def refresh(model: torch.nn.Module) -> int:
    """Upload every offloaded layer's expert weights again now; returns how many layers.

    Changes through the parameters themselves (``load_state_dict``, optimizer steps, in-place
    ops, assigning a new tensor) are detected and uploaded before the next forward on their
    own; only edits through ``param.data`` (which bypass the version counter) need this.
    """
    mods = [m for m in expert_modules(model).values() if binding(m) is not None]
    for m in mods:
        refresh_module(m)
    return len(mods)


def _bindings(model: torch.nn.Module) -> dict[int, ExpertsBinding]:
    return {i: b for i, m in expert_modules(model).items() if (b := binding(m)) is not None}


def routing_stats(model: torch.nn.Module) -> dict[int, dict[str, Any]]:
    """Routing statistics of the offloaded layers, by decoder layer index.

    Returns
    -------
    dict
        Per layer: ``last`` (tokens per expert in the latest forward, int64 (E,) or None),
        ``total`` (summed since hook or :func:`reset_stats`), ``calls``, ``sidecar_ms``
        (time inside the sidecar's expert runtime), ``call_ms`` (the calls' time as Python
        waits for them), ``layer`` (its sidecar id), ``format``.
    """
    return {
        i: {"layer": b.layer, "format": b.format, "last": None if b.last_counts is None else b.last_counts.copy(),
            "total": b.total_counts.copy(), "calls": b.calls, "sidecar_ms": b.sidecar_ms, "call_ms": b.call_ms}
        for i, b in _bindings(model).items()
    }


def reset_stats(model: torch.nn.Module) -> None:
    """Zero every offloaded layer's routing statistics."""
    for b in _bindings(model).values():
        b.reset()


def load_matrix(model: torch.nn.Module, which: str = "total") -> np.ndarray:
    """Tokens per expert as a (layers, E) matrix over the offloaded layers (``total`` or ``last``)."""
    st = routing_stats(model)
    rows = [st[i][which] if st[i][which] is not None else np.zeros_like(st[i]["total"]) for i in sorted(st)]
    return np.stack(rows) if rows else np.zeros((0, 0), np.int64)


@torch.no_grad()
def format_accuracy(model: torch.nn.Module, input_ids: torch.Tensor, expert_format: str = "int8", *, client: Any = None, layer_base: int = 0) -> dict[str, float]:
    """Accuracy cost of an expert format on one batch: the model's logits with
    transformers' own experts against the same model hooked with ``expert_format``.

    ``model`` must not be hooked; it is unhooked again afterwards.

    Returns
    -------
    dict
        ``max_abs_dlogit`` (largest |Δlogit| over every position and token),
        ``top1_agreement`` (fraction of positions whose argmax agrees), ``positions``.
    """
    if expert_modules(model) and _bindings(model):
        raise ValueError("format_accuracy needs an unhooked model (call unhook first)")
    ref = model(input_ids).logits.float()
    hook(model, client, expert_format, layer_base=layer_base)
    try:
        out = model(input_ids).logits.float()
    finally:
        unhook(model)
    agree = (out.argmax(-1) == ref.argmax(-1)).float()
    return {"max_abs_dlogit": float((out - ref).abs().max()), "top1_agreement": float(agree.mean()), "positions": int(agree.numel())}
