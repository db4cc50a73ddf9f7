/**
 * Plain-JS sparse attention forward: the reference and fallback path of CATTEND, and what
 * the worker pool runs. Pure over Float32Arrays. Work is split into units (b, kv head);
 * inside a unit, queries go in blocks of {@link BLOCK_Q} positions (all the query heads of
 * the kv head together) against only the keys the block can see (its band + globals),
 * streamed in chunks with an online softmax — never the full Sq×Skv score matrix.
 */
import { AttnSpec, globalFlags, groupSize, isGlobalQuery, keysForGlobalRow, keysForRows, queryPos, visible } from './attention_spec';

/** Query positions per block. */
export const BLOCK_Q = 32;
/** Keys per streamed chunk. */
const BLOCK_K = 64;

/** Output buffers: o like q, lse (B, Hq, Sq) when wanted. */
export interface AttnOut {
  o: Float32Array;
  lse: Float32Array | null;
}

/** Number of independent work units (b, kv head). */
export function attnUnits(s: AttnSpec): number {
  return s.B * s.Hkv;
}

/**
 * Query row groups of one unit: blocks of non-global rows sharing a key list, and one
 * group per global query row (it sees every key).
 */
export function rowGroups(s: AttnSpec): { rows: Int32Array; keys: Int32Array }[] {
  const isG = globalFlags(s);
  const groups: { rows: Int32Array; keys: Int32Array }[] = [];
  for (let i0 = 0; i0 < s.Sq; i0 += BLOCK_Q) {
    const rows: number[] = [];
    for (let i = i0; i < Math.min(s.Sq, i0 + BLOCK_Q); i++) {
      const p = queryPos(s, i);
      if (isGlobalQuery(s, isG, p)) groups.push({ rows: Int32Array.of(i), keys: keysForGlobalRow(s, p) });
      else rows.push(i);
    }
    if (rows.length) groups.push({ rows: Int32Array.from(rows), keys: keysForRows(s, queryPos(s, rows[0]), queryPos(s, rows[rows.length - 1])) });
  }
  return groups;
}

/**
 * Computes units [u0, u1) of the forward pass into `out` (which may be shared between
 * workers: units write disjoint rows). Rows with no visible key get o = 0, lse = -Inf.
 * `keyRow` (position → row) reads k/v compacted to the positions some query can see
 * (R rows per unit, R = k.length / (units·D)); null: k/v hold all Skv positions.
 */
export function attendForward(s: AttnSpec, q: Float32Array, k: Float32Array, v: Float32Array, out: AttnOut, u0 = 0, u1 = attnUnits(s),
  keyRow: Int32Array | null = null): void {
  const { D, Sq } = s;
  const rowsPerUnit = keyRow ? k.length / (attnUnits(s) * D) : s.Skv;
  const G = groupSize(s);
  const isG = globalFlags(s);
  const groups = rowGroups(s);
  const maxM = BLOCK_Q * G;
  const qb = new Float32Array(maxM * D);
  const acc = new Float32Array(maxM * D);
  const m = new Float64Array(maxM);
  const l = new Float64Array(maxM);
  const sc = new Float32Array(maxM * BLOCK_K);
  const pos = new Int32Array(maxM);
  const koff = new Int32Array(BLOCK_K);
  for (let u = u0; u < u1; u++) {
    const b = Math.floor(u / s.Hkv);
    const kvBase = u * rowsPerUnit * D;
    for (const { rows, keys } of groups) {
      const M = rows.length * G;
      // Row r = g * rows.length + t: head (u % Hkv) * G + g, query rows[t].
      for (let g = 0, r = 0; g < G; g++) {
        const qBase = ((b * s.Hq + (u % s.Hkv) * G + g) * Sq) * D;
        for (let t = 0; t < rows.length; t++, r++) {
          const src = qBase + rows[t] * D;
          for (let d = 0; d < D; d++) qb[r * D + d] = q[src + d] * s.scale;
          pos[r] = queryPos(s, rows[t]);
        }
      }
      m.fill(-Infinity, 0, M);
      l.fill(0, 0, M);
      acc.fill(0, 0, M * D);
      for (let c0 = 0; c0 < keys.length; c0 += BLOCK_K) {
        const nc = Math.min(BLOCK_K, keys.length - c0);
        for (let c = 0; c < nc; c++) koff[c] = kvBase + (keyRow ? keyRow[keys[c0 + c]] : keys[c0 + c]) * D;
        scoreChunk(s, isG, qb, k, koff, keys, c0, nc, pos, M, sc);
        accumulate(v, koff, nc, M, D, sc, m, l, acc);
      }
      for (let g = 0, r = 0; g < G; g++) {
        const h = (u % s.Hkv) * G + g;
        for (let t = 0; t < rows.length; t++, r++) {
          const dst = ((b * s.Hq + h) * Sq + rows[t]) * D;
          const inv = l[r] > 0 ? 1 / l[r] : 0;
          for (let d = 0; d < D; d++) out.o[dst + d] = acc[r * D + d] * inv;
          if (out.lse) out.lse[(b * s.Hq + h) * Sq + rows[t]] = l[r] > 0 ? m[r] + Math.log(l[r]) : -Infinity;
        }
      }
    }
  }
}

