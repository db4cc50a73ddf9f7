"""Route a transformers Qwen3-MoE model's experts through vTPU (CMOE plan and combine).

    from vtpu.integrations.qwen3_moe import use_vtpu_routing
    use_vtpu_routing(model)          # every Qwen3MoeSparseMoeBlock now dispatches via CMOE

The router's linear layer and the experts' fused weights stay torch parameters. Each
block still calls its own gate module (so transformers records ``router_logits`` and
its load-balancing loss works unchanged), then CMOE selects the experts and builds the
dispatch plan, each expert runs on its slice, and CMOE's combine (differentiable, see
:func:`vtpu.integrations.modules.moe_dispatch`) sums the weighted outputs. The selection
rule is the model's (softmax, top-k, ``norm_topk_prob``); rows with exactly tied
probabilities may pick a different, equally weighted, expert than ``torch.topk``.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .modules import moe_dispatch

__all__ = ["use_vtpu_routing"]


def _forward(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    b, s, h = hidden_states.shape
    x = hidden_states.reshape(-1, h)
    logits = self.gate(x)[0]  # through the module: transformers' output recorder sees it
    experts = self.experts

    def run(e: int, rows: torch.Tensor) -> torch.Tensor:
        gate, up = F.linear(rows, experts.gate_up_proj[e]).chunk(2, dim=-1)
        return F.linear(experts.act_fn(gate) * up, experts.down_proj[e])

    y, _, _ = moe_dispatch(
        x, logits, run, self.gate.top_k, renormalize=bool(self.gate.norm_topk_prob), client=getattr(self, "vtpu_client", None)
    )
    return y.reshape(b, s, h)


def use_vtpu_routing(model: nn.Module, *, client: Any = None) -> int:
    """Make every Qwen3-MoE sparse block of ``model`` route through vTPU.

    Parameters
    ----------
    model : torch.nn.Module
        A transformers Qwen3-MoE model (or any module containing
        ``Qwen3MoeSparseMoeBlock``s).
    client : vtpu.Client, optional
        Defaults to :func:`vtpu.integrations.default_client` at call time.

    Returns
    -------
    int
        How many blocks were switched (0 means the model has none: nothing changed).
    """
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    n = 0
    for m in model.modules():
        if isinstance(m, Qwen3MoeSparseMoeBlock):
            m.forward = types.MethodType(_forward, m)
            m.vtpu_client = client
            n += 1
    return n
