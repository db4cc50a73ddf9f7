"""``vtpu::experts``: the sidecar's expert FFNs as one opaque PyTorch op.

``torch.compile`` (dynamo, inductor, ``fullgraph=True``) sees a single custom op
(:func:`torch.library.custom_op`) instead of tracing the client's numpy and ZeroMQ code:
its fake kernel says the output is shaped and typed like the hidden states.

Gradients: the sidecar computes the forward only. The backward (``vtpu::experts_backward``,
opaque too) recomputes each routed expert's SwiGLU activations in torch from the module's
own weights and applies the chain rule by hand, giving the gradients of the hidden states,
the routing weights and both expert weight tensors (the same as autograd through
:func:`swiglu_experts`). It needs those weights in torch (not ``release=True``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .handles import lookup

__all__ = ["swiglu_experts", "experts", "experts_backward"]


def _routes(top_k_index: torch.Tensor, num_experts: int) -> Any:
    """(expert, slots routed to it, their tokens) for every expert with work."""
    T, k = top_k_index.shape
    flat = top_k_index.reshape(-1)
    token = torch.arange(T, device=top_k_index.device).repeat_interleave(k)
    for e in flat.unique().tolist():
        if 0 <= e < num_experts:
            sel = (flat == e).nonzero().squeeze(1)
            yield e, sel, token[sel]


def swiglu_experts(x: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """Routed SwiGLU experts in plain torch (the fused transformers layout).

    ``y[t] = sum_s w[t,s] * down[e] @ (silu(g) * u)`` with ``g, u = gate_up[e] @ x[t]``
    split in halves and ``e = top_k_index[t, s]``; ids outside ``[0, E)`` are skipped.
    """
    weight = top_k_weights.reshape(-1)
    y = torch.zeros_like(x)
    for e, sel, tok in _routes(top_k_index, gate_up.shape[0]):
        gate, up = F.linear(x[tok], gate_up[e]).chunk(2, dim=-1)
        y = y.index_add(0, tok, F.linear(F.silu(gate) * up, down[e]) * weight[sel, None].to(x.dtype))
    return y


@torch.library.custom_op("vtpu::experts", mutates_args=(), schema="(Tensor hidden, Tensor top_k_index, Tensor top_k_weights, Tensor gate_up, Tensor down, int handle) -> Tensor")
def experts(hidden: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor, handle: int) -> torch.Tensor:
    """The bound layer's experts in the sidecar: (T, H) states and (T, k) routing -> (T, H).

    ``gate_up`` / ``down`` are the module's parameters: passed so that autograd can reach
    them; the forward uses the sidecar's copy (re-uploaded first when they changed).
    """
    return lookup(handle, "vtpu experts binding").run(hidden, top_k_index, top_k_weights)


@experts.register_fake
def _experts_fake(hidden, top_k_index, top_k_weights, gate_up, down, handle):  # type: ignore[no-untyped-def]
    return torch.empty_like(hidden)


@torch.library.custom_op(
    "vtpu::experts_backward", mutates_args=(),
    schema="(Tensor grad, Tensor hidden, Tensor top_k_index, Tensor top_k_weights, Tensor gate_up, Tensor down, bool[] needs) -> Tensor[]",
)
def experts_backward(
    grad: torch.Tensor, hidden: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor,
    gate_up: torch.Tensor, down: torch.Tensor, needs: list[bool],
) -> list[torch.Tensor]:
    """Gradients of :func:`swiglu_experts` for (hidden, weights, gate_up, down), computed in
    torch from the recomputed activations (an empty tensor where ``needs`` is False)."""
    if gate_up.numel() == 0:
        raise RuntimeError("this layer's expert weights were released to the sidecar (hook(release=True)): no gradients through them")
    dx, dgu, ddn = torch.zeros_like(hidden), torch.zeros_like(gate_up), torch.zeros_like(down)
    dw = torch.zeros_like(top_k_weights).reshape(-1)
    w = top_k_weights.reshape(-1).to(hidden.dtype)
    for e, sel, tok in _routes(top_k_index, gate_up.shape[0]):
        xs, gy = hidden[tok], grad[tok]
        gate, up = F.linear(xs, gate_up[e]).chunk(2, dim=-1)
        sig = torch.sigmoid(gate)
        act = gate * sig
        h = act * up
        z = F.linear(h, down[e])
        dw[sel] = (gy * z).sum(-1).to(dw.dtype)
        dz = gy * w[sel, None]
        ddn[e] = dz.T @ h
        dh = dz @ down[e]
        da = torch.cat([dh * up * sig * (1 + gate * (1 - sig)), dh * act], dim=-1)
        dgu[e] = da.T @ xs
        dx.index_add_(0, tok, da @ gate_up[e])
    return [g if n else g.new_empty(0) for g, n in zip((dx, dw.reshape(top_k_weights.shape), dgu, ddn), needs)]


@experts_backward.register_fake
def _experts_backward_fake(grad, hidden, top_k_index, top_k_weights, gate_up, down, needs):  # type: ignore[no-untyped-def]
    return [torch.empty_like(t) if n else t.new_empty(0) for t, n in zip((hidden, top_k_weights, gate_up, down), needs)]


def _setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    hidden, top_k_index, top_k_weights, gate_up, down, _ = inputs
    ctx.save_for_backward(hidden, top_k_index, top_k_weights, gate_up, down)


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    hidden, top_k_index, top_k_weights, gate_up, down = ctx.saved_tensors
    n = ctx.needs_input_grad
    needs = [bool(n[0]), bool(n[2]), bool(n[3]), bool(n[4])]
    dx, dw, dgu, ddn = experts_backward(grad.contiguous(), hidden, top_k_index, top_k_weights, gate_up, down, needs)
    pick = lambda g, want: g if want else None  # noqa: E731
    return pick(dx, needs[0]), None, pick(dw, needs[1]), pick(dgu, needs[2]), pick(ddn, needs[3]), None


experts.register_autograd(_backward, setup_context=_setup)
