/**
 * A static k-d tree over 9-component integer points, for exact k-nearest search under L1
 * or squared L2. Points are copied into tree order (leaves are contiguous rows), every node
 * keeps its bounding box (so the lower bound is the distance to the box, not to a split
 * plane) and the lexicographically smallest point under it (so a node whose bound *equals*
 * the current k-th distance can still be pruned when its points all come after the k-th in
 * coordinate order — the tie-break — which matters on integer grids full of equal distances).
 */
import { DIMS } from '../types';
import { TopK } from './topk';
import { sharedArray } from '../store/shared';

/** Points per leaf. */
const LEAF = 12;

/** An inclusive box per component; searches only consider points inside it. */
export interface Box {
  lo: Float64Array;
  hi: Float64Array;
}

/** The built tree. Node `i`'s children are `left[i]` and `left[i] + 1`; a leaf has left −1. */
export interface KdTree {
  /** Points in the tree. */
  n: number;
  /** Point rows in tree order (9 per point). */
  pts: Uint32Array;
  /** Caller's id per tree row (e.g. the store entry id). */
  ids: Int32Array;
  /** Node bounding boxes, 18 words per node: 9 lows then 9 highs (siblings adjacent in memory). */
  bb: Uint32Array;
  /** Node row ranges [start, end). */
  start: Int32Array;
  end: Int32Array;
  left: Int32Array;
  /** Tree row of the node's smallest point in coordinate order. */
  lexMin: Int32Array;
}

/** Row i of `p` compared lexicographically with row j. */
function cmpRows(p: Uint32Array, i: number, j: number): number {
  const a = i * DIMS;
  const b = j * DIMS;
  for (let d = 0; d < DIMS; d++) if (p[a + d] !== p[b + d]) return p[a + d] - p[b + d];
  return 0;
}

function swapRows(p: Uint32Array, ids: Int32Array, i: number, j: number): void {
  const a = i * DIMS;
  const b = j * DIMS;
  for (let d = 0; d < DIMS; d++) {
    const t = p[a + d]; p[a + d] = p[b + d]; p[b + d] = t;
  }
  const t = ids[i]; ids[i] = ids[j]; ids[j] = t;
}

/** Reorders rows [a, b) so row m holds the median of component d, smaller rows before it, larger after. */
function select(p: Uint32Array, ids: Int32Array, a: number, b: number, m: number, d: number): void {
  let lo = a;
  let hi = b - 1;
  while (hi > lo) {
    const x = p[lo * DIMS + d], y = p[((lo + hi) >> 1) * DIMS + d], z = p[hi * DIMS + d];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (p[i * DIMS + d] < pivot) i++;
      while (p[j * DIMS + d] > pivot) j--;
      if (i <= j) swapRows(p, ids, i++, j--);
    }
    if (m <= j) hi = j;
    else if (m >= i) lo = i;
    else return;
  }
}

