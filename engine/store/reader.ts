/**
 * Read-side of the store: lookups over a {@link StoreView}. The same functions serve
 * Store.get/getBatch on the main thread and worker threads holding a posted view, so there
 * is one copy of the probing code. Depends only on ../types and ./hash (no Node APIs) so a
 * worker can load it alone.
 */
import { DIMS, Kind, Scroll, ScrollBatch } from '../types';
import { hashKey } from './hash';

/** Hash-table slot states; entry ids are ≥ 0. */
export const EMPTY = -1;
/** A deleted slot: probes continue past it, inserts may reuse it. */
export const TOMBSTONE = -2;

/**
 * A structured-cloneable snapshot of the store: SharedArrayBuffer-backed arrays plus counts.
 * Post it to a worker; it stays valid until the next write on the main thread (a write may
 * reallocate arrays or overwrite values in place).
 *
 * Entry e: key keys[9e..9e+9), kind[e] (0 = deleted), dtype[e], value
 * heap[valOff[e] .. valOff[e]+valLen[e]), shape shapes[shapeOff[e] .. +ndim[e]).
 */
export interface StoreView {
  /** Entries ever appended (live and dead). */
  count: number;
  /** Hash table: entry id, EMPTY or TOMBSTONE; length is a power of two. */
  table: Int32Array;
  keys: Uint32Array;
  kind: Uint8Array;
  dtype: Uint8Array;
  ndim: Uint8Array;
  valOff: Uint32Array;
  valLen: Uint32Array;
  shapeOff: Uint32Array;
  heap: Uint8Array;
  shapes: Uint32Array;
}

/** Entry id of row `row` of a flat coordinate array, or -1 when absent. */
export function findEntry(v: StoreView, c: ArrayLike<number>, row: number): number {
  return findFrom(v, c, row, hashKey(c, row * DIMS) & (v.table.length - 1));
}

/** Probe for row `row` starting at slot `s` (its home slot, computed by the caller). */
function findFrom(v: StoreView, c: ArrayLike<number>, row: number, s: number): number {
  const base = row * DIMS;
  const table = v.table;
  const keys = v.keys;
  const mask = table.length - 1;
  for (;;) {
    const id = table[s];
    if (id === EMPTY) return -1;
    if (id >= 0) {
      const k = id * DIMS;
      // Low components vary most in practice, so compare from the end.
      if (keys[k + 8] === c[base + 8] && keys[k + 7] === c[base + 7] && keys[k + 6] === c[base + 6] &&
          keys[k + 5] === c[base + 5] && keys[k + 4] === c[base + 4] && keys[k + 3] === c[base + 3] &&
          keys[k + 2] === c[base + 2] && keys[k + 1] === c[base + 1] && keys[k] === c[base]) return id;
    }
    s = (s + 1) & mask;
  }
}

/** Rows per lookup chunk: its table and key cache lines fit comfortably in L2. */
export const CHUNK = 1024;
/** Keeps warm-up loads observable so the JIT cannot drop them. */
let sink = 0;

/**
 * Home slots of rows [r0, r1) into `slots`, then touches each home slot and its key so the
 * cache misses of a chunk overlap (one miss at a time is what makes hash lookups slow).
 */
export function warmChunk(v: StoreView, c: ArrayLike<number>, r0: number, r1: number, slots: Int32Array): void {
  const table = v.table;
  const keys = v.keys;
  const mask = table.length - 1;
  for (let i = r0; i < r1; i++) slots[i - r0] = hashKey(c, i * DIMS) & mask;
  let acc = 0;
  for (let i = 0; i < r1 - r0; i++) {
    const id = table[slots[i]];
    if (id >= 0) acc += keys[id * DIMS + 8];
  }
  sink ^= acc;
}

/** Entry ids for every row of a flat coordinate column (-1 = absent), looked up chunk by chunk. */
export function findEntries(v: StoreView, c: Uint32Array, ids: Int32Array): number {
  const n = (c.length / DIMS) | 0;
  const slots = new Int32Array(Math.min(n, CHUNK));
  let found = 0;
  for (let r0 = 0; r0 < n; r0 += CHUNK) {
    const r1 = Math.min(n, r0 + CHUNK);
    warmChunk(v, c, r0, r1, slots);
    for (let i = r0; i < r1; i++) {
      const id = findFrom(v, c, i, slots[i - r0]);
      ids[i] = id;
      if (id >= 0) found++;
    }
  }
  return found;
}

