/**
 * Ordered range index. Ordering d holds live entry ids sorted by (key[d], then the full key);
 * ordering 0 is therefore full coordinate order. Orderings are built lazily with LSD radix
 * sort (ordering d = stable sort of ordering 0 by key[d]). Entries appended since a build
 * (ids ≥ built[d]: ids are append-only) form the unsorted delta that queries scan; a build
 * is redone once the delta passes max(4096, n/8) or deletions pile up.
 *
 * A query binary-searches each constrained component's ordering for its exact candidate
 * run, filters the smallest, and merges the delta. Only an all-`*` pattern walks ordering 0
 * whole (counted in rangeScans); everything else counts as a rangeIndexHit.
 */
import { DIMS } from '../types';
import { Pattern, matchesPattern, isWildcard } from '../pattern';
import { StoreView } from './reader';
import { ALL_WORDS, radixSortIds, sortIdsByKey } from './radix';

/** Ids in coordinate order, at most `limit`; `truncated` when more matched. */
export interface RangeQuery {
  ids: Int32Array;
  truncated: boolean;
}

/** One existing child node under a prefix: its zero-padded prefix and live entry count. */
export interface PrefixCount {
  prefix: Uint32Array;
  count: number;
}

const MIN_DELTA = 4096;

/** key[0..len) of entry `id` compared lexicographically with target[0..len). */
function cmpPrefix(keys: Uint32Array, id: number, target: ArrayLike<number>, len: number): number {
  const k = id * DIMS;
  for (let j = 0; j < len; j++) {
    const diff = keys[k + j] - target[j];
    if (diff !== 0) return diff;
  }
  return 0;
}

