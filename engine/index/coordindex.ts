/**
 * The per-store k-d tree CNEAREST searches, built lazily and kept in step with writes the
 * way the range index is: entry ids are append-only between compactions, so entries
 * appended since the build (ids ≥ `built`) form a small delta that every query scans, and a
 * deleted entry is skipped by its kind byte (0). Rebuilding is rent-or-buy: once the delta
 * passes MIN_DELTA, the tree is rebuilt when the delta scans done since the build add up to
 * about the cost of a build (so a few queries after many writes do not pay a rebuild, and
 * many queries do not keep paying scans); and always when the delta passes n/16, the dead
 * share n/8, or the store renumbers ids (its generation).
 */
import { DIMS } from '../types';
import type { Store } from '../store/store';
import { Box, KdTree, N_HI, SearchStack, buildKdTree, inBox, rowDist, searchKd } from './kdtree';
import { TopK } from './topk';
import { sharedArray } from '../store/shared';
import { ALL_WORDS, radixSortIds } from '../store/radix';

/** The tree's points in coordinate order (hier: every prefix box is one contiguous run). */
export interface SortedPoints {
  pts: Uint32Array;
  ids: Int32Array;
}

/** A delta this small is always just scanned. */
const MIN_DELTA = 1024;
/** Delta scan work (entries × queries) per tree point that buys a rebuild (a build is ~n log n row moves). */
const SCAN_PER_POINT = 64;

/** A tree plus the live delta, valid until the store's next write. */
export interface Prepared {
  tree: KdTree;
  keys: Uint32Array;
  kind: Uint8Array;
  /** Entries ever appended (ids < count). */
  count: number;
  /** Live entry ids appended since the build. */
  delta: Int32Array;
  /** True when some tree entry has been deleted since the build (searches then check kind). */
  dead: boolean;
  /** Inclusive bounding box of every point (tree and delta). */
  lo: Float64Array;
  hi: Float64Array;
  /** The tree's points sorted, when asked for (built once per tree). */
  sorted: SortedPoints | null;
}

interface Cached {
  tree: KdTree;
  gen: number;
  built: number;
  sorted: SortedPoints | null;
  /** Delta entries scanned (summed over queries) since the build. */
  scanned: number;
}

/** The tree's points (ids at build time) in coordinate order, in shared memory. */
function sortPoints(keys: Uint32Array, tree: KdTree): SortedPoints {
  const order = radixSortIds(Int32Array.from(tree.ids), keys, ALL_WORDS);
  const pts = sharedArray(Uint32Array, order.length * DIMS);
  const ids = sharedArray(Int32Array, order.length);
  ids.set(order);
  for (let i = 0; i < order.length; i++) pts.set(keys.subarray(order[i] * DIMS, order[i] * DIMS + DIMS), i * DIMS);
  return { pts, ids };
}

const CACHE = new WeakMap<Store, Cached>();
/** Tree builds so far (tests check that small writes are served from the delta). */
let builds = 0;

/** How many trees have been built in this process. */
export function treeBuilds(): number {
  return builds;
}

/** Live entry ids in [from, to). */
function liveIds(kind: Uint8Array, from: number, to: number): Int32Array {
  let n = 0;
  for (let id = from; id < to; id++) if (kind[id] !== 0) n++;
  const out = new Int32Array(n);
  for (let id = from, j = 0; id < to; id++) if (kind[id] !== 0) out[j++] = id;
  return out;
}

/**
 * The store's tree, built or rebuilt when missing or stale, with the current delta (and
 * sorted points when `sorted`). `queries` is how many the caller will run (scan accounting).
 */
export function prepare(store: Store, sorted = false, queries = 1): Prepared {
  const v = store.view();
  let c = CACHE.get(store);
  let delta = c === undefined ? null : liveIds(v.kind, c.built, v.count);
  if (c !== undefined && delta !== null) {
    const dead = c.tree.n - (store.size - delta.length);
    const appended = v.count - c.built;
    const worn = appended > MIN_DELTA && c.scanned + delta.length * queries > SCAN_PER_POINT * c.tree.n;
    const stale = c.gen !== store.generation || worn || appended > Math.max(MIN_DELTA, c.tree.n >> 4) || dead > Math.max(MIN_DELTA, c.tree.n >> 3);
    if (stale) c = undefined;
    else c.scanned += delta.length * queries;
  }
  if (c === undefined || delta === null) {
    c = { tree: buildKdTree(v.keys, liveIds(v.kind, 0, v.count)), gen: store.generation, built: v.count, sorted: null, scanned: 0 };
    builds++;
    CACHE.set(store, c);
    delta = new Int32Array(0);
  }
  if (sorted && c.sorted === null) c.sorted = sortPoints(v.keys, c.tree);
  const lo = new Float64Array(DIMS).fill(Infinity);
  const hi = new Float64Array(DIMS).fill(-Infinity);
  if (c.tree.n > 0) for (let d = 0; d < DIMS; d++) { lo[d] = c.tree.node[d]; hi[d] = c.tree.node[N_HI + d]; }
  for (const id of delta) {
    for (let d = 0; d < DIMS; d++) {
      const x = v.keys[id * DIMS + d];
      if (x < lo[d]) lo[d] = x;
      if (x > hi[d]) hi[d] = x;
    }
  }
  const dead = c.tree.n !== store.size - delta.length;
  return { tree: c.tree, keys: v.keys, kind: v.kind, count: v.count, delta, dead, lo, hi, sorted: c.sorted };
}

/** Offers the tree's and the delta's live points within `box` to `heap` (a = L1 or squared L2). */
export function searchPrepared(
  p: Prepared, q: ArrayLike<number>, qo: number, l2: boolean, box: Box | null, heap: TopK, st: SearchStack,
): void {
  searchKd(p.tree, q, qo, l2, box, p.dead ? p.kind : null, heap, st);
  const { keys, delta } = p;
  for (let i = 0; i < delta.length; i++) {
    const id = delta[i];
    if (box !== null && !inBox(keys, id, box)) continue;
    const dist = rowDist(keys, id, q, qo, l2);
    if (dist <= heap.limit) heap.offer(dist, 0, keys, id * DIMS);
  }
}

/**
 * True when every squared L2 distance from q to a stored point stays below 2^52, so float64
 * sums are exact and the tree's ranking is exact.
 */
export function l2Exact(p: Prepared, q: ArrayLike<number>, qo: number): boolean {
  let s = 0;
  for (let d = 0; d < DIMS; d++) {
    const x = q[qo + d];
    const g = Math.max(Math.abs(x - p.lo[d]), Math.abs(x - p.hi[d]));
    s += g * g;
  }
  return s < 2 ** 52;
}
