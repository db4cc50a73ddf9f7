"""A Qwen3-MoE checkpoint loaded with its experts streamed into the sidecar, never whole in torch.

    import vtpu.integrations.qwen3 as vq
    model = vq.from_pretrained("/models/Qwen3-30B-A3B", expert_format="q4")
    model.generate(ids, max_new_tokens=32)

The model is built on the meta device; the dense weights (attention, norms, routers,
embeddings, lm_head) are read from the safetensors shards one tensor at a time into torch;
each MoE layer's experts are read the same way into chunks of a few experts (float32, at
most ``chunk_bytes``) that are uploaded to the sidecar as they fill, and the sidecar
quantises each expert as it arrives. So neither process ever holds a whole layer, let alone
the whole expert set, in full precision, and the torch model holds no expert parameters
(its fused expert tensors are empty, as after ``hook(release=True)``).

Checkpoint layouts: what ``save_pretrained`` writes for Qwen3-MoE (transformers 4.x and 5.x
alike: ``model.layers.N.mlp.experts.E.{gate_proj,up_proj,down_proj}.weight`` per expert,
the layout of Qwen/Qwen3-30B-A3B), or transformers 5.x's fused in-memory layout
(``model.layers.N.mlp.experts.gate_up_proj`` (E, 2I, H), ``...down_proj`` (E, H, I)), read
an expert at a time.

Everything is checked before the first byte goes to the sidecar (config, shards, every
tensor's name and shape, from the shards' headers); a failure during the upload (a
sidecar error, an unreadable tensor) drops every layer this call uploaded, so no
half-loaded model is left answering.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from vtpu.errors import ParamError, ShapeError

from . import resolve_client
from .experts import NAME, ExpertsBinding, _check_layout, release_weights

__all__ = ["from_pretrained", "CheckpointError", "Checkpoint", "empty_model", "set_parameter", "upload_experts", "CHUNK_BYTES"]

#: Default float32 bytes of experts read into one upload chunk.
CHUNK_BYTES = 64 << 20
_INDEX = "model.safetensors.index.json"
_SINGLE = "model.safetensors"
_EXPERT_PROJ = ("gate_proj", "up_proj", "down_proj")


class CheckpointError(ParamError):
    """A checkpoint that cannot be loaded: no config or shards, a shard or tensor missing, a
    model that is not Qwen3-MoE (``E_PARAM``; wrong tensor shapes are ``ShapeError``)."""


class Checkpoint:
    """The safetensors shards of a checkpoint directory: tensor names, shapes, and reads of one tensor.

    Parameters
    ----------
    path : path-like
        Directory with ``model.safetensors.index.json`` and its shards, or one ``model.safetensors``.

    Raises
    ------
    CheckpointError
        No weights, an index naming a shard that is not there, an unreadable shard header.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        index = self.path / _INDEX
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
        elif (self.path / _SINGLE).is_file():
            weight_map = None
        else:
            raise CheckpointError("E_PARAM", f"{self.path}: no {_INDEX} or {_SINGLE} (safetensors weights) found")
        shards = sorted(set(weight_map.values())) if weight_map else [_SINGLE]
        missing = [s for s in shards if not (self.path / s).is_file()]
        if missing:
            raise CheckpointError("E_PARAM", f"{self.path}: shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} named by {_INDEX} not found")
        self._stack = contextlib.ExitStack()
        self._files: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.where: dict[str, str] = {}
        from safetensors import safe_open

        try:
            for s in shards:
                f = self._stack.enter_context(safe_open(str(self.path / s), framework="pt"))
                self._files[s] = f
                for k in f.keys():
                    self.where[k] = s
                    self.shapes[k] = tuple(f.get_slice(k).get_shape())  # header only, no data read
        except Exception as e:
            self.close()
            raise CheckpointError("E_PARAM", f"{self.path}: unreadable safetensors shard ({e})") from e
        if weight_map:
            absent = sorted(k for k, s in weight_map.items() if self.where.get(k) != s)
            if absent:
                self.close()
                raise CheckpointError("E_PARAM", f"{self.path}: {len(absent)} tensors listed in {_INDEX} are not in their shards, e.g. {absent[0]}")

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def tensor(self, key: str) -> torch.Tensor:
        """One tensor, read from its shard now (in the checkpoint's dtype)."""
        return self._files[self.where[key]].get_tensor(key)

    def expert(self, layer_prefix: str, e: int, proj: str) -> torch.Tensor:
        """One expert's projection ``gate_proj`` / ``up_proj`` (I, H) or ``down_proj`` (H, I),
        from either layout (a slice of the fused tensor reads only that expert)."""
        key = f"{layer_prefix}.{e}.{proj}.weight"
        if key in self.where:
            return self.tensor(key)
        fused = self._files[self.where[f"{layer_prefix}.{'down_proj' if proj == 'down_proj' else 'gate_up_proj'}"]]
        if proj == "down_proj":
            return fused.get_slice(f"{layer_prefix}.down_proj")[e]
        rows = self.shapes[f"{layer_prefix}.gate_up_proj"][1] // 2
        sl = fused.get_slice(f"{layer_prefix}.gate_up_proj")
        return sl[e, :rows] if proj == "gate_proj" else sl[e, rows:]

    def close(self) -> None:
        """Close the shards."""
        self._stack.close()
        self._files.clear()


