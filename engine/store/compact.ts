/**
 * Compaction: copies live entries (in id order, so orderings stay sorted after renumbering)
 * into fresh columns with no dead values, shapes or entries, and rebuilds the hash table.
 */
import { DIMS } from '../types';
import { EMPTY, META, M_OFF, M_LEN, M_KDN, M_SHAPE, StoreView } from './reader';
import { hashKey } from './hash';
import { sharedArray, nextPow2, newTable } from './shared';

/** The compacted view plus the old→new id map (-1 = dropped) for the range index. */
export interface Compacted {
  view: StoreView;
  oldToNew: Int32Array;
  heapUsed: number;
  shapesUsed: number;
}

/** Builds a compacted copy of `v` holding its `live` entries. */
export function compactView(v: StoreView, live: number): Compacted {
  const meta = v.meta;
  let bytes = 0;
  let dims = 0;
  for (let id = 0; id < v.count; id++) {
    if (v.kind[id] !== 0) {
      bytes += meta[id * META + M_LEN];
      dims += (meta[id * META + M_KDN] >>> 16) & 0xff;
    }
  }
  const cap = Math.max(16, live);
  const out: StoreView = {
    count: 0,
    table: newTable(nextPow2(cap * 2)),
    keys: sharedArray(Uint32Array, cap * DIMS),
    kind: sharedArray(Uint8Array, cap), meta: sharedArray(Uint32Array, cap * META),
    heap: sharedArray(Uint8Array, Math.max(1024, bytes)), shapes: sharedArray(Uint32Array, Math.max(16, dims)),
  };
  const oldToNew = new Int32Array(v.count).fill(-1);
  const mask = (out.table.length >>> 1) - 1;
  const om = out.meta;
  let hp = 0;
  let sp = 0;
  for (let id = 0; id < v.count; id++) {
    if (v.kind[id] === 0) continue;
    const n = out.count++;
    oldToNew[id] = n;
    out.keys.set(v.keys.subarray(id * DIMS, id * DIMS + DIMS), n * DIMS);
    out.kind[n] = v.kind[id];
    const m = id * META;
    const kdn = meta[m + M_KDN];
    const len = meta[m + M_LEN];
    const off = meta[m + M_OFF];
    om[n * META + M_OFF] = hp;
    om[n * META + M_LEN] = len;
    om[n * META + M_KDN] = kdn;
    om[n * META + M_SHAPE] = sp;
    out.heap.set(v.heap.subarray(off, off + len), hp);
    hp += len;
    const nd = (kdn >>> 16) & 0xff;
    const so = meta[m + M_SHAPE];
    out.shapes.set(v.shapes.subarray(so, so + nd), sp);
    sp += nd;
    const h = hashKey(out.keys, n * DIMS);
    let s = h & mask;
    while (out.table[2 * s] !== EMPTY) s = (s + 1) & mask;
    out.table[2 * s] = n;
    out.table[2 * s + 1] = h;
  }
  return { view: out, oldToNew, heapUsed: hp, shapesUsed: sp };
}
