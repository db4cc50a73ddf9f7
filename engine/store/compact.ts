/**
 * Compaction: copies live entries (in id order, so orderings stay sorted after renumbering)
 * into fresh columns with no dead values, shapes or entries, and rebuilds the hash table.
 */
import { DIMS } from '../types';
import { EMPTY, StoreView } from './reader';
import { hashKey } from './hash';
import { sharedArray, nextPow2 } from './shared';

/** The compacted view plus the old→new id map (-1 = dropped) for the range index. */
export interface Compacted {
  view: StoreView;
  oldToNew: Int32Array;
  heapUsed: number;
  shapesUsed: number;
}

/** Builds a compacted copy of `v` holding its `live` entries. */
export function compactView(v: StoreView, live: number): Compacted {
  let bytes = 0;
  let dims = 0;
  for (let id = 0; id < v.count; id++) {
    if (v.kind[id] !== 0) {
      bytes += v.valLen[id];
      dims += v.ndim[id];
    }
  }
  const cap = Math.max(16, live);
  const out: StoreView = {
    count: 0,
    table: sharedArray(Int32Array, nextPow2(cap * 2)).fill(EMPTY),
    keys: sharedArray(Uint32Array, cap * DIMS),
    kind: sharedArray(Uint8Array, cap), dtype: sharedArray(Uint8Array, cap), ndim: sharedArray(Uint8Array, cap),
    valOff: sharedArray(Uint32Array, cap), valLen: sharedArray(Uint32Array, cap), shapeOff: sharedArray(Uint32Array, cap),
    heap: sharedArray(Uint8Array, Math.max(1024, bytes)), shapes: sharedArray(Uint32Array, Math.max(16, dims)),
  };
  const oldToNew = new Int32Array(v.count).fill(-1);
  const mask = out.table.length - 1;
  let hp = 0;
  let sp = 0;
  for (let id = 0; id < v.count; id++) {
    if (v.kind[id] === 0) continue;
    const n = out.count++;
    oldToNew[id] = n;
    out.keys.set(v.keys.subarray(id * DIMS, id * DIMS + DIMS), n * DIMS);
    out.kind[n] = v.kind[id];
    out.dtype[n] = v.dtype[id];
    const len = v.valLen[id];
    out.valOff[n] = hp;
    out.valLen[n] = len;
    out.heap.set(v.heap.subarray(v.valOff[id], v.valOff[id] + len), hp);
    hp += len;
    const nd = v.ndim[id];
    out.ndim[n] = nd;
    out.shapeOff[n] = sp;
    out.shapes.set(v.shapes.subarray(v.shapeOff[id], v.shapeOff[id] + nd), sp);
    sp += nd;
    let s = hashKey(out.keys, n * DIMS) & mask;
    while (out.table[s] !== EMPTY) s = (s + 1) & mask;
    out.table[s] = n;
  }
  return { view: out, oldToNew, heapUsed: hp, shapesUsed: sp };
}
