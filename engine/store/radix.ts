/**
 * Sorting entry ids by key words: an MSD hybrid. The range is radix-sorted (LSD on the
 * digits of one word, skipping digits that are the same everywhere) by the first word that
 * varies, then each run of equal values is sorted by the next word the same way; short runs
 * finish with an insertion sort. Random keys are done after one word (two 16-bit passes),
 * keys with long shared prefixes only pay for the words that actually differ.
 */
import { DIMS } from '../types';

/** Runs at most this long are insertion-sorted. */
const SMALL = 32;
/** Ranges at least this long use 16-bit digits (a 65,536-entry count table), shorter 8-bit. */
const WIDE = 1 << 15;

let counts16: Int32Array | null = null;
const counts8 = new Int32Array(256);

/** All 9 words, most significant first: full coordinate order. */
export const ALL_WORDS: readonly number[] = Object.freeze([0, 1, 2, 3, 4, 5, 6, 7, 8]);

/** Words for ordering d: key[d] first, then the full key (key[d] itself is equal within a run). */
export function orderingWords(d: number): number[] {
  const w = [d];
  for (let j = 0; j < DIMS; j++) if (j !== d) w.push(j);
  return w;
}

/**
 * Sorts `ids` in place by the given key words, most significant first (e.g. [0..8] for full
 * coordinate order). Not stable, but ties only occur between ids with equal keys on `words`.
 * Returns `ids`.
 */
export function radixSortIds(ids: Int32Array, keys: Uint32Array, words: readonly number[]): Int32Array {
  const n = ids.length;
  if (n < 2) return ids;
  if (n <= SMALL) {
    insertion(ids, 0, n, keys, words, 0);
    return ids;
  }
  const s = new Scratch(ids, n);
  sortRange(s, 0, n, keys, words, 0);
  return ids;
}

/** Sorts ids into coordinate order. */
export function sortIdsByKey(ids: Int32Array, keys: Uint32Array): Int32Array {
  return radixSortIds(ids, keys, ALL_WORDS);
}

class Scratch {
  tmp: Int32Array;
  val: Uint32Array;
  val2: Uint32Array;
  constructor(readonly ids: Int32Array, n: number) {
    this.tmp = new Int32Array(n);
    this.val = new Uint32Array(n);
    this.val2 = new Uint32Array(n);
  }
}

function sortRange(s: Scratch, lo: number, hi: number, keys: Uint32Array, words: readonly number[], wi: number): void {
  const ids = s.ids;
  const val = s.val;
  for (;;) {
    const n = hi - lo;
    if (n < 2) return;
    if (n <= SMALL) {
      insertion(ids, lo, hi, keys, words, wi);
      return;
    }
    const word = words[wi];
    let and = 0xffffffff;
    let or = 0;
    for (let i = lo; i < hi; i++) {
      const x = keys[ids[i] * DIMS + word];
      val[i] = x;
      and &= x;
      or |= x;
    }
    const varying = (and ^ or) >>> 0;
    if (varying !== 0) radixRange(s, lo, hi, varying);
    if (wi + 1 === words.length) return;
    if (varying === 0) {
      wi++;
      continue;
    }
    // Each run of equal values sorts by the next word.
    for (let i = lo; i < hi;) {
      const x = val[i];
      let j = i + 1;
      while (j < hi && val[j] === x) j++;
      if (j - i > 1) sortRange(s, i, j, keys, words, wi + 1);
      i = j;
    }
    return;
  }
}

/** LSD radix sort of ids[lo, hi) by val[lo, hi); the result ends in ids/val. */
function radixRange(s: Scratch, lo: number, hi: number, varying: number): void {
  let src = s.ids;
  let dst = s.tmp;
  let sv = s.val;
  let dv = s.val2;
  const wide = hi - lo >= WIDE;
  const bits = wide ? 16 : 8;
  const dmask = wide ? 0xffff : 0xff;
  let c: Int32Array;
  if (wide) c = counts16 ??= new Int32Array(1 << 16);
  else c = counts8;
  const nb = dmask + 1;
  let swapped = false;
  for (let shift = 0; shift < 32; shift += bits) {
    if (((varying >>> shift) & dmask) === 0) continue;
    c.fill(0);
    for (let i = lo; i < hi; i++) c[(sv[i] >>> shift) & dmask]++;
    let sum = lo;
    for (let b = 0; b < nb; b++) {
      const t = c[b];
      c[b] = sum;
      sum += t;
    }
    for (let i = lo; i < hi; i++) {
      const x = sv[i];
      const at = c[(x >>> shift) & dmask]++;
      dst[at] = src[i];
      dv[at] = x;
    }
    const t1 = src; src = dst; dst = t1;
    const t2 = sv; sv = dv; dv = t2;
    swapped = !swapped;
  }
  if (swapped) {
    s.ids.set(src.subarray(lo, hi), lo);
    s.val.set(sv.subarray(lo, hi), lo);
  }
}

/** Insertion sort of ids[lo, hi) by words[wi..]. */
function insertion(ids: Int32Array, lo: number, hi: number, keys: Uint32Array, words: readonly number[], wi: number): void {
  const nw = words.length;
  for (let i = lo + 1; i < hi; i++) {
    const x = ids[i];
    const xb = x * DIMS;
    let j = i - 1;
    while (j >= lo) {
      const yb = ids[j] * DIMS;
      let diff = 0;
      for (let w = wi; w < nw && diff === 0; w++) diff = keys[yb + words[w]] - keys[xb + words[w]];
      if (diff <= 0) break;
      ids[j + 1] = ids[j];
      j--;
    }
    ids[j + 1] = x;
  }
}
