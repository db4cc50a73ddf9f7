/**
 * The `hier` metric (9 − common leading prefix length, ties by L1 then coordinate order):
 * a prefix box of the query is one contiguous run of the coordinate-sorted points, so the
 * deepest run holding k candidates is found by galloping out from the query's position and
 * scanned; a large run falls back to tree searches by L1 within the prefix boxes.
 */
import { DIMS } from '../types';
import { Box, inBox, rowDist } from './kdtree';
import { Prepared, SortedPoints, searchPrepared } from './coordindex';
import { CoordAnswer, SCAN_MAX, Work, commonPrefix, emitDistances, scan } from './scan';
import { TopK } from './topk';

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

/**
 * hier via the tree: the points sharing ≥ p leading components with q form the prefix box
 * B_p. Going from p = 9 down, the first B_p holding ≥ k candidates decides: every point of
 * B_{p+1} (fewer than k, all found by the previous search) comes first, ordered by (hier, L1,
 * coord), then the L1-nearest of B_p that share exactly p components. `start` is the first
 * level worth searching (from {@link hierSorted}).
 */
export function hierTree(
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
export function hierSorted(prep: Prepared, q: Uint32Array, qo: number, k: number, box: Box | null, w: Work, ans: CoordAnswer, row: number): number {
  const { pts, ids } = prep.sorted as SortedPoints;
  const { kind, keys, delta } = prep;
  const n = ids.length;
  // Each delta entry's common prefix with q (−1 outside the box), once per query, and how
  // many reach each level, so levels that cannot hold k are skipped without rescanning.
  const dcp = new Int8Array(delta.length);
  const reach = new Int32Array(DIMS + 2);
  for (let i = 0; i < delta.length; i++) {
    const inside = box === null || inBox(keys, delta[i], box);
    dcp[i] = inside ? commonPrefix(keys, delta[i] * DIMS, q, qo) : -1;
    if (inside) reach[dcp[i]]++;
  }
  for (let p = DIMS - 1; p >= 0; p--) reach[p] += reach[p + 1];
  let a = lowerBound(pts, n, q, qo);
  let b = a;
  for (let p = DIMS; p >= 0; p--) {
    a = gallopLeft(pts, a, q, qo, p);
    b = gallopRight(pts, b, n, q, qo, p);
    if (b - a + reach[p] < k) continue;
    if (b - a > SCAN_MAX) return Math.min(DIMS, p + 1);
    w.heap.reset();
    for (let r = a; r < b; r++) {
      if ((prep.dead && kind[ids[r]] === 0) || (box !== null && !inBox(pts, r, box))) continue;
      w.heap.offer(DIMS - commonPrefix(pts, r * DIMS, q, qo), rowDist(pts, r, q, qo, false), pts, r * DIMS);
    }
    for (let i = 0; i < delta.length; i++) {
      if (dcp[i] < p) continue;
      w.heap.offer(DIMS - dcp[i], rowDist(keys, delta[i], q, qo, false), keys, delta[i] * DIMS);
    }
    if (w.heap.size < k) continue;
    w.heap.drain(w.c, w.a, w.b, 0);
    ans.coords.set(w.c, row * DIMS);
    emitDistances(ans, row, k, w.a, w.a, false);
    return -1;
  }
  return 0;
}
