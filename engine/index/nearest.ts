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
import { Box, SearchStack, inBox, localityOrder, rowDist } from './kdtree';
import { Prepared, SortedPoints, l2Exact, prepare, searchPrepared } from './coordindex';
import { TopK } from './topk';

/** Coordinate-space metrics. */
export type CoordMetric = 'l1' | 'l2' | 'hier';

/** Candidate sets up to this size are scanned rather than searched in the tree. */
const SCAN_MAX = 4096;

/**
 * Answers, k per query, nearest first: `coords` (9 per row) and the exact distance of each
 * as two words, `hi`·2^32 + `lo` (squared for l2, the hier distance for hier).
 */
export interface CoordAnswer {
  coords: Uint32Array;
  hi: Float64Array;
  lo: Float64Array;
}

/** The pattern's box with inclusive bounds, or null for none. */
function patternBox(p: Pattern | null): Box | null {
  if (p === null) return null;
  const box: Box = { lo: new Float64Array(DIMS), hi: new Float64Array(DIMS) };
  for (let d = 0; d < DIMS; d++) { box.lo[d] = p.lo[d]; box.hi[d] = p.hi[d] - 1; }
  return box;
}

/** Leading components of rows a (of x) and b (of y) that agree. */
function commonPrefix(x: ArrayLike<number>, a: number, y: ArrayLike<number>, b: number): number {
  let d = 0;
  while (d < DIMS && x[a + d] === y[b + d]) d++;
  return d;
}