/** First position in order[lo, hi) whose key[0..len) ≥ target. */
function lbPrefix(order: Int32Array, lo: number, hi: number, keys: Uint32Array, target: ArrayLike<number>, len: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmpPrefix(keys, order[mid], target, len) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First position in order[lo, hi) whose key[word] ≥ value. */
function lbWord(order: Int32Array, lo: number, hi: number, keys: Uint32Array, word: number, value: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[order[mid] * DIMS + word] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Run [a, b) of ordering 0 holding exactly the keys that start with prefix[0..len). */
function prefixRun(o: Int32Array, keys: Uint32Array, prefix: ArrayLike<number>, len: number): [number, number] {
  if (len === 0) return [0, o.length];
  const hiTarget = new Float64Array(len);
  for (let j = 0; j < len; j++) hiTarget[j] = prefix[j];
  hiTarget[len - 1] += 1;
  return [lbPrefix(o, 0, o.length, keys, prefix, len), lbPrefix(o, 0, o.length, keys, hiTarget, len)];
}

/** A growable Int32 list; avoids boxed arrays on the hot paths. */
class IdList {
  a: Int32Array;
  n = 0;
  constructor(cap: number) {
    this.a = new Int32Array(Math.max(16, cap));
  }
  push(x: number): void {
    if (this.n === this.a.length) {
      const b = new Int32Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
  view(): Int32Array {
    return this.a.subarray(0, this.n);
  }
}

/** The 9 lazily built orderings plus their delta bookkeeping and hit counters. */
export class RangeIndex {
  private orders: Array<Int32Array | null> = new Array(DIMS).fill(null);
  private built: number[] = new Array(DIMS).fill(0);
  private dead: number[] = new Array(DIMS).fill(0);
  /** Queries answered from a binary-searched run. */
  rangeIndexHits = 0;
  /** Queries that walked everything (all-`*` patterns). */
  rangeScans = 0;

  /** Drops every ordering (after clear). */
  reset(): void {
    this.orders.fill(null);
    this.built.fill(0);
    this.dead.fill(0);
  }

  /** Records the deletion of entry `id` so counts stay exact and rebuilds happen in time. */
  noteDelete(id: number): void {
    for (let d = 0; d < DIMS; d++) if (this.orders[d] !== null && id < this.built[d]) this.dead[d]++;
  }

  /** Renumbers after compaction: `oldToNew[id]` is the new id or -1 (dropped). Order is kept. */
  remap(oldToNew: Int32Array, newCount: number): void {
    for (let d = 0; d < DIMS; d++) {
      const o = this.orders[d];
      if (o === null) continue;
      const out = new Int32Array(o.length - this.dead[d]);
      let m = 0;
      for (let i = 0; i < o.length; i++) {
        const x = oldToNew[o[i]];
        if (x >= 0 && m < out.length) out[m++] = x;
      }
      let nb = newCount;
      for (let id = this.built[d]; id < oldToNew.length; id++) {
        if (oldToNew[id] >= 0) { nb = oldToNew[id]; break; }
      }
      this.orders[d] = out.subarray(0, m);
      this.built[d] = nb;
      this.dead[d] = 0;
    }
  }

  /** Bytes held by the built orderings. */
  bytes(): number {
    return this.orders.reduce((s, o) => s + (o === null ? 0 : o.byteLength), 0);
  }

  private stale(d: number, count: number): boolean {
    const covered = this.built[d] - this.dead[d];
    return count - this.built[d] > Math.max(MIN_DELTA, covered / 8) || this.dead[d] > Math.max(MIN_DELTA, covered / 4);
  }

  /** Ordering d, (re)built when missing or stale. */
  private ensure(v: StoreView, d: number): Int32Array {
    const o = this.orders[d];
    if (o !== null && !this.stale(d, v.count)) return o;
    let next: Int32Array;
    if (d === 0) {
      const ids = new IdList(v.count);
      for (let id = 0; id < v.count; id++) if (v.kind[id] !== 0) ids.push(id);
      next = radixSortIds(ids.view(), v.keys, ALL_WORDS);
      this.built[0] = v.count;
      this.dead[0] = 0;
    } else {
      const o0 = this.ensure(v, 0);
      next = radixSortIds(o0.slice(), v.keys, [d]);
      this.built[d] = this.built[0];
      this.dead[d] = this.dead[0];
    }
    this.orders[d] = next;
    return next;
  }

  /** Live delta entries of ordering d matching `match`, in coordinate order. */
  private delta(v: StoreView, d: number, match: (keys: Uint32Array, id: number) => boolean): Int32Array {
    const out = new IdList(16);
    for (let id = this.built[d]; id < v.count; id++) if (v.kind[id] !== 0 && match(v.keys, id)) out.push(id);
    return sortIdsByKey(out.view(), v.keys);
  }

  /** Ids matching `p` in coordinate order, at most `limit`. */
  query(v: StoreView, p: Pattern, limit: number): RangeQuery {
    const cons: number[] = [];
    for (let d = 0; d < DIMS; d++) if (!isWildcard(p, d)) cons.push(d);
    if (cons.length === 0) {
      this.rangeScans++;
      const o0 = this.ensure(v, 0);
      return this.collectOrdered(v, p, o0, 0, o0.length, 0, limit);
    }
    this.rangeIndexHits++;
    // Build everything first: building ordering d may rebuild ordering 0 underneath.
    for (const d of cons) this.ensure(v, d);
    let best = { d: -1, a: 0, b: Infinity };
    if (cons[0] === 0) {
      // Ordering 0 narrows by every leading exact component plus the next one's bounds.
      let k = 0;
      while (k < DIMS - 1 && p.hi[k] === p.lo[k] + 1) k++;
      const o0 = this.orders[0] as Int32Array;
      const lo = Array.from(p.lo.subarray(0, k + 1));
      const hi = lo.slice();
      hi[k] = p.hi[k];
      best = { d: 0, a: lbPrefix(o0, 0, o0.length, v.keys, lo, k + 1), b: lbPrefix(o0, 0, o0.length, v.keys, hi, k + 1) };
    }
    for (const d of cons) {
      if (d === 0) continue;
      const o = this.orders[d] as Int32Array;
      const a = lbWord(o, 0, o.length, v.keys, d, p.lo[d]);
      const b = lbWord(o, a, o.length, v.keys, d, p.hi[d]);
      if (b - a < best.b - best.a) best = { d, a, b };
    }
    const order = this.orders[best.d] as Int32Array;
    const ordered = best.d === 0 || p.hi[best.d] === p.lo[best.d] + 1;
    return ordered
      ? this.collectOrdered(v, p, order, best.a, best.b, best.d, limit)
      : this.collectUnordered(v, p, order, best.a, best.b, best.d, limit);
  }

  /** Merges a run already in coordinate order with the sorted delta, stopping after limit+1. */
  private collectOrdered(v: StoreView, p: Pattern, order: Int32Array, a: number, b: number, d: number, limit: number): RangeQuery {
    const { keys, kind } = v;
    const delta = this.delta(v, d, (k, id) => matchesPattern(p, k, id));
    const out = new IdList(Math.min(limit + 1, b - a + delta.length));
    let i = a;
    let j = 0;
    while (out.n <= limit) {
      while (i < b && (kind[order[i]] === 0 || !matchesPattern(p, keys, order[i]))) i++;
      if (i < b && (j >= delta.length || cmpPrefix(keys, order[i], keys.subarray(delta[j] * DIMS), DIMS) < 0)) {
        out.push(order[i++]);
      } else if (j < delta.length) {
        out.push(delta[j++]);
      } else {
        break;
      }
    }
    return { ids: out.view().subarray(0, Math.min(out.n, limit)), truncated: out.n > limit };
  }

  /** Filters a run sorted by one ranged component, then sorts the (small) result. */
  private collectUnordered(v: StoreView, p: Pattern, order: Int32Array, a: number, b: number, d: number, limit: number): RangeQuery {
    const { keys, kind } = v;
    const out = new IdList(b - a);
    for (let i = a; i < b; i++) {
      const id = order[i];
      if (kind[id] !== 0 && matchesPattern(p, keys, id)) out.push(id);
    }
    for (let id = this.built[d]; id < v.count; id++) if (kind[id] !== 0 && matchesPattern(p, keys, id)) out.push(id);
    const ids = sortIdsByKey(out.view(), keys);
    return { ids: ids.subarray(0, Math.min(ids.length, limit)), truncated: ids.length > limit };
  }

  /** Live entries whose key starts with prefix[0..level) (level ≥ 1). */
  countPrefix(v: StoreView, prefix: ArrayLike<number>, level: number): number {
    this.rangeIndexHits++;
    const o0 = this.ensure(v, 0);
    const [a, b] = prefixRun(o0, v.keys, prefix, level);
    let n = b - a;
    if (this.dead[0] > 0) for (let i = a; i < b; i++) if (v.kind[o0[i]] === 0) n--;
    for (let id = this.built[0]; id < v.count; id++) {
      if (v.kind[id] !== 0 && cmpPrefix(v.keys, id, prefix, level) === 0) n++;
    }
    return n;
  }

  /**
   * Distinct existing prefixes of length `childLevel` under prefix[0..level), in coordinate
   * order, with live counts. Jumps run to run by binary search: O(children · log n).
   */
  children(v: StoreView, prefix: ArrayLike<number>, level: number, childLevel: number): PrefixCount[] {
    this.rangeIndexHits++;
    const keys = v.keys;
    const o0 = this.ensure(v, 0);
    const [a, b] = prefixRun(o0, keys, prefix, level);
    const byKey = new Map<string, PrefixCount>();
    const out: PrefixCount[] = [];
    const hiTarget = new Float64Array(childLevel);
    for (let i = a; i < b;) {
      const base = o0[i] * DIMS;
      for (let j = 0; j < childLevel; j++) hiTarget[j] = keys[base + j];
      hiTarget[childLevel - 1] += 1;
      const end = lbPrefix(o0, i, b, keys, hiTarget, childLevel);
      let n = end - i;
      if (this.dead[0] > 0) for (let x = i; x < end; x++) if (v.kind[o0[x]] === 0) n--;
      if (n > 0) out.push(childEntry(keys, base, childLevel, n, byKey));
      i = end;
    }
    let merged = false;
    for (let id = this.built[0]; id < v.count; id++) {
      if (v.kind[id] === 0 || cmpPrefix(keys, id, prefix, level) !== 0) continue;
      const hit = byKey.get(keys.subarray(id * DIMS, id * DIMS + childLevel).join('.'));
      if (hit !== undefined) hit.count++;
      else out.push(childEntry(keys, id * DIMS, childLevel, 1, byKey));
      merged = true;
    }
    if (merged) out.sort((x, y) => cmpPrefix(x.prefix, 0, y.prefix, DIMS));
    return out;
  }
}

function childEntry(keys: Uint32Array, base: number, len: number, count: number, byKey: Map<string, PrefixCount>): PrefixCount {
  const prefix = new Uint32Array(DIMS);
  prefix.set(keys.subarray(base, base + len));
  const e = { prefix, count };
  byKey.set(prefix.subarray(0, len).join('.'), e);
  return e;
}
