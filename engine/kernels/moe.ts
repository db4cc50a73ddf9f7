/**
 * Mixture-of-experts routing math for CMOE: softmax + top-k selection, the dispatch plan
 * (assignments grouped by expert, with optional capacity drops) and the load-balancing
 * statistics. Pure functions over typed arrays; no engine or wire types.
 *
 * Selection rule: top-k by softmax probability, higher first; TIES go to the lower expert
 * index. This equals `torch.sort(probs, dim=-1, descending=True, stable=True)[:, :k]` (and
 * `torch.topk` on tie-free rows). Probabilities are computed in float64 and rounded to
 * float32, so ties are decided on the float32 probabilities that are reported as weights.
 */

import { expNonPositive } from './exp';

/** Options of {@link route}. */
export interface RouteOptions {
  /** Experts per token, 1..E. */
  topK: number;
  /** Divide the selected probabilities by their row sum (Qwen3-MoE `norm_topk_prob`). */
  renormalize: boolean;
  /** Capacity factor c > 0: each expert keeps at most ceil(c·T·k/E) assignments; null keeps all. */
  capacityFactor: number | null;
}

/** Load-balancing statistics of one routing (all over assignments before capacity drops). */
export interface AuxStats {
  /** transformers' Qwen3-MoE `load_balancing_loss_func` (unscaled): E · Σ_e f_e · P_e. */
  auxLoss: number;
  /** Switch Transformer loss E · Σ_e f1_e · P_e, f1 = fraction of tokens whose top-1 is e. */
  switchLoss: number;
  /** Router z-loss: mean over tokens of logsumexp(logits)². */
  zLoss: number;
  /** f_e = (top-k assignments to e) / T; sums to k (as in transformers). */
  tokensPerExpert: Float64Array;
  /** P_e = mean over tokens of softmax prob of e. */
  routerProbPerExpert: Float64Array;
}

/** Where each kept assignment goes: flat assignment indices t·k+s grouped by expert. */
export interface DispatchPlan {
  /** Kept assignment indices sorted by (expert, token, slot); length = kept count. */
  order: Int32Array;
  /** Kept assignments per expert (E). */
  counts: Int32Array;
  /** Exclusive prefix sums of counts (E+1): expert e's rows are order[offsets[e]..offsets[e+1]). */
  offsets: Int32Array;
  /** 1 where assignment t·k+s is kept, 0 where capacity dropped it (T·k). */
  kept: Uint8Array;
  /** Per-expert capacity, or null when nothing can drop. */
  capacity: number | null;
}

/** A full routing: selection, weights, plan and statistics. */
export interface Routing extends DispatchPlan {
  /** Selected experts (T·k), per row best first. */
  expertIds: Int32Array;
  /** Their probabilities (renormalized when asked), float32 (T·k). */
  weights: Float32Array;
  aux: AuxStats;
}

/**
 * Why a logits tensor cannot be routed (a NaN or +Inf value, or a row of only -Inf), or
 * null when it can. The op turns a message into E_PARAM.
 */
export function checkLogits(logits: Float32Array, T: number, E: number): string | null {
  for (let t = 0; t < T; t++) {
    let finite = false;
    for (let e = 0; e < E; e++) {
      const x = logits[t * E + e];
      if (x !== x || x === Infinity) return `logits[${t}, ${e}] is ${x}`;
      if (x !== -Infinity) finite = true;
    }
    if (!finite) return `logits row ${t} is all -inf`;
  }
  return null;
}

/** Capacity per expert for a capacity factor: ceil(c·T·k/E) (Switch: T/E·c with k = 1). */
export function expertCapacity(c: number, T: number, k: number, E: number): number {
  return Math.ceil((c * T * k) / E);
}

/**
 * Inserts candidate (p, e) into the descending top-k buffer of length `n` (≤ k) if it
 * belongs there; strict `>` keeps an earlier (lower) index ahead on ties.
 */
function insert(bp: Float32Array, be: Int32Array, n: number, k: number, p: number, e: number): number {
  // Not full: append; full (the caller checked p beats the last): overwrite the last.
  let j = n < k ? n++ : k - 1;
  while (j > 0 && p > bp[j - 1]) {
    bp[j] = bp[j - 1];
    be[j] = be[j - 1];
    j--;
  }
  bp[j] = p;
  be[j] = e;
  return n;
}

/**
 * Routes T tokens over E experts: softmax (float64, stable), top-k with the tie rule of
 * this module, optional renormalization, the dispatch plan and the aux statistics.
 * Logits must have passed {@link checkLogits}; 1 ≤ topK ≤ E.
 */
