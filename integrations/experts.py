"""``experts_implementation="vtpu"``: transformers MoE experts computed in the vTPU sidecar.

Importing this module registers ``vtpu`` with
:class:`transformers.integrations.moe.ExpertsInterface`. An experts module (transformers
5.x fused layout: ``gate_up_proj (E, 2I, H)``, ``down_proj (E, H, I)``, e.g. Qwen3-MoE's)
runs in the sidecar once it is *bound*: its weights uploaded under a layer id
(:func:`bind`, which :func:`vtpu.integrations.qwen3.hook` calls for every layer). The
forward sends the hidden states with transformers' own routing (``top_k_index``,
``top_k_weights``) and gets back the combined expert outputs, so the model's numerics
match transformers' up to float rounding. Modules left unbound run transformers' eager
experts forward.

The forward is one opaque op, ``vtpu::experts`` (:mod:`vtpu.integrations.experts_op`), so
``torch.compile`` (``fullgraph=True`` included) works. Gradients reach the hidden states, the
routing weights and the expert weights: the backward recomputes the experts in torch.

Stale weights cannot happen silently: before each forward the module's ``gate_up_proj`` /
``down_proj`` are compared (storage address, shape and autograd version counter) with what
was uploaded, and changed weights (``load_state_dict``, an optimizer step, any in-place edit
of the parameters, a new tensor assigned) are uploaded again first. The one change the
version counter cannot see is an edit through ``param.data``; call :func:`refresh` after one.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.integrations.moe import ExpertsInterface

from . import resolve_client
from .experts_op import experts as experts_op
from . import handles

__all__ = ["NAME", "ExpertsBinding", "bind", "unbind", "binding", "refresh", "release_weights", "weights_stamp", "vtpu_experts_forward", "register"]

NAME = "vtpu"


@dataclass
class ExpertsBinding:
    """Where a module's experts live in the sidecar, and its routing statistics.

    Attributes
    ----------
    layer : int
        The sidecar's layer id.
    client : vtpu.Client or None
        None: the integrations' default client at call time.
    format : str
        Weight format uploaded (``fp32`` or ``int8``).
    last_counts : ndarray of int64, shape (E,) or None
        Tokens routed to each expert by the latest forward.
    total_counts : ndarray of int64, shape (E,)
        Summed over forwards since binding (or :meth:`reset`).
    calls : int
        Forwards since binding (or :meth:`reset`).
    sidecar_ms : float
        Summed time inside the sidecar's expert runtime.
    call_ms : float
        Summed time of the calls as this process waits for them (``sidecar_ms`` plus the
        transport, the sidecar's event loop and the hops to its expert thread and back).
    released : bool
        The module's torch copies of the weights were freed (:func:`bind` with ``release``).
    uploads : int
        Times the weights were uploaded (1 at binding, one more per change detected).
    group, threads : int or None
        The upload options, reused when changed weights are uploaded again.
    """

    layer: int
    client: Any
    format: str
    num_experts: int
    last_counts: np.ndarray | None = None
    total_counts: np.ndarray = field(default=None)  # type: ignore[assignment]
    calls: int = 0
    sidecar_ms: float = 0.0
    call_ms: float = 0.0
    released: bool = False
    uploads: int = 0
    group: int | None = None
    threads: int | None = None
    module: Any = None  # weakref to the experts module; None when the weights never were in torch
    stamp: tuple = ()
    handle: int = 0

    def __post_init__(self) -> None:
        if self.total_counts is None:
            self.total_counts = np.zeros(self.num_experts, np.int64)
        self.handle = handles.register(self)

    def upload(self) -> None:
        """Upload the module's current weights (replacing the layer) and remember their stamp."""
        m = None if self.module is None else self.module()
        if m is None:
            raise ValueError(f"sidecar layer {self.layer} has no experts module in torch to upload from")
        with torch.no_grad():
            resolve_client(self.client).experts_load(
                self.layer, m.gate_up_proj, m.down_proj, format=self.format, group=self.group, threads=self.threads)
        self.stamp, self.uploads = weights_stamp(m), self.uploads + 1

    def run(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
        """The sidecar's forward, after uploading the weights again if they changed."""
        m = None if self.module is None else self.module()  # None: made without a module (weights only in the sidecar)
        if self.module is not None and m is None:
            raise RuntimeError(f"the experts module bound to sidecar layer {self.layer} no longer exists")
        if m is not None and not self.released and weights_stamp(m) != self.stamp:
            self.upload()
        t0 = time.perf_counter()
        out = resolve_client(self.client).experts_run(self.layer, hidden_states.detach(), expert_ids=top_k_index, weights=top_k_weights.detach())
        self.call_ms += (time.perf_counter() - t0) * 1e3
        self.last_counts = out.counts
        self.total_counts += out.counts
        self.calls += 1
        self.sidecar_ms += out.elapsed_ms
        return torch.from_numpy(out.y).to(device=hidden_states.device, dtype=hidden_states.dtype)

    def reset(self) -> None:
        """Zero the statistics."""
        self.last_counts, self.calls, self.sidecar_ms, self.call_ms = None, 0, 0.0, 0.0
        self.total_counts = np.zeros(self.num_experts, np.int64)


def _check_layout(module: torch.nn.Module) -> None:
    if not (hasattr(module, "gate_up_proj") and hasattr(module, "down_proj")):
        raise TypeError(f"{type(module).__name__} has no fused gate_up_proj / down_proj experts")
    for flag, want in (("has_gate", True), ("has_bias", False), ("is_transposed", False), ("is_concatenated", True)):
        if getattr(module, flag, want) != want:
            raise ValueError(f"{type(module).__name__}: vtpu experts need {flag}={want}")
    act = getattr(getattr(module, "config", None), "hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(f"vtpu experts compute SwiGLU (silu); this model uses {act!r}")


def weights_stamp(module: torch.nn.Module) -> tuple:
    """What identifies the current expert weights: (address, shape, version) of each parameter."""
    return tuple((p.data_ptr(), tuple(p.shape), p._version) for p in (module.gate_up_proj, module.down_proj))


def bind(
    module: torch.nn.Module, layer: int, *, client: Any = None, format: str = "fp32", group: int | None = None, release: bool = False,  # noqa: A002
    threads: int | None = None,
) -> ExpertsBinding:
    """Upload ``module``'s experts to the sidecar as ``layer`` and route its forward there.

    Parameters
    ----------
    module : torch.nn.Module
        An experts module with fused ``gate_up_proj`` (E, 2I, H) and ``down_proj`` (E, H, I).
    layer : int
        Layer id in the sidecar (models sharing a sidecar need disjoint ids).
    client : vtpu.Client, optional
        Default: :func:`vtpu.integrations.default_client` (resolved now for the upload and
        at each call after).
    format : {"fp32", "int8", "q8", "q4"}
    group : int, optional
        Experts per ONNX Runtime session.
    threads : int, optional
        The layer's threads in the sidecar: ONNX Runtime's intra-op threads of its sessions, or
        the native kernel's (sidecar default: one per core).
    release : bool
        Free the module's torch copies of the expert weights once uploaded (they become
        empty tensors): the Python process stops holding them, and the module can no longer
        run without the sidecar.

    Returns
    -------
    ExpertsBinding
    """
    _check_layout(module)
    resolve_client(client)
    b = ExpertsBinding(layer=int(layer), client=client, format=format, num_experts=int(module.gate_up_proj.shape[0]),
                       group=group, threads=threads, module=weakref.ref(module))
    b.upload()
    module.vtpu_experts = b
    if release:
        release_weights(module)
        b.released = True
    return b


def release_weights(module: torch.nn.Module, device: torch.device | None = None) -> None:
    """Empty a module's expert weights (the sidecar holds them), so this process stops holding them.

    A parameter on the meta device (a model built by ``empty_model``) becomes a real empty one on
    ``device``; any other keeps its Parameter and device, its data emptied."""
    for attr in ("gate_up_proj", "down_proj"):
        p = module._parameters[attr]
        if p.is_meta:
            module._parameters[attr] = torch.nn.Parameter(torch.empty(0, dtype=p.dtype, device=device), requires_grad=False)
        else:
            p.data = torch.empty(0, dtype=p.dtype, device=p.device)


def binding(module: torch.nn.Module) -> ExpertsBinding | None:
    """The module's :class:`ExpertsBinding`, or None when it is not bound."""
    return getattr(module, "vtpu_experts", None)


def refresh(module: torch.nn.Module) -> None:
    """Upload a bound module's weights again now (needed only after edits through ``param.data``,
    which the version check cannot see). Refused for a module whose weights were released."""
    b = binding(module)
    if b is None:
        raise ValueError(f"{type(module).__name__} is not bound to the sidecar")
    if b.released:
        raise ValueError("bind(release=True) freed this module's expert weights: nothing to upload")
    b.upload()


def unbind(module: torch.nn.Module, *, drop: bool = True) -> None:
    """Forget the binding (and release the layer in the sidecar when ``drop``)."""
    b = binding(module)
    if b is None:
        return
    del module.vtpu_experts
    if drop:
        client = resolve_client(b.client)
        if not client.closed:
            client.experts_drop(b.layer)


def vtpu_experts_forward(
    self: torch.nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """transformers experts forward: (T, H) states and the (T, k) routing → (T, H)."""
    b = binding(self)
    if b is None:  # not offloaded: transformers' own eager loop
        return type(self).forward.__wrapped__(self, hidden_states, top_k_index, top_k_weights)
    if torch.is_grad_enabled() or torch.compiler.is_compiling():
        return experts_op(hidden_states, top_k_index, top_k_weights, self.gate_up_proj, self.down_proj, b.handle)
    return b.run(hidden_states, top_k_index, top_k_weights)  # eager inference: the op's body without torch's dispatch (~30 µs a call)


def register() -> None:
    """Register ``vtpu`` with transformers' ExpertsInterface (done on import; idempotent)."""
    ExpertsInterface.register(NAME, vtpu_experts_forward)


register()
