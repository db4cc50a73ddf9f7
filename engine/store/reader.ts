/**
 * Read-side of the store: lookups over a {@link StoreView}. The same functions serve
 * Store.get/getBatch on the main thread and worker threads holding a posted view, so there
 * is one copy of the probing code. Depends only on ../types, ./hash and ../budget (no Node
 * APIs) so a worker can load it alone.
 */
import { DIMS, Kind, Scroll, ScrollBatch } from '../types';
import { hashKey } from './hash';
import { tick } from '../budget';

/** Hash-table slot states; entry ids are ≥ 0. */
export const EMPTY = -1;
/** A deleted slot: probes continue past it, inserts may reuse it. */
export const TOMBSTONE = -2;

/** Words per entry in {@link StoreView.meta}. */
export const META = 4;
/** meta word offsets: value offset, value length, kind | dtype << 8 | ndim << 16, shape offset. */
export const M_OFF = 0;
export const M_LEN = 1;
export const M_KDN = 2;
export const M_SHAPE = 3;

/**
 * A structured-cloneable snapshot of the store: SharedArrayBuffer-backed arrays plus counts.
 * Post it to a worker; it stays valid until the next write on the main thread (a write may
 * reallocate arrays or overwrite values in place).
 *
 * Entry e: key keys[9e..9e+9); meta[4e..4e+4) = valOff, valLen, kind | dtype << 8 | ndim << 16,
 * shapeOff (one cache line holds a random lookup's metadata); value heap[valOff .. +valLen),
 * shape shapes[shapeOff .. +ndim). kind[e] repeats the kind byte (0 = deleted) for scans.
 */
export interface StoreView {
  /** Entries ever appended (live and dead). */
  count: number;
  /**
   * Hash table, two words per slot: [2s] entry id, EMPTY or TOMBSTONE; [2s+1] the key's full
   * hashKey, so probes skip other keys without touching them. Slot count is a power of two.
   */
  table: Int32Array;
  keys: Uint32Array;
  /** Kind per entry, 0 = deleted (same as meta's low byte; compact for liveness scans). */
  kind: Uint8Array;
  /** META words per entry (see above). */
  meta: Uint32Array;
  heap: Uint8Array;
  shapes: Uint32Array;
}

/** Entry id of row `row` of a flat coordinate array, or -1 when absent. */
export function findEntry(v: StoreView, c: ArrayLike<number>, row: number): number {
  const h = hashKey(c, row * DIMS);
  return findFrom(v.table, v.keys, c, row * DIMS, h & ((v.table.length >>> 1) - 1), h);
}

/** Probe for the key at c[base..base+9) (hash h) starting at slot `s`. */
function findFrom(table: Int32Array, keys: Uint32Array, c: ArrayLike<number>, base: number, s: number, h: number): number {
  const mask = (table.length >>> 1) - 1;
  for (;;) {
    const id = table[2 * s];
    if (id === EMPTY) return -1;
    if (id >= 0 && table[2 * s + 1] === h) {
      const k = id * DIMS;
      // Low components vary most in practice, so compare from the end.
      if (keys[k + 8] === c[base + 8] && keys[k + 7] === c[base + 7] && keys[k + 6] === c[base + 6] &&
          keys[k + 5] === c[base + 5] && keys[k + 4] === c[base + 4] && keys[k + 3] === c[base + 3] &&
          keys[k + 2] === c[base + 2] && keys[k + 1] === c[base + 1] && keys[k] === c[base]) return id;
    }
    s = (s + 1) & mask;
  }
}

/** Rows per lookup chunk: its table, key, meta and value lines fit comfortably in L2. */
export const CHUNK = 1024;
/** Keeps warm-up loads observable so the JIT cannot drop them. */
let sink = 0;

/** Entry `id` as a Scroll: a copy (safe to keep past later writes), or with `view` its bytes a view of the heap, valid until the next write. */
export function readScroll(v: StoreView, id: number, view = false): Scroll {
  const m = v.meta;
  const off = m[id * META + M_OFF];
  const so = m[id * META + M_SHAPE];
  const kdn = m[id * META + M_KDN];
  return {
    kind: (kdn & 0xff) as Kind,
    dtype: (kdn >>> 8) & 0xff,
    shape: Array.from(v.shapes.subarray(so, so + ((kdn >>> 16) & 0xff))),
    bytes: view ? v.heap.subarray(off, off + m[id * META + M_LEN]) : v.heap.slice(off, off + m[id * META + M_LEN]),
  };
}

