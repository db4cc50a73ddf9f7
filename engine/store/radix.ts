/**
 * Stable LSD radix sort of entry ids by key words, 16 bits per pass. Digits that are the same
 * for every id are skipped (common: most components are 0 or constant).
 */
import { DIMS } from '../types';

const BUCKETS = 1 << 16;
let counts: Int32Array | null = null;

/**
 * Sorts `ids` stably by the given key words, most significant first (e.g. [0..8] for full
 * coordinate order, [d] to re-sort an already ordered list by component d).
 * Returns the sorted array. `ids` is consumed: it may be reused as scratch, so pass a copy
 * of anything that must survive.
 */
export function radixSortIds(ids: Int32Array, keys: Uint32Array, words: readonly number[]): Int32Array {
  const n = ids.length;
  if (n < 2) return ids;
  counts ??= new Int32Array(BUCKETS);
  let src = ids;
  let dst: Int32Array = new Int32Array(n);
  // One random gather per word: the word's values travel with the ids through both passes.
  let val = new Uint32Array(n);
  let val2 = new Uint32Array(n);
  for (let w = words.length - 1; w >= 0; w--) {
    const word = words[w];
    let and = 0xffffffff;
    let or = 0;
    for (let i = 0; i < n; i++) {
      const x = keys[src[i] * DIMS + word];
      val[i] = x;
      and &= x;
      or |= x;
    }
    const varying = (and ^ or) >>> 0;
    for (let shift = 0; shift <= 16; shift += 16) {
      if (((varying >>> shift) & 0xffff) === 0) continue;
      pass(src, dst, val, val2, shift, counts);
      [src, dst] = [dst, src];
      [val, val2] = [val2, val];
    }
  }
  return src;
}

/** One counting pass on a 16-bit digit of `val`, moving ids and their values together. */
function pass(src: Int32Array, dst: Int32Array, val: Uint32Array, valOut: Uint32Array, shift: number, c: Int32Array): void {
  const n = src.length;
  c.fill(0);
  for (let i = 0; i < n; i++) c[(val[i] >>> shift) & 0xffff]++;
  let sum = 0;
  for (let b = 0; b < BUCKETS; b++) {
    const t = c[b];
    c[b] = sum;
    sum += t;
  }
  for (let i = 0; i < n; i++) {
    const x = val[i];
    const at = c[(x >>> shift) & 0xffff]++;
    dst[at] = src[i];
    valOut[at] = x;
  }
}

/** All 9 words, most significant first: full coordinate order. */
export const ALL_WORDS: readonly number[] = Object.freeze([0, 1, 2, 3, 4, 5, 6, 7, 8]);

/** Sorts ids into coordinate order: comparator sort when small, radix when large. */
export function sortIdsByKey(ids: Int32Array, keys: Uint32Array): Int32Array {
  if (ids.length > 2048) return radixSortIds(ids, keys, ALL_WORDS);
  return ids.sort((a, b) => {
    const x = a * DIMS;
    const y = b * DIMS;
    for (let d = 0; d < DIMS; d++) {
      const diff = keys[x + d] - keys[y + d];
      if (diff !== 0) return diff;
    }
    return 0;
  });
}
