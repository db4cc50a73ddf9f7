/**
 * The sparse-attention problem shared by the CATTEND kernels (plain JS forward and backward,
 * the ONNX Runtime path and the worker pool): shapes, the visibility rule, and which keys a
 * block of queries can see. Pure data, structured-cloneable, so a worker can receive it.
 *
 * Query i sits at absolute position p = Skv - Sq + i. Key j is visible to it when
 * (not causal or j <= p) and (window is null or |p - j| < window or j in G or p in G).
 */

/** Shapes and masking parameters of one CATTEND call. Tensors are (B, H, S, D), C order. */
export interface AttnSpec {
  B: number;
  Hq: number;
  Hkv: number;
  Sq: number;
  Skv: number;
  D: number;
  /** Band half-width (keys with |p - j| < window), or null for no band limit. */
  window: number | null;
  /** Global token positions, sorted, distinct, each in [0, Skv). */
  globals: number[];
  causal: boolean;
  scale: number;
}

/** Query heads per kv head. */
export function groupSize(s: AttnSpec): number {
  return s.Hq / s.Hkv;
}

/** Absolute position of query row i. */
export function queryPos(s: AttnSpec, i: number): number {
  return s.Skv - s.Sq + i;
}

/** A 0/1 lookup of global positions over [0, Skv). */
export function globalFlags(s: AttnSpec): Uint8Array {
  const g = new Uint8Array(s.Skv);
  for (const j of s.globals) g[j] = 1;
  return g;
}

/** The visibility rule, with `isG` from {@link globalFlags}. */
export function visible(s: AttnSpec, isG: Uint8Array, p: number, j: number): boolean {
  if (s.causal && j > p) return false;
  if (s.window === null) return true;
  const d = p > j ? p - j : j - p;
  return d < s.window || isG[j] === 1 || (p >= 0 && p < s.Skv && isG[p] === 1);
}

/** True when query position p is a global token (it then sees every key the causal rule allows). */
export function isGlobalQuery(s: AttnSpec, isG: Uint8Array, p: number): boolean {
  return s.window !== null && p >= 0 && p < s.Skv && isG[p] === 1;
}

/**
 * The keys a non-global query at positions [pLo, pHi] may see, ascending: the band
 * [pLo - window + 1, pHi (+ window - 1 when not causal)] clipped to [0, Skv), then the
 * global positions outside it (in causal mode only those ≤ pHi). Every visible key is
 * listed; some listed keys may be invisible to some rows (the caller masks them).
 */
export function keysForRows(s: AttnSpec, pLo: number, pHi: number): Int32Array {
  const hiRaw = s.causal ? pHi : s.window === null ? s.Skv - 1 : pHi + s.window - 1;
  const hi = Math.min(s.Skv - 1, hiRaw);
  const lo = s.window === null ? 0 : Math.max(0, pLo - s.window + 1);
  const out: number[] = [];
  for (const g of s.globals) if (g < lo && g <= hi) out.push(g);
  for (let j = lo; j <= hi; j++) out.push(j);
  for (const g of s.globals) if (g > hi && !s.causal) out.push(g);
  return Int32Array.from(out);
}

/** Every key the causal rule allows to a query at position p (a global query sees all of them). */
export function keysForGlobalRow(s: AttnSpec, p: number): Int32Array {
  const hi = s.causal ? Math.min(s.Skv - 1, p) : s.Skv - 1;
  const out = new Int32Array(Math.max(0, hi + 1));
  for (let j = 0; j < out.length; j++) out[j] = j;
  return out;
}