/**
 * Gathers the scrolls for entry ids (-1 = missing → a kind 0 row) into one batch.
 * `coords`, when given, becomes the batch's coords column; with `fillCoords` the ids' keys are
 * copied into it in the same pass that reads their metadata (so the misses overlap).
 */
export function gatherEntries(
  v: StoreView, ids: Int32Array, n: number, coords?: Uint32Array, withValues = true, fillCoords = false,
): ScrollBatch {
  const { meta, heap, shapes, keys } = v;
  if (fillCoords && coords !== undefined && !withValues) {
    for (let i = 0; i < n; i++) {
      const k = ids[i] * DIMS;
      const o = i * DIMS;
      for (let d = 0; d < DIMS; d++) coords[o + d] = keys[k + d];
    }
  }
  const vo = new Int32Array(n + 1);
  const so = new Int32Array(n + 1);
  const ok = new Uint8Array(n);
  const od = new Uint8Array(n);
  // Value offsets, read with the rest of the metadata so the copy pass need not touch it again.
  const offs = new Uint32Array(withValues ? n : 0);
  if (withValues) {
    // Metadata first: a tight loop of independent loads, so the misses overlap.
    let vt = 0;
    let st = 0;
    const fill = fillCoords && coords !== undefined;
    for (let i = 0; i < n; i++) {
      const id = ids[i];
      if (id >= 0) {
        if (fill) {
          const k = id * DIMS;
          const o = i * DIMS;
          for (let d = 0; d < DIMS; d++) (coords as Uint32Array)[o + d] = keys[k + d];
        }
        const kdn = meta[id * META + M_KDN];
        ok[i] = kdn;
        od[i] = kdn >>> 8;
        vt += meta[id * META + M_LEN];
        offs[i] = meta[id * META + M_OFF];
        st += (kdn >>> 16) & 0xff;
      }
      vo[i + 1] = vt;
      so[i + 1] = st;
    }
  }
  const values = new Uint8Array(vo[n]);
  const sv = new Uint32Array(so[n]);
  const out: ScrollBatch = { n, coords, kind: ok, dtype: od, shapeOffsets: so, shapeValues: sv, valueOffsets: vo, values };
  if (!withValues) return out;
  const values32 = new Uint32Array(values.buffer, 0, values.length >>> 2);
  const heap32 = new Uint32Array(heap.buffer, heap.byteOffset, heap.length >>> 2);
  let acc = 0;
  for (let r0 = 0; r0 < n; r0 += CHUNK) {
    const r1 = Math.min(n, r0 + CHUNK);
    tick(r1 - r0);
    // Warm the chunk's value lines before the copy loop needs them.
    for (let i = r0; i < r1; i++) acc += heap[offs[i]];
    for (let i = r0; i < r1; i++) {
      const id = ids[i];
      if (id < 0) continue;
      const at = vo[i];
      copyValue(values, values32, at, heap, heap32, offs[i], vo[i + 1] - at);
      const p = so[i];
      const nd = so[i + 1] - p;
      if (nd !== 0) for (let j = 0, s = meta[id * META + M_SHAPE]; j < nd; j++) sv[p + j] = shapes[s + j];
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

/** Copies `len` bytes heap[from..) → out[at..), by 32-bit words when all three are aligned. */
function copyValue(out: Uint8Array, out32: Uint32Array, at: number, heap: Uint8Array, heap32: Uint32Array, from: number, len: number): void {
  if (((at | from | len) & 3) === 0 && len <= 256) {
    const a = at >>> 2;
    const f = from >>> 2;
    for (let j = 0, w = len >>> 2; j < w; j++) out32[a + j] = heap32[f + j];
  } else if (len <= 64) {
    for (let j = 0; j < len; j++) out[at + j] = heap[from + j];
  } else {
    out.set(heap.subarray(from, from + len), at);
  }
}

/**
 * Batched lookup of a flat coordinate column (no coords column in the result). One pass per
 * chunk resolves ids and reads their metadata (kind, dtype, lengths, value offset) while it
 * is cached; a second pass copies values, so each row touches its table slot, key, metadata
 * and value once.
 */
export function getBatchFromView(v: StoreView, coords: Uint32Array): LookupResult {
  const n = (coords.length / DIMS) | 0;
  const { table, keys, meta, heap, shapes } = v;
  const mask = (table.length >>> 1) - 1;
  const ids = new Int32Array(n);
  const offs = new Uint32Array(n);
  const vo = new Int32Array(n + 1);
  const so = new Int32Array(n + 1);
  const ok = new Uint8Array(n);
  const od = new Uint8Array(n);
  const slots = new Int32Array(Math.min(n, CHUNK));
  const hs = new Int32Array(Math.min(n, CHUNK));
  let found = 0;
  let acc = 0;
  let vt = 0;
  let st = 0;
  for (let r0 = 0; r0 < n; r0 += CHUNK) {
    const r1 = Math.min(n, r0 + CHUNK);
    const m = r1 - r0;
    for (let i = 0; i < m; i++) {
      const h = hashKey(coords, (r0 + i) * DIMS);
      hs[i] = h;
      slots[i] = h & mask;
    }
    // Home slots: independent loads, so their misses overlap.
    for (let i = 0; i < m; i++) acc ^= table[2 * slots[i]];
    // Walk each probe run (usually one cache line) to the first slot with the same hash.
    for (let i = 0; i < m; i++) {
      let s = slots[i];
      const h = hs[i];
      let id = table[2 * s];
      while (id !== EMPTY && (id < 0 || table[2 * s + 1] !== h)) {
        s = (s + 1) & mask;
        id = table[2 * s];
      }
      slots[i] = s;
      ids[r0 + i] = id;
    }
    // Candidate keys (both ends: a key may straddle two lines) and metadata.
    for (let i = 0; i < m; i++) {
      const id = ids[r0 + i];
      if (id >= 0) acc = (acc + keys[id * DIMS] + keys[id * DIMS + 8] + meta[id * META]) | 0;
    }
    for (let i = r0; i < r1; i++) {
      let id = ids[i];
      if (id < 0) continue;
      const base = i * DIMS;
      const k = id * DIMS;
      if (!(keys[k + 8] === coords[base + 8] && keys[k + 7] === coords[base + 7] && keys[k + 6] === coords[base + 6] &&
          keys[k + 5] === coords[base + 5] && keys[k + 4] === coords[base + 4] && keys[k + 3] === coords[base + 3] &&
          keys[k + 2] === coords[base + 2] && keys[k + 1] === coords[base + 1] && keys[k] === coords[base])) {
        // A 32-bit hash collision: keep probing.
        id = findFrom(table, keys, coords, base, (slots[i - r0] + 1) & mask, hs[i - r0]);
        ids[i] = id;
        if (id < 0) continue;
      }
      found++;
      const mb = id * META;
      const kdn = meta[mb + M_KDN];
      ok[i] = kdn;
      od[i] = kdn >>> 8;
      offs[i] = meta[mb + M_OFF];
      vo[i + 1] = meta[mb + M_LEN];
      so[i + 1] = (kdn >>> 16) & 0xff;
    }
    for (let i = r0; i < r1; i++) {
      vt += vo[i + 1];
      st += so[i + 1];
      vo[i + 1] = vt;
      so[i + 1] = st;
    }
  }
  const values = new Uint8Array(vt);
  const sv = new Uint32Array(st);
  const values32 = new Uint32Array(values.buffer, 0, vt >>> 2);
  const heap32 = new Uint32Array(heap.buffer, heap.byteOffset, heap.length >>> 2);
  for (let r0 = 0; r0 < n; r0 += CHUNK) {
    const r1 = Math.min(n, r0 + CHUNK);
    for (let i = r0; i < r1; i++) acc += heap[offs[i]];
    for (let i = r0; i < r1; i++) {
      const at = vo[i];
      const len = vo[i + 1] - at;
      if (len !== 0) copyValue(values, values32, at, heap, heap32, offs[i], len);
      const p = so[i];
      const nd = so[i + 1] - p;
      if (nd !== 0) for (let j = 0, s = meta[ids[i] * META + M_SHAPE]; j < nd; j++) sv[p + j] = shapes[s + j];
    }
  }
  sink ^= acc;
  const batch: ScrollBatch = { n, kind: ok, dtype: od, shapeOffsets: so, shapeValues: sv, valueOffsets: vo, values };
  return { batch, found };
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