/** Builds a tree over `ids`, whose points are keys[9·id .. 9·id+9). */
export function buildKdTree(keys: Uint32Array, ids: Int32Array): KdTree {
  const n = ids.length;
  // Shared memory, so pool workers search the same tree without copies.
  const pts = sharedArray(Uint32Array, n * DIMS);
  const own = sharedArray(Int32Array, n);
  own.set(ids);
  for (let i = 0; i < n; i++) pts.set(keys.subarray(ids[i] * DIMS, ids[i] * DIMS + DIMS), i * DIMS);
  const cap = Math.max(1, 4 * Math.ceil(n / LEAF));
  const t: KdTree = {
    n, pts, ids: own,
    bb: sharedArray(Uint32Array, cap * 2 * DIMS),
    start: sharedArray(Int32Array, cap), end: sharedArray(Int32Array, cap), left: sharedArray(Int32Array, cap),
    lexMin: sharedArray(Int32Array, cap),
  };
  let nodes = 1;
  const grow = (): void => {
    if (nodes + 2 <= t.start.length) return;
    const c = t.start.length * 2;
    const g = (x: Int32Array): Int32Array => {
      const y = sharedArray(Int32Array, c);
      y.set(x);
      return y;
    };
    const bb = sharedArray(Uint32Array, c * 2 * DIMS);
    bb.set(t.bb);
    t.bb = bb;
    t.start = g(t.start); t.end = g(t.end); t.left = g(t.left); t.lexMin = g(t.lexMin);
  };
  const build = (node: number, a: number, b: number): void => {
    t.start[node] = a;
    t.end[node] = b;
    const bb = t.bb, o = node * 2 * DIMS, h = o + DIMS;
    for (let d = 0; d < DIMS; d++) { bb[o + d] = 0xffffffff; bb[h + d] = 0; }
    for (let i = a; i < b; i++) {
      for (let d = 0, r = i * DIMS; d < DIMS; d++) {
        const v = pts[r + d];
        if (v < bb[o + d]) bb[o + d] = v;
        if (v > bb[h + d]) bb[h + d] = v;
      }
    }
    let split = -1;
    let spread = 0;
    for (let d = 0; d < DIMS; d++) if (bb[h + d] - bb[o + d] > spread) { spread = bb[h + d] - bb[o + d]; split = d; }
    if (b - a <= LEAF || split < 0) {
      t.left[node] = -1;
      let m = a;
      for (let i = a + 1; i < b; i++) if (cmpRows(pts, i, m) < 0) m = i;
      t.lexMin[node] = m;
      return;
    }
    const mid = (a + b) >> 1;
    select(pts, own, a, b, mid, split);
    grow();
    const l = nodes;
    nodes += 2;
    t.left[node] = l;
    build(l, a, mid);
    build(l + 1, mid, b);
    const x = t.lexMin[l], y = t.lexMin[l + 1];
    t.lexMin[node] = cmpRows(pts, x, y) <= 0 ? x : y;
  };
  if (n > 0) build(0, 0, n);
  else t.left[0] = -1;
  return t;
}

/**
 * Lower bound of the distance from q to the part of node's box inside `box`, or −1 when
 * they do not meet. L1 when `l2` is false, else squared L2. Stops early (returning a value
 * above `limit`) once the partial sum passes `limit`: the node is pruned either way.
 */
function bound(t: KdTree, node: number, q: Float64Array, l2: boolean, box: Box | null, limit: number): number {
  const bb = t.bb;
  const o = node * 2 * DIMS;
  let s = 0;
  if (box === null) {
    for (let d = 0; d < DIMS; d++) {
      const v = q[d];
      const lo = bb[o + d];
      const hi = bb[o + DIMS + d];
      const g = v < lo ? lo - v : v > hi ? v - hi : 0;
      s += l2 ? g * g : g;
      if (s > limit) return s;
    }
    return s;
  }
  for (let d = 0; d < DIMS; d++) {
    let lo = bb[o + d];
    let hi = bb[o + DIMS + d];
    if (box.lo[d] > lo) lo = box.lo[d];
    if (box.hi[d] < hi) hi = box.hi[d];
    if (lo > hi) return -1;
    const v = q[d];
    const g = v < lo ? lo - v : v > hi ? v - hi : 0;
    s += l2 ? g * g : g;
  }
  return s;
}

/** True when row r of `p` lies inside the box. */
export function inBox(p: ArrayLike<number>, r: number, box: Box): boolean {
  for (let d = 0, o = r * DIMS; d < DIMS; d++) {
    const v = p[o + d];
    if (v < box.lo[d] || v > box.hi[d]) return false;
  }
  return true;
}

/** L1 (or squared L2) distance between row `r` of `p` and q[qo..qo+9). Exact while the sum stays below 2^53. */
export function rowDist(p: ArrayLike<number>, r: number, q: ArrayLike<number>, qo: number, l2: boolean): number {
  let s = 0;
  for (let d = 0, o = r * DIMS; d < DIMS; d++) {
    const g = p[o + d] - q[qo + d];
    s += l2 ? g * g : g < 0 ? -g : g;
  }
  return s;
}

