/**
 * Exact k-nearest stored coordinates to query coordinates.
 *
 * Metrics: `l1`; `l2` (ranked by the exact squared distance); `hier` (9 − length of the
 * common leading prefix, ties by L1). Ties at equal distance go by coordinate order, so
 * results are deterministic. A pattern restricts the candidates to its box.
 *
 * Paths, all exact: small candidate sets (a pattern selecting ≤ 4096 entries, small stores, or
 * k near the candidate count) are scanned; otherwise the store's k-d tree is searched (L1 and
 * L2 in float64, exact while squared sums stay below 2^52 — a query whose distances could pass
 * that falls back to a scan in two-word integer arithmetic). `hier` scans the deepest prefix
 * run (in a coordinate-sorted copy of the tree's points) holding k candidates, or — when that
 * run is large — searches the tree by L1 within ever shorter prefix boxes of the query.
 */
import { DIMS } from '../types';
import { VtpuError } from '../errors';
import type { Store } from '../store/store';
import { Pattern } from '../pattern';
import { Box, SearchStack, inBox, localityOrder } from './kdtree';
import { Prepared, l2Exact, prepare, searchPrepared } from './coordindex';
import { TopK } from './topk';
import { tick } from '../budget';
import { CoordAnswer, CoordMetric, SCAN_MAX, Work, emitDistances, newAnswer, scan } from './scan';
import { hierSorted, hierTree } from './hier';

export { newAnswer };
export type { CoordAnswer, CoordMetric };

/** The pattern's box with inclusive bounds, or null for none. */
function patternBox(p: Pattern | null): Box | null {
  if (p === null) return null;
  const box: Box = { lo: new Float64Array(DIMS), hi: new Float64Array(DIMS) };
  for (let d = 0; d < DIMS; d++) { box.lo[d] = p.lo[d]; box.hi[d] = p.hi[d] - 1; }
  return box;
}

/** Live keys inside `box` as flat rows (`src`: a store view or a Prepared); two passes, no boxed arrays. */
function liveKeys(src: { keys: Uint32Array; kind: Uint8Array; count: number }, box: Box | null): Uint32Array {
  const { keys, kind, count } = src;
  const keep = (id: number): boolean => kind[id] !== 0 && (box === null || inBox(keys, id, box));
  let n = 0;
  for (let id = 0; id < count; id++) if (keep(id)) n++;
  tick(count);
  const out = new Uint32Array(n * DIMS);
  for (let id = 0, j = 0; id < count; id++) if (keep(id)) out.set(keys.subarray(id * DIMS, id * DIMS + DIMS), DIMS * j++);
  tick(count);
  return out;
}

/** The small candidate set to scan, or null when the tree should be searched; E_PARAM when k is too large. */
function candidates(op: string, store: Store, k: number, pattern: Pattern | null): Uint32Array | null {
  if (pattern === null) {
    const n = store.size;
    if (n < k) throw new VtpuError('E_PARAM', `${op}: k = ${k} but only ${n} coordinates are stored`);
    return n <= SCAN_MAX || k * 4 > n ? liveKeys(store.view(), null) : null;
  }
  const { batch, truncated } = store.range(pattern, Math.max(k, SCAN_MAX), false);
  if (batch.n === 0) throw new VtpuError('E_PARAM', `${op}: the range holds no stored coordinates`);
  if (!truncated && batch.n < k) throw new VtpuError('E_PARAM', `${op}: k = ${k} but only ${batch.n} coordinates are stored in the range`);
  return truncated ? null : (batch.coords as Uint32Array);
}

/**
 * Everything a batch search needs once the request is validated: structured-cloneable
 * (the tree and store arrays are SharedArrayBuffer-backed), so pool workers can run
 * {@link searchCoords} on slices of a batch.
 */
export interface CoordPlan {
  k: number;
  metric: CoordMetric;
  box: Box | null;
  /** The small candidate set to scan, or null: search `prep`. */
  small: Uint32Array | null;
  prep: Prepared | null;
}