/** Exact squared L2 as two words (hi·2^32 + lo) from 16-bit halves of each difference. */
function l2Words(x: ArrayLike<number>, a: number, q: ArrayLike<number>, b: number, out: Float64Array): void {
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
function scan(cands: Uint32Array, box: Box | null, q: ArrayLike<number>, qo: number, metric: CoordMetric, heap: TopK): void {
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

/** Live keys inside `box` as flat rows (`src`: a store view or a Prepared). */
function liveKeys(src: { keys: Uint32Array; kind: Uint8Array; count: number }, box: Box | null): Uint32Array {
  const { keys, kind, count } = src;
  const out: number[] = [];
  for (let id = 0; id < count; id++) {
    if (kind[id] === 0) continue;
    let inside = true;
    if (box !== null) for (let d = 0; d < DIMS && inside; d++) inside = keys[id * DIMS + d] >= box.lo[d] && keys[id * DIMS + d] <= box.hi[d];
    if (inside) for (let d = 0; d < DIMS; d++) out.push(keys[id * DIMS + d]);
  }
  return Uint32Array.from(out);
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

/** Writes a drained heap's keys as exact two-word distances: `pair` keys already are; else D = a. */
function emitDistances(ans: CoordAnswer, row: number, n: number, a: Float64Array, b: Float64Array, pair: boolean): void {
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

/** The box of points sharing q's first p components, within `outer`; null when empty. */
function prefixBox(q: ArrayLike<number>, qo: number, p: number, outer: Box | null): Box | null {
  const box: Box = { lo: new Float64Array(DIMS), hi: new Float64Array(DIMS).fill(0xffffffff) };
  for (let d = 0; d < DIMS; d++) {
    if (d < p) box.lo[d] = box.hi[d] = q[qo + d];
    if (outer !== null) {
      box.lo[d] = Math.max(box.lo[d], outer.lo[d]);
      box.hi[d] = Math.min(box.hi[d], outer.hi[d]);
      if (box.lo[d] > box.hi[d]) return null;
    }
  }
  return box;
}

/** Reusable per-request buffers. */
interface Work {
  heap: TopK;
  st: SearchStack;
  c: Uint32Array;
  a: Float64Array;
  b: Float64Array;
}

/**
 * hier via the tree: the points sharing ≥ p leading components with q form the prefix box
 * B_p. Going from p = 9 down, the first B_p holding ≥ k candidates decides: every point of
 * B_{p+1} (fewer than k, all found by the previous search) comes first, ordered by (hier, L1,
 * coord), then the L1-nearest of B_p that share exactly p components. `start` is the first
 * level worth searching (from {@link hierSorted}).
 */
function hierTree(
  prep: Prepared, q: Uint32Array, qo: number, k: number, outer: Box | null, start: number, w: Work, ans: CoordAnswer, row: number,
): void {
  let inner = new Uint32Array(0);
  for (let p = start; p >= 0; p--) {
    const box = prefixBox(q, qo, p, outer);
    if (box === null) continue;
    w.heap.reset();
    searchPrepared(prep, q, qo, false, box, w.heap, w.st);
    const n = w.heap.drain(w.c, w.a, w.b, 0);
    if (n < k && p > 0) {
      inner = w.c.slice(0, n * DIMS);
      continue;
    }
    // Inner points (all of B_{p+1}) by (hier, L1, coord) through a heap of their own.
    const m = inner.length / DIMS;
    const h = new TopK(Math.max(1, m));
    scan(inner, null, q, qo, 'hier', h);
    const ia = new Float64Array(m), ib = new Float64Array(m);
    h.drain(inner, ia, ib, 0);
    ans.coords.set(inner, row * DIMS);
    for (let i = 0; i < m; i++) { ans.hi[row + i] = 0; ans.lo[row + i] = ia[i]; }
    let out = m;
    for (let i = 0; i < n && out < k; i++) {
      if (commonPrefix(w.c, i * DIMS, q, qo) !== p) continue;
      ans.coords.set(w.c.subarray(i * DIMS, i * DIMS + DIMS), (row + out) * DIMS);
      ans.hi[row + out] = 0;
      ans.lo[row + out++] = DIMS - p;
    }
    return;
  }
}

/** True when sorted row r starts with q's first p components. */
function prefixEq(pts: Uint32Array, r: number, q: ArrayLike<number>, qo: number, p: number): boolean {
  for (let d = 0, o = r * DIMS; d < p; d++) if (pts[o + d] !== q[qo + d]) return false;
  return true;
}

/** First sorted row ≥ q. */
function lowerBound(pts: Uint32Array, n: number, q: ArrayLike<number>, qo: number): number {
  let lo = 0, hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    let c = 0;
    for (let d = 0, o = mid * DIMS; d < DIMS && c === 0; d++) c = pts[o + d] - q[qo + d];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Extends the run start `a` left over rows sharing q's first p components (galloping, then bisection). */
function gallopLeft(pts: Uint32Array, a: number, q: ArrayLike<number>, qo: number, p: number): number {
  let step = 1;
  while (a - step >= 0 && prefixEq(pts, a - step, q, qo, p)) { a -= step; step *= 2; }
  let lo = Math.max(0, a - step + 1), hi = a;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (prefixEq(pts, mid, q, qo, p)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Extends the run end `b` right over rows sharing q's first p components. */
function gallopRight(pts: Uint32Array, b: number, n: number, q: ArrayLike<number>, qo: number, p: number): number {
  let step = 1;
  while (b + step - 1 < n && prefixEq(pts, b + step - 1, q, qo, p)) { b += step; step *= 2; }
  let lo = b, hi = Math.min(n, b + step - 1);
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (prefixEq(pts, mid, q, qo, p)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * hier over the sorted points: B_p (points sharing q's first p components) is one run around
 * q's insertion point, widened by galloping as p falls. The first B_p holding k live
 * candidates (run plus delta, within the box) decides and is scanned whole by (hier, L1,
 * coord) — exact, since every point outside B_p is farther. Returns −1 when answered, else
 * the level from which {@link hierTree} should go on (the run grew past SCAN_MAX).
 */
function hierSorted(prep: Prepared, q: Uint32Array, qo: number, k: number, box: Box | null, w: Work, ans: CoordAnswer, row: number): number {
  const { pts, ids } = prep.sorted as SortedPoints;
  const { kind, keys, delta } = prep;
  const n = ids.length;
  let a = lowerBound(pts, n, q, qo);
  let b = a;
  for (let p = DIMS; p >= 0; p--) {
    a = gallopLeft(pts, a, q, qo, p);
    b = gallopRight(pts, b, n, q, qo, p);
    if (b - a + delta.length < k) continue;
    if (b - a > SCAN_MAX) return Math.min(DIMS, p + 1);
    w.heap.reset();
    for (let r = a; r < b; r++) {
      if (kind[ids[r]] === 0 || (box !== null && !inBox(pts, r, box))) continue;
      w.heap.offer(DIMS - commonPrefix(pts, r * DIMS, q, qo), rowDist(pts, r, q, qo, false), pts, r * DIMS);
    }
    for (let i = 0; i < delta.length; i++) {
      const o = delta[i] * DIMS;
      const cp = commonPrefix(keys, o, q, qo);
      if (cp < p || (box !== null && !inBox(keys, delta[i], box))) continue;
      w.heap.offer(DIMS - cp, rowDist(keys, delta[i], q, qo, false), keys, o);
    }
    if (w.heap.size < k) continue;
    w.heap.drain(w.c, w.a, w.b, 0);
    ans.coords.set(w.c, row * DIMS);
    emitDistances(ans, row, k, w.a, w.a, false);
    return -1;
  }
  return 0;
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
export function planCoords(op: string, store: Store, k: number, metric: CoordMetric, pattern: Pattern | null): CoordPlan {
  const small = candidates(op, store, k, pattern);
  return { k, metric, box: patternBox(pattern), small, prep: small === null ? prepare(store, metric === 'hier') : null };
}

/** Empty answers for nq queries. */
export function newAnswer(nq: number, k: number): CoordAnswer {
  return { coords: new Uint32Array(nq * k * DIMS), hi: new Float64Array(nq * k), lo: new Float64Array(nq * k) };
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
  const plan = planCoords(op, store, k, metric, pattern);
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
