/** Dense reference attention and input builders for the CATTEND suites. */
import { DType, OpInput } from '../../../engine/types';
import { tensorBatch } from '../../../engine/tensors';
import { AttnSpec, globalFlags, queryPos, visible } from '../../../engine/kernels/attention_spec';

/** Deterministic pseudo-random floats in [-1, 1). */
export function rand(n: number, seed: number): Float32Array {
  let x = seed * 2654435761 >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = (x / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** A spec with defaults (causal, scale 1/sqrt(D), no window, no globals). */
export function spec(p: Partial<AttnSpec> & { B: number; Hq: number; Hkv: number; Sq: number; Skv: number; D: number }): AttnSpec {
  return { window: null, globals: [], causal: true, scale: 1 / Math.sqrt(p.D), ...p };
}

/** Dense attention over the full Sq×Skv mask, in float64: o and lse. */
export function denseAttention(s: AttnSpec, q: Float32Array, k: Float32Array, v: Float32Array): { o: Float64Array; lse: Float64Array } {
  const { B, Hq, Hkv, Sq, Skv, D } = s;
  const G = Hq / Hkv;
  const isG = globalFlags(s);
  const o = new Float64Array(q.length);
  const lse = new Float64Array(B * Hq * Sq);
  const sc = new Float64Array(Skv);
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let i = 0; i < Sq; i++) {
    const qo = ((b * Hq + h) * Sq + i) * D;
    const kb = (b * Hkv + Math.floor(h / G)) * Skv * D;
    const p = queryPos(s, i);
    let mx = -Infinity;
    for (let j = 0; j < Skv; j++) {
      if (!visible(s, isG, p, j)) { sc[j] = -Infinity; continue; }
      let a = 0;
      for (let d = 0; d < D; d++) a += q[qo + d] * k[kb + j * D + d];
      sc[j] = a * s.scale;
      mx = Math.max(mx, sc[j]);
    }
    const row = (b * Hq + h) * Sq + i;
    if (mx === -Infinity) { lse[row] = -Infinity; continue; }
    let sum = 0;
    for (let j = 0; j < Skv; j++) sum += sc[j] === -Infinity ? 0 : Math.exp(sc[j] - mx);
    lse[row] = mx + Math.log(sum);
    for (let j = 0; j < Skv; j++) {
      if (sc[j] === -Infinity) continue;
      const w = Math.exp(sc[j] - mx) / sum;
      for (let d = 0; d < D; d++) o[qo + d] += w * v[kb + j * D + d];
    }
  }
  return { o, lse };
}

/** Largest |a - b|. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** A CATTEND request with named float32 tensors. */
export function request(params: Record<string, unknown>, tensors: Record<string, { shape: number[]; data: Float32Array | Int32Array }>): OpInput {
  const names = Object.keys(tensors);
  return { params: { ...params, tensors: names }, scrolls: tensorBatch(names.map((n) => tensors[n])) };
}

/** q, k, v of a spec's shapes. */
export function qkv(s: AttnSpec, seed: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  return {
    q: rand(s.B * s.Hq * s.Sq * s.D, seed),
    k: rand(s.B * s.Hkv * s.Skv * s.D, seed + 1),
    v: rand(s.B * s.Hkv * s.Skv * s.D, seed + 2),
  };
}

export { DType };
