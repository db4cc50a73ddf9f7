/**
 * The store's arrays (a StoreView, engine/store/reader.ts): an empty one, the bytes behind
 * one, and the open-addressing hash table over its keys: two words per slot (entry id or
 * EMPTY/TOMBSTONE, then the key's hash), linear probing, load at most 0.5.
 */
import { DIMS } from '../types';
import { EMPTY, META, TOMBSTONE, type StoreView } from './reader';
import { newTable, nextPow2, sharedArray } from './shared';

/** A view with room for a few entries and nothing in it. */
export function emptyView(): StoreView {
  return {
    count: 0,
    table: newTable(16),
    keys: sharedArray(Uint32Array, 16 * DIMS),
    kind: sharedArray(Uint8Array, 16), meta: sharedArray(Uint32Array, 16 * META),
    heap: sharedArray(Uint8Array, 1024), shapes: sharedArray(Uint32Array, 16),
  };
}

/** Bytes behind every typed array of a view. */
export function allocated(v: StoreView): number {
  let n = 0;
  for (const x of Object.values(v)) if (ArrayBuffer.isView(x)) n += x.byteLength;
  return n;
}

/** A table for `expected` live entries holding `old`'s entries, without its tombstones (hashes come from `old`). */
export function rehashed(old: Int32Array, expected: number): Int32Array {
  const table = newTable(nextPow2(Math.max(16, expected * 2)));
  const mask = (table.length >>> 1) - 1;
  for (let o = 0; o < old.length; o += 2) {
    const id = old[o];
    if (id < 0) continue;
    const h = old[o + 1];
    let s = h & mask;
    while (table[2 * s] !== EMPTY) s = (s + 1) & mask;
    table[2 * s] = id;
    table[2 * s + 1] = h;
  }
  return table;
}

/** Table slot holding row i of `c` (hash h), or the slot to insert at encoded as -(slot + 1). */
export function probe(v: StoreView, c: ArrayLike<number>, i: number, h: number): number {
  const { table, keys } = v;
  const mask = (table.length >>> 1) - 1;
  const base = i * DIMS;
  let s = h & mask;
  let free = -1;
  for (;;) {
    const id = table[2 * s];
    if (id === EMPTY) return -((free >= 0 ? free : s) + 1);
    if (id === TOMBSTONE) {
      if (free < 0) free = s;
    } else if (table[2 * s + 1] === h) {
      const k = id * DIMS;
      let d = DIMS - 1;
      while (d >= 0 && keys[k + d] === c[base + d]) d--;
      if (d < 0) return s;
    }
    s = (s + 1) & mask;
  }
}
