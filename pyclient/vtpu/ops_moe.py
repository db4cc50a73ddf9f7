"""Mixture-of-experts routing on the sidecar (CMOE): :class:`MoeMixin` and :class:`MoeRouting`.

Selection rule: top-k experts per token by softmax probability (computed in float64,
rounded to float32), higher first; ties go to the lower expert index. This equals
``torch.sort(probs, dim=-1, descending=True, stable=True)[:, :k]`` and, on rows without
ties, ``torch.topk``. Capacity (when ``capacity_factor`` is given) is
``ceil(capacity_factor * T * k / E)`` assignments per expert; later assignments, in token
order, are dropped.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from .errors import ParamError
from ._host import ClientHost

__all__ = ["MoeMixin", "MoeRouting"]


class MoeRouting(NamedTuple):
    """A routing and dispatch plan from :meth:`MoeMixin.cmoe`.

    Attributes
    ----------
    expert_ids : ndarray of int64, shape (T, k)
        Selected experts per token, best first.
    weights : ndarray of float32, shape (T, k)
        Their softmax probabilities (divided by the row sum when renormalized).
    order : ndarray of int64, shape (N_kept,)
        Kept flat assignment indices ``t * k + s``, grouped by expert, then token, then slot:
        expert ``e``'s rows are ``order[offsets[e]:offsets[e + 1]]``.
    counts : ndarray of int64, shape (E,)
        Kept assignments per expert.
    offsets : ndarray of int64, shape (E + 1,)
        Exclusive prefix sums of ``counts``.
    kept : ndarray of bool, shape (T, k)
        False where capacity dropped the assignment.
    capacity : int or None
        Assignments per expert allowed, or None without a capacity factor.
    aux : dict
        ``aux_loss`` (transformers' ``load_balancing_loss_func``, not scaled by
        ``router_aux_loss_coef``; for several layers pass their logits concatenated along
        T, which is what that function pools), ``switch_loss`` (E · Σ f1_e · P_e over top-1
        assignments), ``z_loss`` (mean logsumexp(logits)²), ``tokens_per_expert`` (E,)
        (top-k assignments per token, before drops; sums to k) and
        ``router_prob_per_expert`` (E,) (mean probability).
    expert_shard : ndarray of int64, shape (E,)
        Owning shard per expert (all 0 unless a placement was given).
    shard_counts : ndarray of int64, shape (S,)
        Kept assignments per shard.
    elapsed_ms : float
        Time spent inside the engine op (excludes transfer).
    """

    expert_ids: np.ndarray
    weights: np.ndarray
    order: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray
    kept: np.ndarray
    capacity: int | None
    aux: dict[str, Any]
    expert_shard: np.ndarray
    shard_counts: np.ndarray
    elapsed_ms: float = 0.0


def _int_param(name: str, v: Any) -> Any:
    """An integer for the header; anything else is sent as given so the engine names it."""
    if isinstance(v, (bool, np.bool_)):
        raise ParamError("E_PARAM", f"{name} must be an integer, got {v!r}")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    raise ParamError("E_PARAM", f"{name} must be an integer, got {type(v).__name__}")


def _plan_tensors(routing: MoeRouting) -> dict[str, np.ndarray]:
    if not isinstance(routing, MoeRouting):
        raise ParamError("E_PARAM", f"routing must be a MoeRouting from cmoe(), got {type(routing).__name__}")
    return {
        "order": np.ascontiguousarray(routing.order, np.int32),
        "weights": np.ascontiguousarray(routing.weights, np.float32),
    }


class MoeMixin(ClientHost):
    """CMOE methods of :class:`vtpu.Client` (they call ``self.compute``)."""

    def cmoe(
        self,
        logits: Any,
        top_k: int,
        *,
        renormalize: bool = False,
        capacity_factor: float | None = None,
        expert_shards: Any = None,
        expert_base: Any = None,
        timeout: float | None = None,
    ) -> MoeRouting:
        """Route tokens to experts: top-k selection, dispatch plan and load-balancing stats.

        Parameters
        ----------
        logits : array_like, shape (T, E)
            Router logits (numpy array or torch tensor; float32, float16 or bfloat16,
            float64 is sent as float32).
        top_k : int
            Experts per token, 1 ≤ top_k ≤ E.
        renormalize : bool, optional
            Divide the selected probabilities by their sum (Qwen3-MoE ``norm_topk_prob``).
        capacity_factor : float, optional
            When given (> 0), each expert keeps at most ``ceil(c * T * k / E)``
            assignments, in token order; the rest are dropped.
        expert_shards : sequence of int, optional
            Owning shard per expert (E ids, 0..65535), reported as ``expert_shard`` and
            summed into ``shard_counts``.
        expert_base : str or sequence of int, optional
            Instead of ``expert_shards``: expert ``e`` lives at this coordinate with ``e``
            added to its last component, and the sidecar's CROUTE table names its shard.
        timeout : float, optional
            Seconds to wait for the reply.

        Returns
        -------
        MoeRouting

        Raises
        ------
        ShapeError
            ``logits`` is not 2-D with T, E ≥ 1.
        ParamError
            ``top_k`` outside 1..E, a NaN or +inf logit, ``capacity_factor`` ≤ 0, a bad
            placement.
        DTypeError
            Integer logits.
        """
        params: dict[str, Any] = {"top_k": _int_param("top_k", top_k), "renormalize": bool(renormalize)}
        if capacity_factor is not None:
            if not isinstance(capacity_factor, numbers.Real) or isinstance(capacity_factor, bool):
                raise ParamError("E_PARAM", f"capacity_factor must be a number, got {capacity_factor!r}")
            params["capacity_factor"] = float(capacity_factor)
        if expert_shards is not None:
            params["expert_shards"] = [_int_param("expert_shards", v) for v in np.asarray(expert_shards).reshape(-1).tolist()]
        if expert_base is not None:
            from .coords import format_coord

            params["expert_base"] = format_coord(expert_base)
        res, t = self.compute("CMOE", params, {"logits": logits}, timeout=timeout)
        a = res["aux"]
        aux = {
            "aux_loss": float(a["aux_loss"]),
            "switch_loss": float(a["switch_loss"]),
            "z_loss": float(a["z_loss"]),
            "tokens_per_expert": np.asarray(a["tokens_per_expert"], np.float64),
            "router_prob_per_expert": np.asarray(a["router_prob_per_expert"], np.float64),
        }
        i64 = lambda name: t[name].astype(np.int64)  # noqa: E731
        return MoeRouting(
            expert_ids=i64("expert_ids"),
            weights=t["weights"],
            order=i64("order"),
            counts=i64("counts"),
            offsets=i64("offsets"),
            kept=t["kept"].astype(bool),
            capacity=None if res.get("capacity") is None else int(res["capacity"]),
            aux=aux,
            expert_shard=i64("expert_shard"),
            shard_counts=i64("shard_counts"),
            elapsed_ms=float(res.get("elapsed_ms", 0.0)),
        )

    def cmoe_combine(self, expert_out: Any, routing: MoeRouting, *, timeout: float | None = None) -> np.ndarray:
        """Weighted sum of expert outputs back per token.

        ``y[t] = Σ_s kept[t, s] · weights[t, s] · expert_out[pos(t, s)]`` where row
        ``pos(t, s)`` of ``expert_out`` is the one whose ``routing.order`` entry is ``t*k+s``.

        Parameters
        ----------
        expert_out : array_like, shape (N_kept, H)
            Expert outputs, rows in ``routing.order`` order (numpy or torch, float).
        routing : MoeRouting
            From :meth:`cmoe`; its ``weights`` are used as given.
        timeout : float, optional
            Seconds to wait for the reply.

        Returns
        -------
        ndarray of float32, shape (T, H)

        Raises
        ------
        ShapeError
            ``expert_out`` is not 2-D or its row count differs from ``len(routing.order)``.
        """
        _, t = self.compute("CMOE", {"mode": "combine"}, {"expert_out": expert_out, **_plan_tensors(routing)}, timeout=timeout)
        return t["y"]

    def cmoe_combine_backward(
        self, expert_out: Any, routing: MoeRouting, dy: Any, *, timeout: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of :meth:`cmoe_combine` for an upstream gradient ``dy``.

        Parameters
        ----------
        expert_out : array_like, shape (N_kept, H)
            As for :meth:`cmoe_combine`.
        routing : MoeRouting
            From :meth:`cmoe`.
        dy : array_like, shape (T, H)
            Gradient of the loss w.r.t. the combined output.
        timeout : float, optional
            Seconds to wait for the reply.

        Returns
        -------
        d_expert_out : ndarray of float32, shape (N_kept, H)
            ``weights[t, s] · dy[t]`` per kept row.
        d_weights : ndarray of float32, shape (T, k)
            ``<expert_out[pos(t, s)], dy[t]>``; 0 where the assignment was dropped.

        Raises
        ------
        ShapeError
            Mismatched shapes (``dy`` must be (T, H)).
        """
        named = {"expert_out": expert_out, **_plan_tensors(routing), "dy": dy}
        _, t = self.compute("CMOE", {"mode": "combine_backward"}, named, timeout=timeout)
        return t["d_expert_out"], t["d_weights"]
