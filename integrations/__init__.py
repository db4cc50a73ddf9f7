"""PyTorch and transformers integrations for vTPU.

>>> import torch, vtpu.integrations as vi
>>> q = torch.randn(1, 4, 8, 16, requires_grad=True)
>>> k = v = torch.randn(1, 2, 8, 16)
>>> o = vi.cattend(q, k, v, window=4)      # autograd through CATTEND on the default client
>>> o.sum().backward()

Submodules (each imports torch; this one does not until you touch them):

- :mod:`vtpu.integrations.autograd`: ``CAttendFunction``, ``MoECombineFunction``, ``cattend``, ``moe_combine``
- :mod:`vtpu.integrations.modules`: ``SparseAttention``, ``VtpuMoE``, ``ExpertFFN``
- :mod:`vtpu.integrations.masks`: the visibility rule of CATTEND as a dense boolean mask (reference)
- :mod:`vtpu.integrations.transformers`: ``attn_implementation="vtpu_sparse"`` (registered on import)
- :mod:`vtpu.integrations.attention_op`: ``vtpu::sparse_attention``, that attention as an opaque custom op (padded rows, compile)
- :mod:`vtpu.integrations.qwen3_moe`: ``use_vtpu_routing(model)`` routes a Qwen3-MoE model's experts via CMOE
- :mod:`vtpu.integrations.experts`: ``experts_implementation="vtpu"`` (registered on import): experts run in the sidecar
- :mod:`vtpu.integrations.experts_op`: ``vtpu::experts``, those experts as an opaque custom op (compile, gradients)
- :mod:`vtpu.integrations.qwen3`: ``hook(model, expert_format=...)`` uploads a Qwen3-MoE model's experts and switches to it
- :mod:`vtpu.integrations.dense_int8`: ``quantize_dense(model)``, the dense half (attention projections, lm_head) in torch's int8

The default client is created lazily by :func:`default_client` (``vtpu.connect()``: the
sidecar at ``$VTPU_ADDRESS``, else a private one it starts) and closed at interpreter
exit; :func:`set_default_client` replaces it. Every function and module also takes
``client=`` to use a specific one.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from typing import Any

__all__ = [
    "default_client",
    "set_default_client",
    "resolve_client",
    "cattend",
    "moe_combine",
    "CAttendFunction",
    "MoECombineFunction",
    "SparseAttention",
    "VtpuMoE",
    "ExpertFFN",
    "sparse_mask",
    "share_cores",
    "SHORT_SPIN",
]

#: libgomp spins this many times before an idle OpenMP thread sleeps (~0.1 ms by its own estimate
#: of 100,000 spins a millisecond), against its default of 300,000 (~3 ms); see :func:`share_cores`.
SHORT_SPIN = "10000"


def share_cores() -> bool:
    """Let torch's OpenMP threads share the cores with a sidecar on this machine; call it before
    ``import torch``.

    torch's libgomp keeps an idle thread spinning ~3 ms after each parallel op, and an experts call
    starts right after one: the spinning thread holds a core the sidecar's kernel runs on. Passive
    threads (``OMP_WAIT_POLICY=PASSIVE``) free it but are woken for each of the hundreds of small
    ops of a decode step. A short spin (``GOMP_SPINCOUNT=`` :data:`SHORT_SPIN`) keeps them awake
    between ops and asleep during the call (README, "Sharing the cores with the sidecar").

    Returns
    -------
    bool
        True when it set ``GOMP_SPINCOUNT``; False when ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY``
        is already set (yours is kept) or torch is already imported (libgomp read its
        environment when it loaded: too late).
    """
    if "torch" in sys.modules or "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN
    return True

_lock = threading.Lock()
_client: Any = None  # the configured or lazily created client
_owned = False  # True when we created it (so we close it at exit)


def default_client() -> Any:
    """The client used when none is passed: set by :func:`set_default_client`, else
    created on first use with :func:`vtpu.connect` (closed at interpreter exit)."""
    global _client, _owned
    with _lock:
        if _client is None or _client.closed:
            import vtpu

            _client, _owned = vtpu.connect(), True
        return _client


def set_default_client(client: Any) -> None:
    """Use ``client`` (a :class:`vtpu.Client`, or ``None`` to go back to a lazily started
    one) for every call that is not given ``client=``. A client created here before is
    closed; one you pass in stays yours to close."""
    global _client, _owned
    with _lock:
        old, was_owned = _client, _owned
        _client, _owned = client, False
    if was_owned and old is not None and old is not client:
        old.close()


def resolve_client(client: Any = None) -> Any:
    """``client`` when given, else :func:`default_client`."""
    return client if client is not None else default_client()


@atexit.register
def _close_owned() -> None:
    global _client
    if _owned and _client is not None:
        try:
            _client.close()
        finally:
            _client = None


_LAZY = {
    "cattend": "autograd",
    "moe_combine": "autograd",
    "CAttendFunction": "autograd",
    "MoECombineFunction": "autograd",
    "SparseAttention": "modules",
    "VtpuMoE": "modules",
    "ExpertFFN": "modules",
    "sparse_mask": "masks",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
