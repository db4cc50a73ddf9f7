/**
 * Shared pieces of the coordinate search: answer layout, exact per-candidate keys, the
 * candidate scan (small sets and exact-arithmetic fallbacks) and per-request buffers.
 */
import { DIMS } from '../types';
import type { Box, SearchStack } from './kdtree';
import type { TopK } from './topk';

/** Coordinate-space metrics. */
export type CoordMetric = 'l1' | 'l2' | 'hier';

/** Candidate sets up to this size are scanned rather than searched in the tree. */
export const SCAN_MAX = 4096;

/**
 * Answers, k per query, nearest first: `coords` (9 per row) and the exact distance of each
 * as two words, `hi`·2^32 + `lo` (squared for l2, the hier distance for hier).
 */
export interface CoordAnswer {
  coords: Uint32Array;
  hi: Float64Array;
  lo: Float64Array;
}

/** Leading components of rows a (of x) and b (of y) that agree. */
export function commonPrefix(x: ArrayLike<number>, a: number, y: ArrayLike<number>, b: number): number {
  let d = 0;
  while (d < DIMS && x[a + d] === y[b + d]) d++;
  return d;
}

/** Exact squared L2 as two words (hi·2^32 + lo) from 16-bit halves of each difference. */
export function l2Words(x: ArrayLike<number>, a: number, q: ArrayLike<number>, b: number, out: Float64Array): void {
  let h2 = 0, m = 0, l2 = 0;
  for (let d = 0; d < DIMS; d++) {
    const g = Math.abs(x[a + d] - q[b + d]);
    const h = Math.floor(g / 65536);
    const l = g - h * 65536;
    h2 += h * h;
    m += 2 * h * l;
    l2 += l * l;
  }
  const t = m * 65536 + l2; // < 2^53: exact
  const carry = Math.floor(t / 4294967296);
  out[0] = h2 + carry;
  out[1] = t - carry * 4294967296;
}

/** Scans flat candidate rows, offering (a, b) by metric: l1 (L1, 0), l2 (two words), hier (hier, L1). */
export function scan(cands: Uint32Array, box: Box | null, q: ArrayLike<number>, qo: number, metric: CoordMetric, heap: TopK): void {
  const w = new Float64Array(2);
  const n = cands.length / DIMS;
  for (let r = 0; r < n; r++) {
    const o = r * DIMS;
    if (box !== null) {
      let inside = true;
      for (let d = 0; d < DIMS && inside; d++) inside = cands[o + d] >= box.lo[d] && cands[o + d] <= box.hi[d];
      if (!inside) continue;
    }
    if (metric === 'l2') {
      l2Words(cands, o, q, qo, w);
      heap.offer(w[0], w[1], cands, o);
      continue;
    }
    let l1 = 0;
    for (let d = 0; d < DIMS; d++) l1 += Math.abs(cands[o + d] - q[qo + d]);
    if (metric === 'l1') heap.offer(l1, 0, cands, o);
    else heap.offer(DIMS - commonPrefix(cands, o, q, qo), l1, cands, o);
  }
}

/** Writes a drained heap's keys as exact two-word distances: `pair` keys already are; else D = a. */
export function emitDistances(ans: CoordAnswer, row: number, n: number, a: Float64Array, b: Float64Array, pair: boolean): void {
  for (let i = 0; i < n; i++) {
    if (pair) {
      ans.hi[row + i] = a[i];
      ans.lo[row + i] = b[i];
    } else {
      const h = Math.floor(a[i] / 4294967296);
      ans.hi[row + i] = h;
      ans.lo[row + i] = a[i] - h * 4294967296;
    }
  }
}

/** Empty answers for nq queries. */
export function newAnswer(nq: number, k: number): CoordAnswer {
  return { coords: new Uint32Array(nq * k * DIMS), hi: new Float64Array(nq * k), lo: new Float64Array(nq * k) };
}

/** Reusable per-request buffers. */
export interface Work {
  heap: TopK;
  st: SearchStack;
  c: Uint32Array;
  a: Float64Array;
  b: Float64Array;
}
