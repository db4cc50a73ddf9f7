/**
 * CMOE: mixture-of-experts routing, dispatch plan, load-balancing statistics and combine
 * (the math lives in engine/kernels/moe.ts and moe_combine.ts). Three modes:
 *
 * - `route` (default): tensor `logits` (T, E) float → `expert_ids`, `weights` (T, k),
 *   `order` (N_kept), `counts` (E), `offsets` (E+1), `kept` (T, k; 1/0), `expert_shard`
 *   (E), `shard_counts` (S); result has `capacity`, `n_kept`, `dropped` and `aux`.
 * - `combine`: tensors `expert_out` (N_kept, H), `order` (N_kept) int, `weights` (T, k)
 *   → `y` (T, H).
 * - `combine_backward`: the same plus `dy` (T, H) → `d_expert_out` (N_kept, H),
 *   `d_weights` (T, k).
 *
 * Expert placement ("CROUTE for MoE"): `expert_shards` (E ints, 0..65535) names each
 * expert's owning shard, or `expert_base` (a coordinate) places expert e at that
 * coordinate with e added to its last component and asks the engine's CROUTE table who
 * owns it. Default: every expert on shard 0.
 */
import type { EngineContext, Instruction } from '../instruction';
import type { OpInput, OpOutput } from '../types';
import { VtpuError } from '../errors';
import { coordFromParam } from '../coords';
import { boolParam, intParam, tensorsBody } from './params';
import { expectShape, floatInput, intInput, namedTensors, tensorOutput, Tensor } from '../tensors';
import { checkLogits, route, shardCounts } from '../kernels/moe';
import { checkOrder, combine, combineBackward } from '../kernels/moe_combine';

const OP = 'CMOE';
/** Largest shard id an expert placement may name (shard_counts has max+1 entries). */
const MAX_SHARD = 65535;

/** The optional capacity factor: a finite number > 0, or null/absent for none. */
function capacityParam(p: Record<string, unknown>): number | null {
  const c = p.capacity_factor;
  if (c === undefined || c === null) return null;
  if (typeof c !== 'number' || !Number.isFinite(c) || c <= 0) {
    throw new VtpuError('E_PARAM', `${OP}: capacity_factor must be a number > 0 or null, got ${JSON.stringify(c)}`);
  }
  return c;
}

/** Owning shard per expert from `expert_shards` or `expert_base` (see the module doc). */
function expertShards(engine: EngineContext, p: Record<string, unknown>, E: number): Int32Array {
  const out = new Int32Array(E);
  if (p.expert_shards !== undefined && p.expert_base !== undefined) {
    throw new VtpuError('E_PARAM', `${OP}: give expert_shards or expert_base, not both`);
  }
  const s = p.expert_shards;
  if (s !== undefined) {
    if (!Array.isArray(s) || s.length !== E) throw new VtpuError('E_PARAM', `${OP}: expert_shards must be a list of ${E} shard ids`);
    s.forEach((v, e) => {
      if (!Number.isInteger(v) || v < 0 || v > MAX_SHARD) {
        throw new VtpuError('E_PARAM', `${OP}: expert_shards[${e}] must be an integer 0..${MAX_SHARD}, got ${JSON.stringify(v)}`);
      }
      out[e] = v;
    });
  } else if (p.expert_base !== undefined) {
    const c = coordFromParam(p.expert_base, 'expert_base');
    const last = c.length - 1;
    if (c[last] + E - 1 > 0xffffffff) throw new VtpuError('E_COORD', `${OP}: expert_base's last component + ${E - 1} overflows`);
    const base = c[last];
    for (let e = 0; e < E; e++) {
      c[last] = base + e;
      const shard = engine.routes.route(c).shard;
      if (shard > MAX_SHARD) throw new VtpuError('E_PARAM', `${OP}: expert ${e} is owned by shard ${shard}, over ${MAX_SHARD}`);
      out[e] = shard;
    }
  }
  return out;
}

