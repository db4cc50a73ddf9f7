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

/**
 * Words per node record in {@link KdTree.node}: the bounding box (9 lows, 9 highs), the
 * first child (children are `left` and `left + 1`; 0 marks a leaf, as the root is nobody's
 * child), the row range [start, end) and the tree row of the node's smallest point in
 * coordinate order. One record per node, siblings adjacent: a visit touches one place.
 */
export const NODE = 22;
export const N_HI = 9;
export const N_LEFT = 18;
export const N_START = 19;
export const N_END = 20;
export const N_LEXMIN = 21;

/** The built tree. */
export interface KdTree {
  /** Points in the tree. */
  n: number;
  /** Point rows in tree order (9 per point). */
  pts: Uint32Array;
  /** Caller's id per tree row (e.g. the store entry id). */
  ids: Int32Array;
  /** Node records, {@link NODE} words each. */
  node: Uint32Array;
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
  for (let i = 0; i < n; i++) for (let d = 0, o = ids[i] * DIMS; d < DIMS; d++) pts[i * DIMS + d] = keys[o + d];
  const t: KdTree = { n, pts, ids: own, node: sharedArray(Uint32Array, Math.max(1, 4 * Math.ceil(n / LEAF)) * NODE) };
  if (n > 0) buildNodes(t);
  return t;
}

/**
 * Fills t.node top-down with an explicit stack (one long-running loop the JIT optimises
 * once; a recursive closure kept deoptimising), then sets each internal node's smallest
 * point from its children's, bottom-up: children always have higher record numbers.
 */
function buildNodes(t: KdTree): void {
  const { pts, ids, n } = t;
  let rec = t.node;
  let nodes = 1;
  const stack = [0];
  rec[N_START] = 0;
  rec[N_END] = n;
  while (stack.length > 0) {
    const node = stack.pop() as number;
    const o = node * NODE, h = o + N_HI;
    const a = rec[o + N_START], b = rec[o + N_END];
    for (let d = 0; d < DIMS; d++) { rec[o + d] = 0xffffffff; rec[h + d] = 0; }
    for (let i = a; i < b; i++) {
      for (let d = 0, r = i * DIMS; d < DIMS; d++) {
        const v = pts[r + d];
        if (v < rec[o + d]) rec[o + d] = v;
        if (v > rec[h + d]) rec[h + d] = v;
      }
    }
    let split = -1;
    let spread = 0;
    for (let d = 0; d < DIMS; d++) if (rec[h + d] - rec[o + d] > spread) { spread = rec[h + d] - rec[o + d]; split = d; }
    if (b - a <= LEAF || split < 0) {
      rec[o + N_LEFT] = 0;
      let m = a;
      for (let i = a + 1; i < b; i++) if (cmpRows(pts, i, m) < 0) m = i;
      rec[o + N_LEXMIN] = m;
      continue;
    }
    const mid = (a + b) >> 1;
    select(pts, ids, a, b, mid, split);
    if ((nodes + 2) * NODE > rec.length) {
      const grown = sharedArray(Uint32Array, rec.length * 2);
      grown.set(rec);
      rec = t.node = grown;
    }
    const l = nodes;
    nodes += 2;
    rec[o + N_LEFT] = l;
    rec[l * NODE + N_START] = a;
    rec[l * NODE + N_END] = mid;
    rec[(l + 1) * NODE + N_START] = mid;
    rec[(l + 1) * NODE + N_END] = b;
    stack.push(l + 1, l);
  }
  for (let node = nodes - 1; node >= 0; node--) {
    const o = node * NODE;
    const l = rec[o + N_LEFT];
    if (l === 0) continue;
    const x = rec[l * NODE + N_LEXMIN], y = rec[(l + 1) * NODE + N_LEXMIN];
    rec[o + N_LEXMIN] = cmpRows(pts, x, y) <= 0 ? x : y;
  }
}

/**
 * Lower bound of the distance from q to the part of node's box inside `box`, or −1 when
 * they do not meet. L1 when `l2` is false, else squared L2. Stops early (returning a value
 * above `limit`) once the partial sum passes `limit`: the node is pruned either way.
 */