/** Last warm-up accumulator (exported only so the loads count as used). */
export function warmSink(): number {
  return sink;
}

/** A copy of entry `id` as a Scroll (safe to keep past later writes). */
export function readScroll(v: StoreView, id: number): Scroll {
  const off = v.valOff[id];
  const so = v.shapeOff[id];
  return {
    kind: v.kind[id] as Kind,
    dtype: v.dtype[id],
    shape: Array.from(v.shapes.subarray(so, so + v.ndim[id])),
    bytes: v.heap.slice(off, off + v.valLen[id]),
  };
}

/** Copies `len` bytes; a loop beats subarray+set for the small values that dominate. */
function copyBytes(dst: Uint8Array, at: number, src: Uint8Array, from: number, len: number): void {
  if (len <= 48) {
    for (let j = 0; j < len; j++) dst[at + j] = src[from + j];
  } else {
    dst.set(src.subarray(from, from + len), at);
  }
}

/**
 * Gathers the scrolls for entry ids (-1 = missing → a kind 0 row) into one batch.
 * `coords`, when given, becomes the batch's coords column.
 */
export function gatherEntries(v: StoreView, ids: Int32Array, n: number, coords?: Uint32Array, withValues = true): ScrollBatch {
  const { valLen, ndim, valOff, shapeOff, kind, dtype, heap, shapes } = v;
  const vo = new Int32Array(n + 1);
  const so = new Int32Array(n + 1);
  if (withValues) {
    // Offsets first: a tight loop of independent loads, so the misses overlap.
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      vo[i + 1] = vo[i] + (id >= 0 ? valLen[id] : 0);
      so[i + 1] = so[i] + (id >= 0 ? ndim[id] : 0);
    }
  }
  const out: ScrollBatch = {
    n, coords,
    kind: new Uint8Array(n), dtype: new Uint8Array(n),
    shapeOffsets: so, shapeValues: new Uint32Array(so[n]),
    valueOffsets: vo, values: new Uint8Array(vo[n]),
  };
  if (!withValues) return out;
  const { kind: ok, dtype: od, shapeValues: sv, values } = out;
  let acc = 0;
  for (let r0 = 0; r0 < n; r0 += CHUNK) {
    const r1 = Math.min(n, r0 + CHUNK);
    // Warm the chunk's metadata and value lines before the copy loop needs them.
    for (let i = r0; i < r1; i++) {
      const id = ids[i];
      if (id >= 0) acc += kind[id] + dtype[id] + heap[valOff[id]];
    }
    for (let i = r0; i < r1; i++) {
      const id = ids[i];
      if (id < 0) continue;
      ok[i] = kind[id];
      od[i] = dtype[id];
      copyBytes(values, vo[i], heap, valOff[id], vo[i + 1] - vo[i]);
      const nd = so[i + 1] - so[i];
      for (let j = 0, s = shapeOff[id], p = so[i]; j < nd; j++) sv[p + j] = shapes[s + j];
    }
  }
  sink ^= acc;
  return out;
}

/** Result of a batched lookup: rows align with the request; `found` counts present rows. */
export interface LookupResult {
  batch: ScrollBatch;
  found: number;
}

/** Batched lookup of a flat coordinate column (no coords column in the result). */
export function getBatchFromView(v: StoreView, coords: Uint32Array): LookupResult {
  const n = (coords.length / DIMS) | 0;
  const ids = new Int32Array(n);
  const found = findEntries(v, coords, ids);
  return { batch: gatherEntries(v, ids, n), found };
}

/** Object form of the batched lookup for callers that prefer a class (e.g. a worker). */
export class StoreReader {
  /** Wraps a view posted from the main thread. */
  constructor(readonly view: StoreView) {}
  /** See {@link getBatchFromView}. */
  getBatch(coords: Uint32Array): LookupResult {
    return getBatchFromView(this.view, coords);
  }
  /** One scroll, or undefined when absent. */
  get(coords: ArrayLike<number>, row = 0): Scroll | undefined {
    const id = findEntry(this.view, coords, row);
    return id < 0 ? undefined : readScroll(this.view, id);
  }
}