/** Scaled scores of M rows against keys[c0, c0+nc) (their rows start at koff); invisible pairs get -Inf. */
function scoreChunk(s: AttnSpec, isG: Uint8Array, qb: Float32Array, k: Float32Array, koff: Int32Array, keys: Int32Array,
  c0: number, nc: number, pos: Int32Array, M: number, sc: Float32Array): void {
  const D = s.D;
  for (let r = 0; r < M; r++) {
    const qo = r * D;
    const p = pos[r];
    let c = 0;
    // Four keys at a time: one pass over q for four dot products.
    for (; c + 4 <= nc; c += 4) {
      const k0 = koff[c], k1 = koff[c + 1], k2 = koff[c + 2], k3 = koff[c + 3];
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let d = 0; d < D; d++) {
        const x = qb[qo + d];
        a0 += x * k[k0 + d];
        a1 += x * k[k1 + d];
        a2 += x * k[k2 + d];
        a3 += x * k[k3 + d];
      }
      sc[r * BLOCK_K + c] = a0;
      sc[r * BLOCK_K + c + 1] = a1;
      sc[r * BLOCK_K + c + 2] = a2;
      sc[r * BLOCK_K + c + 3] = a3;
    }
    for (; c < nc; c++) {
      const ko = koff[c];
      let a = 0;
      for (let d = 0; d < D; d++) a += qb[qo + d] * k[ko + d];
      sc[r * BLOCK_K + c] = a;
    }
    for (c = 0; c < nc; c++) if (!visible(s, isG, p, keys[c0 + c])) sc[r * BLOCK_K + c] = -Infinity;
  }
}

/** Online-softmax update of (m, l, acc) with one chunk of scores and its values. */
function accumulate(v: Float32Array, koff: Int32Array, nc: number, M: number, D: number,
  sc: Float32Array, m: Float64Array, l: Float64Array, acc: Float32Array): void {
  for (let r = 0; r < M; r++) {
    const so = r * BLOCK_K;
    let mx = m[r];
    for (let c = 0; c < nc; c++) if (sc[so + c] > mx) mx = sc[so + c];
    if (mx === -Infinity) continue; // nothing visible yet
    const corr = Math.exp(m[r] - mx);
    m[r] = mx;
    let sum = l[r] * corr;
    const ao = r * D;
    if (corr !== 1) for (let d = 0; d < D; d++) acc[ao + d] *= corr;
    for (let c = 0; c < nc; c++) {
      const w = sc[so + c] === -Infinity ? 0 : Math.exp(sc[so + c] - mx);
      if (w === 0) continue;
      sum += w;
      const vo = koff[c];
      for (let d = 0; d < D; d++) acc[ao + d] += w * v[vo + d];
    }
    l[r] = sum;
  }
}
