/**
 * Plain-JS sparse attention backward (flash-attention style, from the saved lse): given
 * q, k, v, o, dO and lse, computes dq, dk, dv over the same visible keys as the forward
 * pass. Correctness first; units (b, kv head) write disjoint rows so workers can split them.
 *
 * P = exp(S·scale − lse), dV = Pᵀ dO, dP = dO Vᵀ, Dsum = rowsum(dO ∘ O),
 * dS = P ∘ (dP − Dsum), dQ = dS K · scale, dK = dSᵀ Q · scale.
 */
import { AttnSpec, globalFlags, groupSize, visible, queryPos } from './attention_spec';
import { attnUnits, rowGroups } from './attention';

/** Gradients: dq like q, dk and dv like k and v (summed over the query heads of a kv head). */
export interface AttnGrads {
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/** Inputs of the backward pass. */
export interface AttnSaved {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  dO: Float32Array;
  lse: Float32Array;
}

/** Computes units [u0, u1) of the backward pass into `g` (zeroed by the caller). */
export function attendBackward(s: AttnSpec, t: AttnSaved, g: AttnGrads, u0 = 0, u1 = attnUnits(s)): void {
  const { D, Sq, Skv, scale } = s;
  const G = groupSize(s);
  const isG = globalFlags(s);
  const groups = rowGroups(s);
  for (let u = u0; u < u1; u++) {
    const b = Math.floor(u / s.Hkv);
    const kvBase = u * Skv * D;
    for (const { rows, keys } of groups) {
      for (let gi = 0; gi < G; gi++) {
        const h = (u % s.Hkv) * G + gi;
        for (const i of rows) {
          const row = (b * s.Hq + h) * Sq + i;
          const lse = t.lse[row];
          if (lse === -Infinity) continue; // no visible key: output 0, no gradient
          const qo = row * D;
          const p = queryPos(s, i);
          let dsum = 0;
          for (let d = 0; d < D; d++) dsum += t.dO[qo + d] * t.o[qo + d];
          for (const j of keys) {
            if (!visible(s, isG, p, j)) continue;
            const ko = kvBase + j * D;
            let sdot = 0;
            let dp = 0;
            for (let d = 0; d < D; d++) {
              sdot += t.q[qo + d] * t.k[ko + d];
              dp += t.dO[qo + d] * t.v[ko + d];
            }
            const pr = Math.exp(sdot * scale - lse);
            const ds = pr * (dp - dsum) * scale;
            for (let d = 0; d < D; d++) {
              g.dv[ko + d] += pr * t.dO[qo + d];
              g.dq[qo + d] += ds * t.k[ko + d];
              g.dk[ko + d] += ds * t.q[qo + d];
            }
          }
        }
      }
    }
  }
}