function bound(t: KdTree, node: number, q: Float64Array, l2: boolean, box: Box | null, limit: number): number {
  const bb = t.node;
  const o = node * NODE;
  let s = 0;
  if (box === null) {
    for (let d = 0; d < DIMS; d++) {
      const v = q[d];
      const lo = bb[o + d];
      const hi = bb[o + N_HI + d];
      const g = v < lo ? lo - v : v > hi ? v - hi : 0;
      s += l2 ? g * g : g;
      if (s > limit) return s;
    }
    return s;
  }
  for (let d = 0; d < DIMS; d++) {
    let lo = bb[o + d];
    let hi = bb[o + N_HI + d];
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
    while (t.n > 0 && t.node[node * NODE + N_LEFT] !== 0) {
      const l = t.node[node * NODE + N_LEFT];
      node = bound(t, l, qv, true, null, Infinity) <= bound(t, l + 1, qv, true, null, Infinity) ? l : l + 1;
    }
    leaf[i] = t.node[node * NODE + N_START];
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

  /** Doubles the stack. */
  grow(): void {
    const nn = new Int32Array(this.nodes.length * 2); nn.set(this.nodes); this.nodes = nn;
    const nb = new Float64Array(this.bounds.length * 2); nb.set(this.bounds); this.bounds = nb;
  }
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
  const { pts, ids, node: rec } = t;
  const qv = st.q;
  for (let d = 0; d < DIMS; d++) qv[d] = q[qo + d];
  const r0 = bound(t, 0, qv, l2, box, Infinity);
  if (r0 < 0) return;
  if (box === null) {
    searchFree(t, qv, l2, kind, heap, st, r0);
    return;
  }
  let sp = 0;
  st.nodes[0] = 0;
  st.bounds[0] = r0;
  sp = 1;
  while (sp > 0) {
    sp--;
    const o = st.nodes[sp] * NODE;
    const lb = st.bounds[sp];
    if (lb > heap.limit || (lb === heap.limit && !heap.beats(lb, 0, pts, rec[o + N_LEXMIN] * DIMS))) continue;
    const l = rec[o + N_LEFT];
    if (l === 0) {
      for (let r = rec[o + N_START], e = rec[o + N_END]; r < e; r++) {
        if (box !== null && !inBox(pts, r, box)) continue;
        const dist = rowDist(pts, r, qv, 0, l2);
        // Liveness only for points that would enter: kind[] is a random access, pts are sequential.
        if (dist <= heap.limit && (kind === null || kind[ids[r]] !== 0)) heap.offer(dist, 0, pts, r * DIMS);
      }
      continue;
    }
    const bl = bound(t, l, qv, l2, box, heap.limit);
    const br = bound(t, l + 1, qv, l2, box, heap.limit);
    if (sp + 2 > st.nodes.length) st.grow();
    // Push the farther child first so the nearer one is searched first.
    const nearL = bl >= 0 && (br < 0 || bl <= br);
    const first = nearL ? l + 1 : l, fb = nearL ? br : bl;
    const second = nearL ? l : l + 1, sb = nearL ? bl : br;
    if (fb >= 0) { st.nodes[sp] = first; st.bounds[sp++] = fb; }
    if (sb >= 0) { st.nodes[sp] = second; st.bounds[sp++] = sb; }
  }
}

/**
 * {@link searchKd} without a box, unrolled over the 9 components with the query in locals:
 * the common case, and several times faster than the generic loops.
 */
function searchFree(t: KdTree, qv: Float64Array, l2: boolean, kind: Uint8Array | null, heap: TopK, st: SearchStack, r0: number): void {
  const { pts, ids, node: rec } = t;
  const q0 = qv[0];
  const q1 = qv[1];
  const q2 = qv[2];
  const q3 = qv[3];
  const q4 = qv[4];
  const q5 = qv[5];
  const q6 = qv[6];
  const q7 = qv[7];
  const q8 = qv[8];
  let g = 0, lo = 0, hi = 0, c = 0;
  let sp = 1;
  st.nodes[0] = 0;
  st.bounds[0] = r0;
  while (sp > 0) {
    sp--;
    const o = st.nodes[sp] * NODE;
    const lb = st.bounds[sp];
    if (lb > heap.limit || (lb === heap.limit && !heap.beats(lb, 0, pts, rec[o + N_LEXMIN] * DIMS))) continue;
    const l = rec[o + N_LEFT];
    if (l === 0) {
      for (let r = rec[o + N_START], e = rec[o + N_END]; r < e; r++) {
        const b = r * DIMS;
        let s = 0;
        g = pts[b + 0] - q0; s = l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 1] - q1; s += l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 2] - q2; s += l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 3] - q3; s += l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 4] - q4; s += l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 5] - q5; s += l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 6] - q6; s += l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 7] - q7; s += l2 ? g * g : g < 0 ? -g : g;
        g = pts[b + 8] - q8; s += l2 ? g * g : g < 0 ? -g : g;
        if (s <= heap.limit && (kind === null || kind[ids[r]] !== 0)) heap.offer(s, 0, pts, b);
      }
      continue;
    }
    c = l * NODE;
    let bl = 0;
    lo = rec[c + 0]; hi = rec[c + 9]; g = q0 < lo ? lo - q0 : q0 > hi ? q0 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 1]; hi = rec[c + 10]; g = q1 < lo ? lo - q1 : q1 > hi ? q1 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 2]; hi = rec[c + 11]; g = q2 < lo ? lo - q2 : q2 > hi ? q2 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 3]; hi = rec[c + 12]; g = q3 < lo ? lo - q3 : q3 > hi ? q3 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 4]; hi = rec[c + 13]; g = q4 < lo ? lo - q4 : q4 > hi ? q4 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 5]; hi = rec[c + 14]; g = q5 < lo ? lo - q5 : q5 > hi ? q5 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 6]; hi = rec[c + 15]; g = q6 < lo ? lo - q6 : q6 > hi ? q6 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 7]; hi = rec[c + 16]; g = q7 < lo ? lo - q7 : q7 > hi ? q7 - hi : 0; bl += l2 ? g * g : g;
    lo = rec[c + 8]; hi = rec[c + 17]; g = q8 < lo ? lo - q8 : q8 > hi ? q8 - hi : 0; bl += l2 ? g * g : g;
    c += NODE;
    let br = 0;
    lo = rec[c + 0]; hi = rec[c + 9]; g = q0 < lo ? lo - q0 : q0 > hi ? q0 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 1]; hi = rec[c + 10]; g = q1 < lo ? lo - q1 : q1 > hi ? q1 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 2]; hi = rec[c + 11]; g = q2 < lo ? lo - q2 : q2 > hi ? q2 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 3]; hi = rec[c + 12]; g = q3 < lo ? lo - q3 : q3 > hi ? q3 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 4]; hi = rec[c + 13]; g = q4 < lo ? lo - q4 : q4 > hi ? q4 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 5]; hi = rec[c + 14]; g = q5 < lo ? lo - q5 : q5 > hi ? q5 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 6]; hi = rec[c + 15]; g = q6 < lo ? lo - q6 : q6 > hi ? q6 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 7]; hi = rec[c + 16]; g = q7 < lo ? lo - q7 : q7 > hi ? q7 - hi : 0; br += l2 ? g * g : g;
    lo = rec[c + 8]; hi = rec[c + 17]; g = q8 < lo ? lo - q8 : q8 > hi ? q8 - hi : 0; br += l2 ? g * g : g;
    if (sp + 2 > st.nodes.length) st.grow();
    if (bl <= br) {
      st.nodes[sp] = l + 1; st.bounds[sp++] = br;
      st.nodes[sp] = l; st.bounds[sp++] = bl;
    } else {
      st.nodes[sp] = l; st.bounds[sp++] = bl;
      st.nodes[sp] = l + 1; st.bounds[sp++] = br;
    }
  }
}
