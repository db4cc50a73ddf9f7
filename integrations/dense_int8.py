"""The dense half of a model in 8 bits: :func:`quantize_dense` swaps ``nn.Linear`` layers for
:class:`Int8Linear`, torch's own dynamic int8 matrix product (fbgemm / x86 engine).

With the experts in the sidecar, a decode step's other half is torch's dense matrices: the
attention projections of every layer and the lm_head (151,936 × 2048 in Qwen3-30B-A3B, read
whole for every token). On a CPU without native bf16 (AVX2 only) torch runs those in bf16 or
fp32 from full-size weights; int8 reads half (bf16) or a quarter (fp32) of the bytes with a
faster kernel. README's full-size section gives the measured effect.

Weights: symmetric per output channel, ``scale = max|w| / 127`` per row, quantised a few MiB of
rows at a time (no float32 copy of a whole matrix exists, so a bf16 lm_head is converted
without a 1.2 GB temporary); the torch parameter is released. Activations: quantised per call
by the kernel (per tensor, asymmetric, in 7 bits: ``reduce_range``, because x86 without VNNI
adds pairs of 8-bit products in int16, the same limit as the sidecar's ``int8`` experts).
The output comes back in the input's dtype, so the rest of a bf16 model stays bf16.

Limits: CPU inference. No gradients (a forward with grad enabled on an input that requires it
is refused), and ``torch.compile`` is not claimed: this is eager torch's quantised op. torch
has marked its quantised tensor types deprecated (a future release removes them; the pinned
2.13 has them, and its warning is silenced here, once per layer otherwise). The other int8 op
it has, ``_weight_int8pack_mm`` (weight-only), measured slower here: a 2048 → 4096 product
took 0.67 ms in bf16 against 0.41 ms, and a 37-row fp32 one 419 ms.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

__all__ = ["Int8Linear", "quantize_dense", "attention_and_head"]

#: Rows quantised at a time, so that the float32 working copy stays near 16 MiB.
_CHUNK_BYTES = 16 << 20


def _engine() -> None:
    engines = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine == "none":
        usable = [e for e in ("x86", "fbgemm", "qnnpack") if e in engines]
        if not usable:
            raise RuntimeError(f"this torch build has no quantized engine for int8 matrices (supported: {engines})")
        torch.backends.quantized.engine = usable[0]


class Int8Linear(torch.nn.Module):
    """``y = x @ W.T + b`` with W in per-row int8 and x quantised per call (CPU, inference).

    Parameters
    ----------
    linear : torch.nn.Linear
        The layer to convert (any float dtype, on the CPU). It is left unchanged; the caller
        drops it (:func:`quantize_dense` replaces it in its parent).
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach()
        if w.device.type != "cpu" or w.is_meta:
            raise ValueError(f"Int8Linear converts CPU weights, got a weight on {w.device}")
        _engine()
        self.in_features, self.out_features = int(w.shape[1]), int(w.shape[0])
        q = torch.empty(w.shape, dtype=torch.int8)
        scale = torch.empty(self.out_features, dtype=torch.float64)
        rows = max(1, _CHUNK_BYTES // (4 * self.in_features))
        for r in range(0, self.out_features, rows):
            c = w[r : r + rows].float()
            s = c.abs().amax(1) / 127
            s = torch.where(s > 0, s, torch.ones_like(s))  # an all-zero row keeps scale 1
            q[r : r + rows] = torch.round(c / s[:, None]).clamp_(-127, 127).to(torch.int8)
            scale[r : r + rows] = s
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated")
            qw = torch._make_per_channel_quantized_tensor(q, scale, torch.zeros(self.out_features, dtype=torch.long), 0)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed = torch.ops.quantized.linear_prepack(qw, bias)
        #: Bytes this layer holds (int8 codes, a scale per row, the bias).
        self.nbytes = self.out_features * self.in_features + 4 * self.out_features + (0 if bias is None else 4 * self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("Int8Linear is for inference: it has no gradient (run under torch.no_grad(), or keep this layer in float)")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Int8Linear expects {self.in_features} input features, got shape {tuple(x.shape)}")
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, self.in_features).float(), self._packed, True)
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per row"


def attention_and_head(name: str, module: torch.nn.Linear) -> bool:
    """The default choice of :func:`quantize_dense`: attention projections and the lm_head
    (not routers, whose top-k choice 8 bits could flip, nor experts, which are not ``Linear``)."""
    return ".self_attn." in f".{name}" or name == "lm_head"


def quantize_dense(model: torch.nn.Module, which: Callable[[str, torch.nn.Linear], bool] = attention_and_head) -> int:
    """Replace the model's chosen ``nn.Linear`` layers with :class:`Int8Linear`, one at a time
    (the float weights of each are freed before the next is converted).

    Parameters
    ----------
    model : torch.nn.Module
        On the CPU, weights real (not on the meta device).
    which : callable(name, linear) -> bool
        Which layers, by qualified name; default :func:`attention_and_head`.

    Returns
    -------
    int
        Bytes the converted layers hold now.

    Raises
    ------
    ValueError
        No ``nn.Linear`` was chosen (e.g. the model was converted already), or a chosen one
        is not on the CPU.
    """
    # Names only: a list of the modules would keep every float layer alive until the end, so the
    # whole dense half would be held twice (float and int8) at the last conversion.
    chosen = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and which(n, m)]
    if not chosen:
        raise ValueError("quantize_dense: no nn.Linear layer matched (already converted, or not a model with attention / lm_head)")
    total = 0
    for name in chosen:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        q = Int8Linear(getattr(parent, attr))
        setattr(parent, attr, q)  # the float layer's last reference: freed here
        total += q.nbytes
    return total