function runRoute(engine: EngineContext, input: OpInput, t0: number): OpOutput {
  const p = input.params;
  const logits = floatInput(OP, namedTensors(OP, input), 'logits');
  if (logits.shape.length !== 2) throw new VtpuError('E_SHAPE', `${OP}: logits must be 2-D (tokens, experts), got shape [${logits.shape.join(', ')}]`);
  const [T, E] = logits.shape;
  if (T < 1 || E < 1) throw new VtpuError('E_SHAPE', `${OP}: logits needs at least one token and one expert, got [${T}, ${E}]`);
  if (p.top_k === undefined) throw new VtpuError('E_PARAM', `${OP}: top_k is required`);
  const k = intParam(OP, p, 'top_k', 1, 1, E);
  const renormalize = boolParam(OP, p, 'renormalize', false);
  const capacityFactor = capacityParam(p);
  const shards = expertShards(engine, p, E);
  const bad = checkLogits(logits.data, T, E);
  if (bad !== null) throw new VtpuError('E_PARAM', `${OP}: ${bad}`);
  const r = route(logits.data, T, E, { topK: k, renormalize, capacityFactor });
  const kept = new Int32Array(T * k);
  for (let i = 0; i < kept.length; i++) kept[i] = r.kept[i];
  const sc = shardCounts(r.counts, shards);
  const aux = {
    aux_loss: r.aux.auxLoss, switch_loss: r.aux.switchLoss, z_loss: r.aux.zLoss,
    tokens_per_expert: Array.from(r.aux.tokensPerExpert), router_prob_per_expert: Array.from(r.aux.routerProbPerExpert),
  };
  const out = tensorOutput(
    { mode: 'route', tokens: T, experts: E, top_k: k, capacity: r.capacity, n_kept: r.order.length, dropped: T * k - r.order.length, aux },
    {
      expert_ids: { shape: [T, k], data: r.expertIds }, weights: { shape: [T, k], data: r.weights },
      order: { shape: [r.order.length], data: r.order }, counts: { shape: [E], data: r.counts },
      offsets: { shape: [E + 1], data: r.offsets }, kept: { shape: [T, k], data: kept },
      expert_shard: { shape: [E], data: shards }, shard_counts: { shape: [sc.length], data: sc },
    },
  );
  out.result.elapsed_ms = performance.now() - t0;
  return out;
}

/** The tensors combine and its backward share, checked against each other. */
function combineInputs(input: OpInput): { x: Tensor<Float32Array>; order: Int32Array; w: Tensor<Float32Array>; named: ReturnType<typeof namedTensors> } {
  const named = namedTensors(OP, input);
  const x = floatInput(OP, named, 'expert_out');
  const order = intInput(OP, named, 'order');
  const w = floatInput(OP, named, 'weights');
  expectShape(OP, 'order', order, [null]);
  expectShape(OP, 'weights', w, [null, null]);
  expectShape(OP, 'expert_out', x, [null, null]);
  if (x.shape[0] !== order.shape[0]) {
    throw new VtpuError('E_SHAPE', `${OP}: expert_out has ${x.shape[0]} rows but the plan keeps ${order.shape[0]} assignments`);
  }
  const bad = checkOrder(order.data, w.shape[0] * w.shape[1]);
  if (bad !== null) throw new VtpuError('E_PARAM', `${OP}: ${bad}`);
  return { x, order: order.data, w, named };
}

function runCombine(input: OpInput, backward: boolean, t0: number): OpOutput {
  const { x, order, w, named } = combineInputs(input);
  const [T, k] = w.shape;
  const H = x.shape[1];
  let out: OpOutput;
  if (!backward) {
    out = tensorOutput({ mode: 'combine' }, { y: { shape: [T, H], data: combine(x.data, H, order, w.data, T, k) } });
  } else {
    const dy = floatInput(OP, named, 'dy');
    expectShape(OP, 'dy', dy, [T, H]);
    const g = combineBackward(x.data, H, order, w.data, dy.data, T, k);
    out = tensorOutput({ mode: 'combine_backward' }, {
      d_expert_out: { shape: [order.length, H], data: g.dExpertOut }, d_weights: { shape: [T, k], data: g.dWeights },
    });
  }
  out.result.elapsed_ms = performance.now() - t0;
  return out;
}

/** The CMOE instruction. */
export const CMOE: Instruction = {
  name: OP,
  body: tensorsBody,
  run(engine, input) {
    const t0 = performance.now();
    const mode = input.params.mode ?? 'route';
    if (mode === 'route') return runRoute(engine, input, t0);
    if (mode === 'combine') return runCombine(input, false, t0);
    if (mode === 'combine_backward') return runCombine(input, true, t0);
    throw new VtpuError('E_PARAM', `${OP}: mode must be route, combine or combine_backward, got ${JSON.stringify(mode)}`);
  },
};
