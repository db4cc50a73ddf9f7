/**
 * MoE combine and its backward for CMOE: expert outputs arrive as one (N_kept, H) matrix
 * whose rows follow a dispatch plan's `order` (flat assignment indices t·k+s); dropped
 * assignments simply do not appear in `order`.
 */

/**
 * Why `order` is not a valid plan for T·k assignments (an index out of range or repeated),
 * or null. The op turns a message into E_PARAM.
 */
export function checkOrder(order: Int32Array, n: number): string | null {
  const seen = new Uint8Array(n);
  for (let p = 0; p < order.length; p++) {
    const a = order[p];
    if (a < 0 || a >= n) return `order[${p}] = ${a} is outside 0..${n - 1}`;
    if (seen[a]) return `order[${p}] = ${a} appears twice`;
    seen[a] = 1;
  }
  return null;
}

/**
 * y[t] = Σ over kept slots s of weights[t·k+s] · expertOut[pos(t,s)], where pos is the row
 * of `order` holding t·k+s. Returns y (T·H): `out` when given, else a new array. `acc`
 * (at least T·H, contents ignored) is the float64 accumulator to reuse.
 */
export function combine(
  expertOut: Float32Array, H: number, order: Int32Array, weights: Float32Array, T: number, k: number,
  out?: Float32Array, acc?: Float64Array,
): Float32Array {
  const y = acc ? acc.subarray(0, T * H).fill(0) : new Float64Array(T * H);
  for (let p = 0; p < order.length; p++) {
    const a = order[p];
    const w = weights[a];
    const yo = ((a / k) | 0) * H;
    const xo = p * H;
    for (let h = 0; h < H; h++) y[yo + h] += w * expertOut[xo + h];
  }
  if (!out) return new Float32Array(y); // accumulated in float64, rounded once
  out.set(y);
  return out;
}

/** Gradients of {@link combine}: w.r.t. expertOut (N_kept·H) and weights (T·k, 0 where dropped). */
export function combineBackward(
  expertOut: Float32Array, H: number, order: Int32Array, weights: Float32Array, dy: Float32Array, T: number, k: number,
): { dExpertOut: Float32Array; dWeights: Float32Array } {
  const dExpertOut = new Float32Array(order.length * H);
  const dWeights = new Float32Array(T * k);
  for (let p = 0; p < order.length; p++) {
    const a = order[p];
    const w = weights[a];
    const yo = ((a / k) | 0) * H;
    const xo = p * H;
    let dot = 0;
    for (let h = 0; h < H; h++) {
      const g = dy[yo + h];
      dExpertOut[xo + h] = w * g;
      dot += expertOut[xo + h] * g;
    }
    dWeights[a] = dot;
  }
  return { dExpertOut, dWeights };
}