/** Validates k against the candidates and picks the path (E_PARAM when k is too large or the range is empty). */
export function planCoords(op: string, store: Store, q: Uint32Array, k: number, metric: CoordMetric, pattern: Pattern | null): CoordPlan {
  const small = candidates(op, store, k, pattern);
  return { k, metric, box: patternBox(pattern), small, prep: small === null ? prepare(store, metric === 'hier', q.length / DIMS) : null };
}

/** Answers every row of `q` into `ans` (same row order); pure, so pool workers run it too. */
export function searchCoords(plan: CoordPlan, q: Uint32Array, ans: CoordAnswer): void {
  const { k, metric, box, small, prep } = plan;
  const nq = q.length / DIMS;
  const w: Work = { heap: new TopK(k), st: new SearchStack(), c: new Uint32Array(k * DIMS), a: new Float64Array(k), b: new Float64Array(k) };
  let all: Uint32Array | null = null; // exact-arithmetic fallback candidates, gathered once
  for (let i = 0; i < nq; i++) {
    const row = i * k;
    const qo = i * DIMS;
    if (prep !== null && metric === 'hier') {
      const from = prep.sorted === null ? DIMS : hierSorted(prep, q, qo, k, box, w, ans, row);
      if (from >= 0) hierTree(prep, q, qo, k, box, from, w, ans, row);
      continue;
    }
    w.heap.reset();
    let pair = metric === 'l2';
    if (prep !== null && (metric === 'l1' || l2Exact(prep, q, qo))) {
      searchPrepared(prep, q, qo, metric === 'l2', box, w.heap, w.st);
      pair = false;
    } else {
      const cands = small ?? (all ??= liveKeys(prep as Prepared, box));
      scan(cands, box, q, qo, metric, w.heap);
    }
    w.heap.drain(w.c, w.a, w.b, 0);
    ans.coords.set(w.c, row * DIMS);
    if (metric === 'hier') emitDistances(ans, row, k, w.a, w.a, false);
    else emitDistances(ans, row, k, w.a, w.b, pair);
  }
}

/** Rows of `q` in `order`, in a SharedArrayBuffer (so slices can be posted to workers). */
export function permuteRows(q: Uint32Array, order: Int32Array): Uint32Array {
  const out = new Uint32Array(new SharedArrayBuffer(Math.max(4, q.byteLength)), 0, q.length);
  for (let j = 0; j < order.length; j++) out.set(q.subarray(order[j] * DIMS, order[j] * DIMS + DIMS), j * DIMS);
  return out;
}

/** Answers computed for permuted queries (row j answers query order[j]), put back in request order. */
export function unpermute(part: CoordAnswer, order: Int32Array, k: number): CoordAnswer {
  const ans = newAnswer(order.length, k);
  for (let j = 0; j < order.length; j++) {
    const i = order[j];
    ans.coords.set(part.coords.subarray(j * k * DIMS, (j + 1) * k * DIMS), i * k * DIMS);
    ans.hi.set(part.hi.subarray(j * k, (j + 1) * k), i * k);
    ans.lo.set(part.lo.subarray(j * k, (j + 1) * k), i * k);
  }
  return ans;
}

/** Query order for a batch: spatially coherent when the tree is searched, else null (as given). */
export function batchOrder(plan: CoordPlan, q: Uint32Array): Int32Array | null {
  const nq = q.length / DIMS;
  return plan.prep !== null && nq > 1 ? localityOrder(plan.prep.tree, q, nq) : null;
}

/** The k nearest stored coordinates to each of the `q.length / 9` queries (see the module doc). */
export function nearestCoords(op: string, store: Store, q: Uint32Array, k: number, metric: CoordMetric, pattern: Pattern | null): CoordAnswer {
  const plan = planCoords(op, store, q, k, metric, pattern);
  const order = batchOrder(plan, q);
  const nq = q.length / DIMS;
  if (order === null) {
    const ans = newAnswer(nq, k);
    searchCoords(plan, q, ans);
    return ans;
  }
  const part = newAnswer(nq, k);
  searchCoords(plan, permuteRows(q, order), part);
  return unpermute(part, order, k);
}