export function route(logits: Float32Array, T: number, E: number, opts: RouteOptions): Routing {
  const k = opts.topK;
  const expertIds = new Int32Array(T * k);
  const weights = new Float32Array(T * k);
  const ex = new Float64Array(E);
  const bp = new Float32Array(k);
  const be = new Int32Array(k);
  const probSum = new Float64Array(E);
  const assigned = new Float64Array(E);
  const top1 = new Float64Array(E);
  let z = 0;
  for (let t = 0; t < T; t++) {
    const base = t * E;
    let m = -Infinity;
    for (let e = 0; e < E; e++) if (logits[base + e] > m) m = logits[base + e];
    let s = 0;
    for (let e = 0; e < E; e++) {
      const v = expNonPositive(logits[base + e] - m);
      ex[e] = v;
      s += v;
    }
    const lse = m + Math.log(s);
    z += lse * lse;
    const inv = 1 / s;
    // Partial selection on the float32 probs: a k-slot insertion buffer that most
    // entries leave after one compare.
    let n = 0;
    let thr = -1; // the k-th best so far once the buffer is full; probs are ≥ 0
    for (let e = 0; e < E; e++) {
      const p = Math.fround(ex[e] * inv);
      probSum[e] += p;
      if (p > thr) {
        n = insert(bp, be, n, k, p, e);
        if (n === k) thr = bp[k - 1];
      }
    }
    let wsum = 0;
    for (let j = 0; j < k; j++) wsum += bp[j];
    const o = t * k;
    for (let j = 0; j < k; j++) {
      expertIds[o + j] = be[j];
      weights[o + j] = opts.renormalize ? bp[j] / wsum : bp[j];
      assigned[be[j]] += 1;
    }
    top1[be[0]] += 1;
  }
  const capacity = opts.capacityFactor === null ? null : expertCapacity(opts.capacityFactor, T, k, E);
  const plan = dispatchPlan(expertIds, T, k, E, capacity);
  return { expertIds, weights, ...plan, aux: auxStats(assigned, top1, probSum, z, T, E) };
}

/** The statistics from per-expert assignment counts, top-1 counts and probability sums. */
function auxStats(assigned: Float64Array, top1: Float64Array, probSum: Float64Array, z: number, T: number, E: number): AuxStats {
  const tokensPerExpert = new Float64Array(E);
  const routerProbPerExpert = new Float64Array(E);
  let aux = 0;
  let sw = 0;
  for (let e = 0; e < E; e++) {
    tokensPerExpert[e] = assigned[e] / T;
    routerProbPerExpert[e] = probSum[e] / T;
    aux += tokensPerExpert[e] * routerProbPerExpert[e];
    sw += (top1[e] / T) * routerProbPerExpert[e];
  }
  return { auxLoss: aux * E, switchLoss: sw * E, zLoss: z / T, tokensPerExpert, routerProbPerExpert };
}

/**
 * The dispatch plan of a selection (expertIds, T·k, values 0..E-1) by counting sort:
 * assignments grouped by expert, within an expert in token then slot order. With a
 * capacity, an expert keeps its first `capacity` assignments in token order; the rest are
 * dropped (kept = 0) and left out of order and counts.
 */
export function dispatchPlan(expertIds: Int32Array, T: number, k: number, E: number, capacity: number | null): DispatchPlan {
  const n = T * k;
  const counts = new Int32Array(E);
  const kept = new Uint8Array(n);
  const cap = capacity ?? Infinity;
  for (let a = 0; a < n; a++) {
    const e = expertIds[a];
    if (counts[e] < cap) {
      counts[e]++;
      kept[a] = 1;
    }
  }
  const offsets = new Int32Array(E + 1);
  for (let e = 0; e < E; e++) offsets[e + 1] = offsets[e] + counts[e];
  const order = new Int32Array(offsets[E]);
  const next = offsets.slice(0, E);
  for (let a = 0; a < n; a++) if (kept[a]) order[next[expertIds[a]]++] = a;
  return { order, counts, offsets, kept, capacity };
}

/**
 * Kept assignments per shard given each expert's owning shard (E values ≥ 0); the
 * result has max(shard)+1 entries.
 */
export function shardCounts(counts: Int32Array, expertShard: Int32Array): Int32Array {
  let s = 0;
  for (let e = 0; e < expertShard.length; e++) s = Math.max(s, expertShard[e] + 1);
  const out = new Int32Array(s);
  for (let e = 0; e < counts.length; e++) out[expertShard[e]] += counts[e];
  return out;
}
