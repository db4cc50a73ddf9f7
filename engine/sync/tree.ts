/**
 * The range-hash tree two sidecars compare to sync a pattern. Entries matching the pattern are
 * bucketed by a hash of their coordinate into 16^5 leaf ranges of the 32-bit token space (like
 * Dynamo/Cassandra anti-entropy trees: balanced whatever the coordinates look like, and the
 * same coordinate lands in the same range on every sidecar). Node (level l, index k) covers
 * tokens whose top 4·l bits are k. A node's summary is (count, xor of the entry digests' low
 * lanes, sum of their high lanes mod 2^32): order-independent, so both sides agree without sorting, and equal
 * summaries mean equal contents up to xxh3 collisions.
 */
import { DIMS } from '../types';
import { VtpuError } from '../errors';
import { hashKey } from '../store/hash';

/** Children per node. */
export const FANOUT = 16;
/** Levels below the root; the leaves are level DEPTH. */
export const DEPTH = 5;
/** Words per node summary on the wire: count, xor lane, sum lane. */
export const SUMMARY_WORDS = 3;

/** Nodes at a level. */
export function levelSize(level: number): number {
  return FANOUT ** level;
}

/** Leaf (token range) of row `i` of a flat coordinate column. */
export function leafOf(coords: ArrayLike<number>, i: number): number {
  return (hashKey(coords, i * DIMS) >>> 0) >>> (32 - 4 * DEPTH);
}

/** A built tree: entries grouped by leaf, and summaries per level (index 0 = root). */
export interface SyncTree {
  /** Canonical pattern text. */
  pattern: string;
  /** Entries. */
  n: number;
  /** Entry coordinates, grouped by leaf (n × 9). */
  coords: Uint32Array;
  /** Entry digests in the same order (n × 2). */
  digests: Uint32Array;
  /** Entries of leaf k are rows leafStart[k] .. leafStart[k+1]. */
  leafStart: Uint32Array;
  /** Per level: count, xor and sum lanes per node, interleaved (levelSize × 3). */
  levels: Uint32Array[];
  /**
   * Entries changed since the build (engine/sync/cache.ts): coordinate key → its digest now
   * (null: gone). They override the rows above with the same coordinate.
   */
  overlay: Map<string, { coords: Uint32Array; digest: Uint32Array | null }>;
}

/** Builds the tree over `coords` (n × 9) with their digests (n × 2). */
export function buildTree(pattern: string, coords: Uint32Array, digests: Uint32Array): SyncTree {
  const n = coords.length / DIMS;
  const leaves = levelSize(DEPTH);
  const leaf = new Uint32Array(n);
  const leafStart = new Uint32Array(leaves + 1);
  for (let i = 0; i < n; i++) {
    leaf[i] = leafOf(coords, i);
    leafStart[leaf[i] + 1]++;
  }
  for (let k = 0; k < leaves; k++) leafStart[k + 1] += leafStart[k];
  // Counting sort by leaf; within a leaf, coordinate order is kept (stable).
  const at = leafStart.slice(0, leaves);
  const sc = new Uint32Array(n * DIMS);
  const sd = new Uint32Array(n * 2);
  const bottom = new Uint32Array(leaves * SUMMARY_WORDS);
  for (let i = 0; i < n; i++) {
    const k = leaf[i];
    const j = at[k]++;
    sc.set(coords.subarray(i * DIMS, (i + 1) * DIMS), j * DIMS);
    sd[2 * j] = digests[2 * i];
    sd[2 * j + 1] = digests[2 * i + 1];
    bottom[3 * k]++;
    bottom[3 * k + 1] ^= digests[2 * i];
    bottom[3 * k + 2] = (bottom[3 * k + 2] + digests[2 * i + 1]) >>> 0;
  }
  const levels: Uint32Array[] = new Array(DEPTH + 1);
  levels[DEPTH] = bottom;
  for (let l = DEPTH - 1; l >= 0; l--) levels[l] = rollUp(levels[l + 1], levelSize(l));
  return { pattern, n, coords: sc, digests: sd, leafStart, levels, overlay: new Map() };
}

function rollUp(child: Uint32Array, nodes: number): Uint32Array {
  const out = new Uint32Array(nodes * SUMMARY_WORDS);
  for (let k = 0; k < nodes; k++) {
    let c = 0, x = 0, s = 0;
    for (let j = k * FANOUT; j < (k + 1) * FANOUT; j++) {
      c += child[3 * j];
      x ^= child[3 * j + 1];
      s = (s + child[3 * j + 2]) >>> 0;
    }
    out[3 * k] = c;
    out[3 * k + 1] = x;
    out[3 * k + 2] = s;
  }
  return out;
}

/** True when node k of summaries `a` equals node j of summaries `b`. */
export function sameSummary(a: Uint32Array, k: number, b: Uint32Array, j: number): boolean {
  return a[3 * k] === b[3 * j] && a[3 * k + 1] === b[3 * j + 1] && a[3 * k + 2] === b[3 * j + 2];
}

/** Children summaries (16 per node, level+1) of `nodes` at `level`, concatenated. */
export function childSummaries(tree: SyncTree, level: number, nodes: readonly number[]): Uint32Array {
  checkNodes(level, nodes, DEPTH - 1);
  const src = tree.levels[level + 1];
  const out = new Uint32Array(nodes.length * FANOUT * SUMMARY_WORDS);
  for (let i = 0; i < nodes.length; i++) {
    const from = nodes[i] * FANOUT * SUMMARY_WORDS;
    out.set(src.subarray(from, from + FANOUT * SUMMARY_WORDS), i * FANOUT * SUMMARY_WORDS);
  }
  return out;
}

/** Rows of `tree` under node `k` at `level`: [start, end) into coords/digests. */
export function nodeRows(tree: SyncTree, level: number, k: number): [number, number] {
  const span = levelSize(DEPTH - level);
  return [tree.leafStart[k * span], tree.leafStart[(k + 1) * span]];
}

/** E_PARAM / E_LIMIT unless `nodes` are node indices at `level` (0..maxLevel). */
export function checkNodes(level: unknown, nodes: readonly unknown[], maxLevel: number): void {
  if (!Number.isInteger(level) || (level as number) < 0 || (level as number) > maxLevel) {
    throw new VtpuError('E_PARAM', `CSYNC: level must be an integer 0..${maxLevel}, got ${JSON.stringify(level)}`);
  }
  if (!Array.isArray(nodes)) throw new VtpuError('E_PARAM', 'CSYNC: nodes must be a list of node indices');
  const size = levelSize(level as number);
  if (nodes.length > size) throw new VtpuError('E_LIMIT', `CSYNC: ${nodes.length} nodes, level ${level} has ${size}`);
  for (const k of nodes) {
    if (!Number.isInteger(k) || (k as number) < 0 || (k as number) >= size) {
      throw new VtpuError('E_PARAM', `CSYNC: node ${JSON.stringify(k)} is not in 0..${size - 1} at level ${level}`);
    }
  }
}
