/**
 * Ordered range index. Ordering d holds live entry ids sorted by (key[d], then the full key);
 * ordering 0 is therefore full coordinate order. Each ordering is built lazily on its own
 * (MSD radix sort, ./radix). Entries appended since a build (ids ≥ built[d]: ids are
 * append-only) form the unsorted delta that queries scan; once the delta passes
 * max(4096, n/64) or deletions pile up, the sorted delta is merged in (dead ids dropped) in
 * one linear pass rather than re-sorting everything.
 *
 * A query binary-searches each constrained component's ordering for its exact candidate
 * run, filters the smallest, and merges the delta. Only an all-`*` pattern walks ordering 0
 * whole (counted in rangeScans); everything else counts as a rangeIndexHit.
 */
import { DIMS } from '../types';
import { Pattern, matchesPattern, isWildcard } from '../pattern';
import { StoreView } from './reader';
import { ALL_WORDS, orderingWords, radixSortIds, sortIdsByKey } from './radix';
import { IntList } from '../intlist';
import { tick } from '../budget';

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
const EMPTY_IDS = new Int32Array(0);

/** Full keys of entries x and y compared. */
function cmpIds(keys: Uint32Array, x: number, y: number): number {
  const a = x * DIMS;
  const b = y * DIMS;
  for (let j = 0; j < DIMS; j++) {
    const diff = keys[a + j] - keys[b + j];
    if (diff !== 0) return diff;
  }
  return 0;
}

/** (words order) comparison of entries x and y. */
function cmpWords(keys: Uint32Array, x: number, y: number, words: readonly number[]): number {
  const a = x * DIMS;
  const b = y * DIMS;
  for (let j = 0; j < words.length; j++) {
    const diff = keys[a + words[j]] - keys[b + words[j]];
    if (diff !== 0) return diff;
  }
  return 0;
}

/**
 * Live ids of `o` (all when `kind` is null) merged with the sorted `add`, both in `words`
 * order. Each added id is placed by binary search, so the cost is a copy of `o` plus
 * |add| · log |o| key compares.
 */
function mergeOrdered(o: Int32Array, kind: Uint8Array | null, add: Int32Array, keys: Uint32Array, words: readonly number[]): Int32Array {
  const out = new Int32Array(o.length + add.length);
  let n = 0;
  let i = 0;
  for (let j = 0; j <= add.length; j++) {
    let end = o.length;
    if (j < add.length) {
      let lo = i;
      let hi = o.length;
      const x = add[j];
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cmpWords(keys, o[mid], x, words) <= 0) lo = mid + 1;
        else hi = mid;
      }
      end = lo;
    }
    if (kind === null) {
      out.set(o.subarray(i, end), n);
      n += end - i;
    } else {
      for (let k = i; k < end; k++) if (kind[o[k]] !== 0) out[n++] = o[k];
    }
    i = end;
    if (j < add.length) out[n++] = add[j];
  }
  return n === out.length ? out : out.slice(0, n);
}

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
    return count - this.built[d] > Math.max(MIN_DELTA, covered / 64) || this.dead[d] > Math.max(MIN_DELTA, covered / 8);
  }

  /**
   * Ordering d, built when missing; when stale, the sorted delta is merged in (and dead ids
   * dropped) in one linear pass instead of a full re-sort.
   */
  private ensure(v: StoreView, d: number): Int32Array {
    const o = this.orders[d];
    if (o !== null && !this.stale(d, v.count)) return o;
    const { kind, keys } = v;
    const from = o === null ? 0 : this.built[d];
    let nd = 0;
    for (let id = from; id < v.count; id++) if (kind[id] !== 0) nd++;
    const add = new Int32Array(nd);
    for (let id = from, j = 0; id < v.count; id++) if (kind[id] !== 0) add[j++] = id;
    const words = d === 0 ? ALL_WORDS : orderingWords(d);
    radixSortIds(add, keys, words);
    const next = o === null ? add : mergeOrdered(o, this.dead[d] > 0 ? kind : null, add, keys, words);
    this.orders[d] = next;
    this.built[d] = v.count;
    this.dead[d] = 0;
    return next;
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
    let best = { d: -1, a: 0, b: Infinity };
    if (cons[0] === 0) {
      // Ordering 0 narrows by every leading exact component plus the next one's bounds.
      let k = 0;
      while (k < DIMS - 1 && p.hi[k] === p.lo[k] + 1) k++;
      const o0 = this.ensure(v, 0);
      const lo = Array.from(p.lo.subarray(0, k + 1));
      const hi = lo.slice();
      hi[k] = p.hi[k];
      best = { d: 0, a: lbPrefix(o0, 0, o0.length, v.keys, lo, k + 1), b: lbPrefix(o0, 0, o0.length, v.keys, hi, k + 1) };
    }
    for (const d of cons) {
      if (d === 0) continue;
      const o = this.ensure(v, d);
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

  /** Live delta entries of ordering d matching `p`, in coordinate order. */
  private delta(v: StoreView, d: number, p: Pattern): Int32Array {
    const { kind, keys } = v;
    let out: IntList | null = null;
    for (let id = this.built[d]; id < v.count; id++) {
      tick();
      if (kind[id] !== 0 && matchesPattern(p, keys, id)) (out ??= new IntList(16)).push(id);
    }
    return out === null ? EMPTY_IDS : sortIdsByKey(out.view(), keys);
  }

  /** Merges a run already in coordinate order with the sorted delta, stopping after limit+1. */
  private collectOrdered(v: StoreView, p: Pattern, order: Int32Array, a: number, b: number, d: number, limit: number): RangeQuery {
    const { keys, kind } = v;
    const delta = this.delta(v, d, p);
    // Components other than d that constrain: when none, every live id of the run matches.
    let check = false;
    for (let j = 0; j < DIMS; j++) if (j !== d && !isWildcard(p, j)) check = true;
    const cap = Math.min(limit + 1, b - a + delta.length);
    let out = new Int32Array(cap);
    let n = 0;
    if (delta.length === 0) {
      if (!check && this.dead[d] === 0) {
        n = Math.min(cap, b - a);
        out.set(order.subarray(a, a + n));
      } else {
        for (let i = a; i < b && n < cap; i++) {
          tick();
          const id = order[i];
          if (kind[id] !== 0 && (!check || matchesPattern(p, keys, id))) out[n++] = id;
        }
      }
    } else {
      let i = a;
      let j = 0;
      while (n < cap) {
        while (i < b && (kind[order[i]] === 0 || (check && !matchesPattern(p, keys, order[i])))) { i++; tick(); }
        tick();
        if (i < b && (j >= delta.length || cmpIds(keys, order[i], delta[j]) < 0)) out[n++] = order[i++];
        else if (j < delta.length) out[n++] = delta[j++];
        else break;
      }
    }
    if (n < out.length) out = out.subarray(0, n);
    return { ids: out.subarray(0, Math.min(n, limit)), truncated: n > limit };
  }

  /** Filters a run sorted by one ranged component, then sorts the (small) result. */
  private collectUnordered(v: StoreView, p: Pattern, order: Int32Array, a: number, b: number, d: number, limit: number): RangeQuery {
    const { keys, kind } = v;
    const out = new IntList(b - a);
    for (let i = a; i < b; i++) {
      tick();
      const id = order[i];
      if (kind[id] !== 0 && matchesPattern(p, keys, id)) out.push(id);
    }
    for (let id = this.built[d]; id < v.count; id++) {
      tick();
      if (kind[id] !== 0 && matchesPattern(p, keys, id)) out.push(id);
    }
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
      tick();
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
      tick();
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
      tick();
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
