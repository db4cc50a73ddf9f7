"""``SidecarLinear``: an ``nn.Linear`` whose weight lives in the sidecar (a CEXPERTS dense layer).

Made for a decode step's big matrices: a model's lm_head, read whole for every token (151,936 ×
2048 in Qwen3-30B-A3B: 1.2 GB in float32), and its attention projections. torch's one-row product
reads them on one core; the sidecar's kernel splits them over its cores, and on this host the
call goes through the doorbell. ``format="bf16"`` holds the weight in bfloat16 there (half the
bytes read; the product and its input and output stay float32), the choice for a bf16
checkpoint. The torch module then holds no weight (the upload frees it unless something else
shares it, like tied input embeddings). README's Qwen3 section gives the measured effect.

The forward is one opaque op, ``vtpu::linear`` (:func:`torch.library.custom_op`), so
``torch.compile(fullgraph=True)`` sees a single node. Inference only: a forward that would need
gradients is refused. ``load_state_dict`` with a ``weight`` for it uploads that weight (never
stale); ``state_dict`` has no weight (it is in the sidecar): save a model before offloading.
"""

from __future__ import annotations

from typing import Any

import torch

from . import resolve_client
from .handles import lookup, register

__all__ = ["SidecarLinear", "offload_linear"]

def _product(m: "SidecarLinear", x: torch.Tensor) -> torch.Tensor:
    """``x`` (T, K) through ``m``'s dense layer -> (T, out_features) float32."""
    y = resolve_client(m.client).dense_run(m.layer, x.detach(), out_features=m.out_features)
    return torch.from_numpy(y).to(x.device)


@torch.library.custom_op("vtpu::linear", mutates_args=(), schema="(Tensor x, int handle, int out_features) -> Tensor")
def sidecar_linear(x: torch.Tensor, handle: int, out_features: int) -> torch.Tensor:
    """``x`` (T, K) through the dense layer of module ``handle`` -> (T, out_features) float32."""
    return _product(lookup(handle, "vtpu linear"), x)


@sidecar_linear.register_fake
def _sidecar_linear_fake(x, handle, out_features):  # type: ignore[no-untyped-def]
    return x.new_empty((x.shape[0], out_features), dtype=torch.float32)


class SidecarLinear(torch.nn.Module):
    """``y = x @ W.T + b`` with ``W`` held and multiplied in the sidecar.

    Parameters
    ----------
    in_features, out_features : int
        K and N of ``W``.
    layer : int
        The sidecar's layer id for ``W`` (shared with experts layers: pick one no experts use).
    client : vtpu.Client, optional
        Default: :func:`vtpu.integrations.default_client` at call time.
    bias : torch.Tensor, optional
        Kept in torch and added there.
    threads : int, optional
        Threads of the product in the sidecar (default one per core).
    format : {"fp32", "bf16"}
        How the sidecar holds ``W`` (:meth:`vtpu.Client.dense_load`).

    Build one with :func:`offload_linear` (uploads an ``nn.Linear``'s weight) or call
    :meth:`load_weight`.
    """

    def __init__(self, in_features: int, out_features: int, layer: int, client: Any = None, *,
                 bias: torch.Tensor | None = None, threads: int | None = None, format: str = "fp32") -> None:
        super().__init__()
        self.in_features, self.out_features, self.layer = int(in_features), int(out_features), int(layer)
        self.client, self.threads, self.format = client, threads, format
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
        #: Times a weight was uploaded.
        self.uploads = 0
        self.handle = register(self)

    @torch.no_grad()
    def load_weight(self, weight: torch.Tensor) -> None:
        """Upload ``weight`` (out_features, in_features), any float dtype, replacing the sidecar's."""
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(f"weight must be ({self.out_features}, {self.in_features}), got {tuple(weight.shape)}")
        resolve_client(self.client).dense_load(self.layer, weight.detach().cpu(), threads=self.threads, format=self.format)
        self.uploads += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("SidecarLinear is inference only: no gradients through a weight held in the sidecar (run under torch.no_grad())")
        lead, rows = x.shape[:-1], x.reshape(-1, self.in_features)
        # Eager calls skip torch's custom-op dispatch (~30 µs a call, and a decode step of a
        # 48-layer model makes ~200 of them); what compiles sees is the op.
        y = sidecar_linear(rows, self.handle, self.out_features) if torch.compiler.is_compiling() else _product(self, rows)
        y = y.to(x.dtype).reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):  # type: ignore[no-untyped-def]
        w = state_dict.get(prefix + "weight")
        if w is not None:
            try:
                self.load_weight(w)
            except ValueError as e:
                error_msgs.append(f"{prefix}weight: {e}")
            state_dict = {k: v for k, v in state_dict.items() if k != prefix + "weight"}
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, layer={self.layer}, format={self.format}, bias={self.bias is not None}"


def offload_linear(parent: torch.nn.Module, name: str, layer: int, client: Any = None, *, threads: int | None = None,
                   format: str = "fp32") -> SidecarLinear:
    """Replace ``parent.<name>`` (an ``nn.Linear``) with a :class:`SidecarLinear` holding its weight.

    The weight is uploaded first; torch's copy is then dropped with the old module (kept alive
    only by whatever else shares it, e.g. tied embeddings).

    Raises
    ------
    TypeError
        ``parent.<name>`` is not an ``nn.Linear``.
    """
    lin = getattr(parent, name)
    if not isinstance(lin, torch.nn.Linear):
        raise TypeError(f"{type(parent).__name__}.{name} is a {type(lin).__name__}, not an nn.Linear")
    m = SidecarLinear(lin.in_features, lin.out_features, layer, client, bias=lin.bias, threads=threads, format=format)
    m.load_weight(lin.weight)
    setattr(parent, name, m)
    return m