@dataclass(frozen=True)
class _Layer:
    """An MoE decoder layer to stream: its index, module, checkpoint prefix and shapes."""

    index: int
    module: torch.nn.Module
    prefix: str
    experts: int
    hidden: int
    intermediate: int
    fused: bool


def _is_qwen3_moe(config: Any) -> bool:
    return getattr(config, "model_type", None) == "qwen3_moe"


def empty_model(config: Any, attn_implementation: str | None = None) -> torch.nn.Module:
    """A ``Qwen3MoeForCausalLM`` with every parameter on the meta device (no memory, no init)
    and real buffers (the rotary tables), in eval mode. Fill it with :func:`set_parameter`."""
    from transformers import Qwen3MoeForCausalLM

    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    with torch.device("meta"):
        model = Qwen3MoeForCausalLM(config)
    for name, mod in list(model.named_modules()):
        if any(b.is_meta for b in mod.buffers(recurse=False)):
            if "RotaryEmbedding" not in type(mod).__name__:
                raise CheckpointError("E_PARAM", f"{type(mod).__name__} at {name} has buffers this loader cannot rebuild")
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, type(mod)(config=mod.config))
    return model.eval()


def set_parameter(model: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace parameter ``name`` (e.g. a meta one) by ``value``, as it is (no copy)."""
    owner, _, attr = name.rpartition(".")
    mod = model.get_submodule(owner)
    mod._parameters[attr] = torch.nn.Parameter(value, requires_grad=mod._parameters[attr].requires_grad)


def _moe_layers(model: torch.nn.Module, ckpt: Checkpoint) -> list[_Layer]:
    from .qwen3 import expert_modules

    out = []
    for i, mod in sorted(expert_modules(model).items()):
        _check_layout(mod)
        E, I2, H = mod.gate_up_proj.shape
        prefix = f"model.layers.{i}.mlp.experts"
        out.append(_Layer(i, mod, prefix, int(E), int(H), int(I2) // 2, f"{prefix}.gate_up_proj" in ckpt))
    if not out:
        raise CheckpointError("E_PARAM", "the config has no MoE layers (mlp_only_layers / decoder_sparse_step leave none)")
    return out


def _expected(model: torch.nn.Module, layers: list[_Layer], tie: bool) -> dict[str, tuple[int, ...]]:
    """Every checkpoint tensor the model needs, with its shape."""
    expert_params = {id(p) for lay in layers for p in (lay.module.gate_up_proj, lay.module.down_proj)}
    want = {k: tuple(p.shape) for k, p in model.named_parameters(remove_duplicate=False) if id(p) not in expert_params}
    if tie:
        want.pop("lm_head.weight", None)
    for lay in layers:
        E, H, I = lay.experts, lay.hidden, lay.intermediate
        if lay.fused:
            want[f"{lay.prefix}.gate_up_proj"] = (E, 2 * I, H)
            want[f"{lay.prefix}.down_proj"] = (E, H, I)
            continue
        for e in range(E):
            for proj in _EXPERT_PROJ:
                want[f"{lay.prefix}.{e}.{proj}.weight"] = (H, I) if proj == "down_proj" else (I, H)
    return want


def _check(ckpt: Checkpoint, want: dict[str, tuple[int, ...]]) -> None:
    missing = [k for k in want if k not in ckpt]
    if missing:
        raise CheckpointError("E_PARAM", f"{ckpt.path}: {len(missing)} tensors the model needs are missing, e.g. {', '.join(missing[:3])}")
    wrong = [f"{k} is {ckpt.shapes[k]}, expected {s}" for k, s in want.items() if ckpt.shapes[k] != s]
    if wrong:
        raise ShapeError("E_SHAPE", f"{ckpt.path}: {len(wrong)} tensors have the wrong shape: {'; '.join(wrong[:3])}")


def _chunks(ckpt: Checkpoint, lay: _Layer, per: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Experts of a layer in float32 chunks of ``per``, read one tensor at a time."""
    I = lay.intermediate
    for first in range(0, lay.experts, per):
        n = min(per, lay.experts - first)
        gate_up = np.empty((n, 2 * I, lay.hidden), np.float32)
        down = np.empty((n, lay.hidden, I), np.float32)
        for j in range(n):
            for proj, dst in (("gate_proj", gate_up[j, :I]), ("up_proj", gate_up[j, I:]), ("down_proj", down[j])):
                dst[...] = ckpt.expert(lay.prefix, first + j, proj).float().numpy()
        yield first, gate_up, down


def from_pretrained(
    path: str | os.PathLike,
    *,
    expert_format: str = "q4",
    client: Any = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    layer_base: int = 0,
    group: int | None = None,
    threads: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    attn_implementation: str | None = None,
    lm_head: bool = False,
    projections: bool = False,
    dense_format: str = "fp32",
    **config_overrides: Any,
) -> torch.nn.Module:
    """A ready ``Qwen3MoeForCausalLM`` from a local checkpoint, its experts only in the sidecar.

    Parameters
    ----------
    path : path-like
        Checkpoint directory: ``config.json`` and safetensors weights (offline).
    expert_format : {"fp32", "int8", "q8", "q4"}
        Format the sidecar builds the experts in (quantised as each expert arrives).
    client : vtpu.Client, optional
        Default: :func:`vtpu.integrations.default_client`.
    dtype : torch.dtype
        Dtype of the dense weights in torch.
    device : str or torch.device
        Where the dense half runs (e.g. ``"cuda"``); the experts run in the sidecar whatever
        it is, hidden states travel to and from it.
    layer_base : int
        Sidecar layer id of decoder layer 0 (give models sharing a sidecar disjoint ranges).
    group, threads
        As :func:`vtpu.integrations.qwen3.hook`.
    chunk_bytes : int
        Float32 bytes of experts read and sent per upload request (at least one expert).
    attn_implementation : str, optional
        E.g. ``"sdpa"``, ``"eager"``, ``"vtpu_sparse"``.
    lm_head, projections, dense_format
        Move the lm_head / every attention projection into the sidecar as well, held in
        ``dense_format`` (as :func:`vtpu.integrations.qwen3.hook`; inference only).
    **config_overrides
        Config fields to override, e.g. ``num_hidden_layers=4`` (load only the first four
        decoder layers; the checkpoint's other tensors are skipped).

    Returns
    -------
    transformers.Qwen3MoeForCausalLM
        In eval mode with ``experts_implementation="vtpu"``; its bindings are released
        (``vq.unhook`` is refused: the weights exist only in the sidecar).

    Raises
    ------
    CheckpointError
        No config or weights, a missing shard or tensor, a model that is not Qwen3-MoE, an
        unknown expert format (all ``E_PARAM``).
    ShapeError
        A tensor whose shape differs from the config's (``E_SHAPE``).
    vtpu.VtpuError
        The sidecar refused an upload (every layer this call uploaded is dropped first).
    """
    from transformers import AutoConfig

    from .qwen3 import DENSE_FORMATS, EXPERT_FORMATS, move_dense

    for what, v, ok in (("expert_format", expert_format, EXPERT_FORMATS), ("dense_format", dense_format, DENSE_FORMATS)):
        if v not in ok:
            raise CheckpointError("E_PARAM", f"{what} must be one of {ok}, got {v!r}")
    if not (Path(path) / "config.json").is_file():
        raise CheckpointError("E_PARAM", f"{path}: no config.json")
    config = AutoConfig.from_pretrained(str(path), local_files_only=True, **config_overrides)
    if not _is_qwen3_moe(config):
        raise CheckpointError("E_PARAM", f"{path}: model_type {getattr(config, 'model_type', None)!r} is not qwen3_moe (a Qwen3-MoE checkpoint is needed)")
    ckpt = Checkpoint(path)
    try:
        model = empty_model(config, attn_implementation)
        layers = _moe_layers(model, ckpt)
        tie = bool(getattr(config, "tie_word_embeddings", False)) and "lm_head.weight" not in ckpt
        want = _expected(model, layers, tie)
        _check(ckpt, want)
        resolve_client(client)  # fail before loading anything when no sidecar is reachable
        _load_dense(model, ckpt, want, dtype, torch.device(device), tie)
        by_index = {lay.index: lay for lay in layers}

        def chunks_of(i: int, E: int, H: int, I: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
            return _chunks(ckpt, by_index[i], max(1, int(chunk_bytes) // (3 * H * I * 4)))

        model = upload_experts(model, chunks_of, client=client, expert_format=expert_format,
                               layer_base=layer_base, group=group, threads=threads)
        move_dense(model, client, lm_head=lm_head, projections=projections, layer_base=layer_base, threads=threads, format=dense_format)
        return model
    finally:
        ckpt.close()


def _load_dense(model: torch.nn.Module, ckpt: Checkpoint, want: dict, dtype: torch.dtype, device: torch.device, tie: bool) -> None:
    """Every non-expert parameter from the checkpoint, one tensor at a time."""
    expert_keys = {k for k in want if ".mlp.experts." in k}
    for name, _ in list(model.named_parameters(remove_duplicate=False)):
        if name in want and name not in expert_keys:
            set_parameter(model, name, ckpt.tensor(name).to(device=device, dtype=dtype))
    if tie:
        model.lm_head.weight = model.get_input_embeddings().weight
    for b_owner in [m for m in model.modules() if any(b.device != device for b in m.buffers(recurse=False))]:
        b_owner.to(device)  # the rebuilt rotary tables


def upload_experts(
    model: torch.nn.Module,
    chunks_of: Callable[[int, int, int, int], Iterable[tuple[int, Any, Any]]],
    *,
    client: Any = None,
    expert_format: str = "q4",
    layer_base: int = 0,
    group: int | None = None,
    threads: int | None = None,
) -> torch.nn.Module:
    """Fill every MoE layer's experts in the sidecar from chunks made one at a time, and route there.

    Parameters
    ----------
    model : transformers.Qwen3MoeForCausalLM
        E.g. from :func:`empty_model`; its expert tensors are replaced by empty ones.
    chunks_of : callable
        ``chunks_of(layer, experts, hidden, intermediate)`` yields ``(first, gate_up
        (n, 2I, H), down (n, H, I))`` for decoder layer ``layer`` (see
        ``Client.experts_load_chunks``).
    client, expert_format, layer_base, group, threads
        As :func:`from_pretrained`.

    Returns
    -------
    torch.nn.Module
        ``model`` with ``experts_implementation="vtpu"`` and released bindings.

    Raises
    ------
    Exception
        Whatever a chunk or the sidecar raised, after every layer this call uploaded was dropped.
    """
    from .qwen3 import expert_modules

    c = resolve_client(client)
    mods = sorted(expert_modules(model).items())
    uploaded: list[int] = []
    try:
        for i, mod in mods:
            _check_layout(mod)
            E, I2, H = (int(d) for d in mod.gate_up_proj.shape)
            uploaded.append(layer_base + i)
            c.experts_load_chunks(layer_base + i, chunks_of(i, E, H, I2 // 2), experts=E, format=expert_format, group=group, threads=threads)
    except BaseException:
        for sid in uploaded:
            with contextlib.suppress(Exception):
                c.experts_drop(sid)
        raise
    dev = _device(model)
    for i, mod in mods:
        E = int(mod.gate_up_proj.shape[0])
        release_weights(mod, dev)  # no expert weights in torch, as after hook(release=True)
        mod.vtpu_experts = ExpertsBinding(layer=layer_base + i, client=client, format=expert_format, num_experts=E, released=True)
    model.set_experts_implementation(NAME)
    return model


def _device(model: torch.nn.Module) -> torch.device:
    return next((p.device for p in model.parameters() if not p.is_meta), torch.device("cpu"))