/**
 * Query rows reordered so consecutive queries fall in nearby leaves (greedy descent to the
 * nearest child, then sorted by the leaf's first row: rows are in depth-first, i.e. spatial, order), so a
 * batch's searches reuse cached nodes and points instead of missing on every step.
 */
export function localityOrder(t: KdTree, q: Uint32Array, nq: number): Int32Array {
  const leaf = new Float64Array(nq);
  const order = new Int32Array(nq);
  const qv = new Float64Array(DIMS);
  for (let i = 0; i < nq; i++) {
    let node = 0;
    for (let d = 0; d < DIMS; d++) qv[d] = q[i * DIMS + d];
    while (t.n > 0 && t.left[node] >= 0) {
      const l = t.left[node];
      node = bound(t, l, qv, true, null, Infinity) <= bound(t, l + 1, qv, true, null, Infinity) ? l : l + 1;
    }
    leaf[i] = t.start[node];
    order[i] = i;
  }
  order.sort((x, y) => leaf[x] - leaf[y] || x - y);
  return order;
}

/** Reused traversal stack (node, bound) so searches allocate nothing. */
export class SearchStack {
  nodes = new Int32Array(256);
  bounds = new Float64Array(256);
  /** The current query as float64 (one monomorphic array type in the hot loops). */
  q = new Float64Array(DIMS);
}

/**
 * Offers every live tree point within `box` that can rank among the k nearest to q into
 * `heap` (a = distance, b = 0). `kind` (the store's, by id) filters out deleted entries;
 * null when none of the tree's entries has been deleted. Nearer children are
 * visited first; a node is skipped when its bound and smallest coordinate cannot beat the
 * heap's worst entry.
 */
export function searchKd(
  t: KdTree, q: ArrayLike<number>, qo: number, l2: boolean, box: Box | null,
  kind: Uint8Array | null, heap: TopK, st: SearchStack,
): void {
  if (t.n === 0) return;
  const { pts, ids, start, end, left, lexMin } = t;
  const qv = st.q;
  for (let d = 0; d < DIMS; d++) qv[d] = q[qo + d];
  const r0 = bound(t, 0, qv, l2, box, Infinity);
  if (r0 < 0) return;
  let sp = 0;
  st.nodes[0] = 0;
  st.bounds[0] = r0;
  sp = 1;
  while (sp > 0) {
    sp--;
    const node = st.nodes[sp];
    const lb = st.bounds[sp];
    if (lb > heap.limit || (lb === heap.limit && !heap.beats(lb, 0, pts, lexMin[node] * DIMS))) continue;
    const l = left[node];
    if (l < 0) {
      for (let r = start[node], e = end[node]; r < e; r++) {
        if (box !== null && !inBox(pts, r, box)) continue;
        const dist = rowDist(pts, r, qv, 0, l2);
        // Liveness only for points that would enter: kind[] is a random access, pts are sequential.
        if (dist <= heap.limit && (kind === null || kind[ids[r]] !== 0)) heap.offer(dist, 0, pts, r * DIMS);
      }
      continue;
    }
    const bl = bound(t, l, qv, l2, box, heap.limit);
    const br = bound(t, l + 1, qv, l2, box, heap.limit);
    if (sp + 2 > st.nodes.length) {
      const nn = new Int32Array(st.nodes.length * 2); nn.set(st.nodes); st.nodes = nn;
      const nb = new Float64Array(st.bounds.length * 2); nb.set(st.bounds); st.bounds = nb;
    }
    // Push the farther child first so the nearer one is searched first.
    const nearL = bl >= 0 && (br < 0 || bl <= br);
    const first = nearL ? l + 1 : l, fb = nearL ? br : bl;
    const second = nearL ? l : l + 1, sb = nearL ? bl : br;
    if (fb >= 0) { st.nodes[sp] = first; st.bounds[sp++] = fb; }
    if (sb >= 0) { st.nodes[sp] = second; st.bounds[sp++] = sb; }
  }
}
