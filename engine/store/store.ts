/**
 * The coordinate store: an open-addressing hash table over flat, SharedArrayBuffer-backed
 * entry columns and a value heap (layout in ./reader's StoreView), plus the range index.
 * Writes happen only on the main thread; readers (here or in workers) use ./reader.
 */
import { DIMS, Scroll, ScrollBatch } from '../types';
import type { StoreOptions, StoreStats, StoreWrite } from './store_types';
import { VtpuError } from '../errors';
import { validateScroll, validateBatch } from '../values';
import { validateCoordsArray } from '../coords';
import { Pattern } from '../pattern';
import { hashKey } from './hash';
import { allocated, emptyView, probe, rehashed } from './view';
import {
  TOMBSTONE, CHUNK, META, M_OFF, M_LEN, M_KDN, M_SHAPE, StoreView, LookupResult, findEntry, readScroll,
  getBatchFromView, gatherEntries,
} from './reader';
import { growShared } from './shared';
import { RangeIndex, PrefixCount } from './rangeindex';
import { compactView } from './compact';

const MAX_HEAP = 0xffffffff;
/** Keeps warm-up loads observable so the JIT cannot drop them. */
let touched = 0;

/** The coordinate-addressed store. */
export class Store {
  /** Most rows per batch. */
  readonly maxBatch: number;
  /** Largest value in bytes. */
  readonly maxValueBytes: number;
  private readonly compactMin: number;
  private v: StoreView = emptyView();
  private live = 0;
  private tombstones = 0;
  private heapUsed = 0;
  private shapesUsed = 0;
  private garbage = 0;
  private writes = 0;
  private renumbers = 0;
  private readonly deleteHooks: Array<(id: number) => void> = [];
  private readonly writeHooks: Array<(w: StoreWrite) => void> = [];
  private readonly index = new RangeIndex();
  /**
   * Called with the rows `first .. first+count` of `coords` a put (`del` false) or delete is
   * about to change, before anything changes; throwing refuses the whole write (ownership
   * and write clocks for sync, engine/sync/state.ts).
   */
  writeGuard: ((coords: ArrayLike<number>, first: number, count: number, del: boolean) => void) | undefined = undefined;

  /** Creates an empty store with the given limits. */
  constructor(opts: StoreOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 16777216;
    this.maxValueBytes = opts.maxValueBytes ?? 256 * 1024 * 1024;
    this.compactMin = opts.compactMinBytes ?? 1 << 20;
  }

  /** Live entries. */
  get size(): number {
    return this.live;
  }

  /**
   * Bumped by every write that may change which coordinates are stored (put, delete, clear),
   * so derived caches (the CKG adjacency) know when to catch up. Compaction keeps it.
   */
  get version(): number {
    return this.writes;
  }

  /**
   * Bumped whenever entry ids are renumbered or dropped (compact, clear). Between two bumps
   * ids only grow: entries appended after a point have ids ≥ the view's count at that point,
   * and a deleted entry's kind byte is 0. Derived indexes keyed by entry id (the CKG
   * adjacency, the nearest-neighbour tree) rebuild when it changes.
   */
  get generation(): number {
    return this.renumbers;
  }

  /**
   * Calls `fn(id)` with the entry id of every deleted entry (not on clear or compaction,
   * which bump {@link generation}). Its key stays readable in {@link view} until then.
   */
  onDelete(fn: (id: number) => void): void {
    this.deleteHooks.push(fn);
  }

  /**
   * Calls `fn` with every write before it is applied (checks done); a throw from `fn`
   * aborts the write with the store unchanged. Deletes of absent keys are not reported.
   */
  onWrite(fn: (w: StoreWrite) => void): void {
    this.writeHooks.push(fn);
  }

  private emit(w: StoreWrite): void {
    for (const f of this.writeHooks) f(w);
  }

  /** Throws E_LIMIT when a batch of `n` rows is over maxBatch. */
  checkBatch(n: number): void {
    if (n > this.maxBatch) throw new VtpuError('E_LIMIT', `batch of ${n} rows over the limit of ${this.maxBatch}`);
  }

  /** A structured-cloneable snapshot for worker threads; valid until the next write. */
  view(): StoreView {
    return { ...this.v };
  }

  /** Writes one scroll at row `i` of `coords` (validated first; overwrites). */
  put(coords: Uint32Array, i: number, s: Scroll): void {
    if (!Number.isInteger(i) || i < 0 || (i + 1) * DIMS > coords.length) throw new VtpuError('E_SHAPE', `coords row ${i} out of range`);
    if (s === null || typeof s !== 'object' || !(s.bytes instanceof Uint8Array) || !Array.isArray(s.shape)) {
      throw new VtpuError('E_PARAM', 'scroll must have kind, dtype, shape[] and bytes (Uint8Array)');
    }
    validateScroll(s.kind, s.dtype, s.shape, s.bytes.length);
    this.checkValue(s.bytes.length, -1);
    this.writeGuard?.(coords, i, 1, false);
    const shape = Uint32Array.from(s.shape);
    // What writeRow puts in place (a value or shape no longer than the old one) needs no room.
    const old = findEntry(this.v, coords, i), m = old * META, meta = this.v.meta;
    const inPlace = old >= 0 && meta[m + M_LEN] >= s.bytes.length, shapeInPlace = old >= 0 && ((meta[m + M_KDN] >>> 16) & 0xff) >= shape.length;
    this.reserve(old >= 0 ? 0 : 1, inPlace ? 0 : s.bytes.length, shapeInPlace ? 0 : shape.length);
    if (this.writeHooks.length) this.emit({ op: 'put', coords, row: i, scroll: s });
    this.writes++;
    const h = hashKey(coords, i * DIMS);
    this.writeRow(coords, i, probe(this.v, coords, i, h), h, s.kind, s.dtype, shape, 0, shape.length, s.bytes, 0, s.bytes.length);
    this.maybeCompact();
  }

  /** Writes a batch atomically: every row is validated (and space reserved) before any write. */
  putBatch(b: ScrollBatch): number {
    validateBatch(b, true);
    this.checkBatch(b.n);
    const vo = b.valueOffsets;
    for (let i = 0; i < b.n; i++) this.checkValue(vo[i + 1] - vo[i], i);
    this.writeGuard?.(b.coords as Uint32Array, 0, b.n, false);
    this.reserve(b.n, vo[b.n], b.shapeOffsets[b.n]);
    if (this.writeHooks.length) this.emit({ op: 'putBatch', batch: b });
    this.writes++;
    const coords = b.coords as Uint32Array;
    const { kind, dtype, shapeOffsets: so, shapeValues: sv, values } = b;
    const n = b.n;
    const hs = new Int32Array(Math.min(n, CHUNK));
    // Table size is fixed for the whole batch (reserved above), so home slots stay valid.
    for (let r0 = 0; r0 < n; r0 += CHUNK) {
      const r1 = Math.min(n, r0 + CHUNK);
      const m = r1 - r0;
      const table = this.v.table;
      const mask = (table.length >>> 1) - 1;
      for (let i = 0; i < m; i++) hs[i] = hashKey(coords, (r0 + i) * DIMS);
      // Touch the home slots first so their misses overlap.
      let acc = 0;
      for (let i = 0; i < m; i++) acc |= table[2 * (hs[i] & mask)];
      touched ^= acc;
      for (let i = r0; i < r1; i++) {
        const h = hs[i - r0];
        const slot = probe(this.v, coords, i, h);
        this.writeRow(coords, i, slot, h, kind[i], dtype[i], sv, so[i], so[i + 1] - so[i], values, vo[i], vo[i + 1] - vo[i]);
      }
    }
    this.maybeCompact();
    return b.n;
  }

  /** One scroll (a copy), or undefined when absent. */
  get(coords: ArrayLike<number>, i = 0): Scroll | undefined {
    const id = findEntry(this.v, coords, i);
    return id < 0 ? undefined : readScroll(this.v, id);
  }

  /**
   * One scroll whose bytes are a view of the store's heap, valid until the next write
   * (a big value is not copied into fresh memory only to be copied again), or undefined.
   */
  peek(coords: ArrayLike<number>, i = 0): Scroll | undefined {
    const id = findEntry(this.v, coords, i);
    return id < 0 ? undefined : readScroll(this.v, id, true);
  }

  /** Batched lookup: rows align with `coords`; missing rows have kind 0. */
  getBatch(coords: Uint32Array): LookupResult {
    this.checkBatch(validateCoordsArray(coords));
    return getBatchFromView(this.v, coords);
  }

  /** Deletes row `i` of `coords`; true when it existed. */
  delete(coords: ArrayLike<number>, i = 0): boolean {
    this.writeGuard?.(coords, i, 1, true);
    if (this.writeHooks.length && findEntry(this.v, coords, i) >= 0) this.emit({ op: 'delete', coords, row: i });
    const hit = this.removeRow(coords, i);
    if (hit) {
      this.writes++;
      this.maybeCompact();
    }
    return hit;
  }

  /** Deletes every row of a flat coordinate column; returns how many existed. */
  deleteBatch(coords: Uint32Array): number {
    const n = validateCoordsArray(coords);
    this.checkBatch(n);
    this.writeGuard?.(coords, 0, n, true);
    if (this.writeHooks.length && n > 0) this.emit({ op: 'deleteBatch', coords });
    let deleted = 0;
    for (let i = 0; i < n; i++) if (this.removeRow(coords, i)) deleted++;
    if (deleted > 0) {
      this.writes++;
      this.maybeCompact();
    }
    return deleted;
  }

  /** Entries matching `p` in coordinate order, at most `limit`; values omitted when `values` is false. */
  range(p: Pattern, limit: number, values = true): { batch: ScrollBatch; truncated: boolean } {
    const q = this.index.query(this.v, p, limit);
    const n = q.ids.length;
    const coords = new Uint32Array(n * DIMS);
    return { batch: gatherEntries(this.v, q.ids, n, coords, values, true), truncated: q.truncated };
  }

  /** Live entries whose first `level` components equal prefix's. */
  countPrefix(prefix: ArrayLike<number>, level: number): number {
    return level === 0 ? this.live : this.index.countPrefix(this.v, prefix, level);
  }

  /** Existing distinct prefixes of length childLevel under prefix[0..level), with counts. */
  children(prefix: ArrayLike<number>, level: number, childLevel: number): PrefixCount[] {
    return this.index.children(this.v, prefix, level, childLevel);
  }

  /** Sizes and counters. */
  stats(): StoreStats {
    return {
      entries: this.live,
      heapBytes: this.heapUsed,
      garbageBytes: this.garbage,
      indexBytes: this.v.table.byteLength + this.index.bytes(),
      allocatedBytes: allocated(this.v) + this.index.bytes(),
      rangeIndexHits: this.index.rangeIndexHits,
      rangeScans: this.index.rangeScans,
    };
  }

  /** Removes everything (counters kept). */
  clear(): void {
    if (this.writeHooks.length) this.emit({ op: 'clear' });
    this.v = emptyView();
    this.writes++;
    this.renumbers++;
    this.live = this.tombstones = this.heapUsed = this.shapesUsed = this.garbage = 0;
    this.index.reset();
  }

  /** Rewrites entries and heap without dead space; the range index is renumbered, not rebuilt. */
  compact(): void {
    const { view, oldToNew, heapUsed, shapesUsed } = compactView(this.v, this.live);
    this.v = view;
    this.renumbers++;
    this.heapUsed = heapUsed;
    this.shapesUsed = shapesUsed;
    this.garbage = 0;
    this.tombstones = 0;
    this.index.remap(oldToNew, view.count);
  }

  private checkValue(len: number, row: number): void {
    if (len > this.maxValueBytes) {
      throw new VtpuError('E_LIMIT', `${row >= 0 ? `row ${row}: ` : ''}value of ${len} bytes over the limit of ${this.maxValueBytes}`);
    }
  }

  /** Grows every column so `rows` more entries, `bytes` and `dims` fit without allocating mid-write. */
  private reserve(rows: number, bytes: number, dims: number): void {
    if (this.heapUsed + bytes > MAX_HEAP) throw new VtpuError('E_LIMIT', `store heap would exceed ${MAX_HEAP} bytes`);
    const v = this.v;
    const need = v.count + rows;
    const used = v.count;
    v.keys = growShared(Uint32Array, v.keys, need * DIMS, used * DIMS);
    v.kind = growShared(Uint8Array, v.kind, need, used);
    v.meta = growShared(Uint32Array, v.meta, need * META, used * META);
    v.heap = growShared(Uint8Array, v.heap, Math.min(MAX_HEAP, this.heapUsed + bytes), this.heapUsed);
    v.shapes = growShared(Uint32Array, v.shapes, this.shapesUsed + dims, this.shapesUsed);
    // Load ≤ 0.5 counting tombstones, so probes always end at an EMPTY slot.
    if ((this.live + this.tombstones + rows) * 2 > v.table.length >>> 1) {
      v.table = rehashed(v.table, this.live + rows);
      this.tombstones = 0;
    }
  }

  private writeRow(
    c: Uint32Array, i: number, slot: number, h: number, kind: number, dtype: number,
    sv: Uint32Array, s0: number, nd: number, values: Uint8Array, v0: number, len: number,
  ): void {
    const v = this.v;
    const meta = v.meta;
    let id: number;
    let m: number;
    if (slot >= 0) {
      id = v.table[2 * slot];
      m = id * META;
      const oldLen = meta[m + M_LEN];
      if (len <= oldLen) this.garbage += oldLen - len;
      else {
        this.garbage += oldLen;
        meta[m + M_OFF] = this.heapUsed;
        this.heapUsed += len;
      }
      if (nd > ((meta[m + M_KDN] >>> 16) & 0xff)) {
        meta[m + M_SHAPE] = this.shapesUsed;
        this.shapesUsed += nd;
      }
    } else {
      id = v.count++;
      m = id * META;
      const free = -slot - 1;
      if (v.table[2 * free] === TOMBSTONE) this.tombstones--;
      v.table[2 * free] = id;
      v.table[2 * free + 1] = h;
      const keys = v.keys;
      const k = id * DIMS;
      const b = i * DIMS;
      for (let d = 0; d < DIMS; d++) keys[k + d] = c[b + d];
      meta[m + M_OFF] = this.heapUsed;
      this.heapUsed += len;
      meta[m + M_SHAPE] = this.shapesUsed;
      this.shapesUsed += nd;
      this.live++;
    }
    v.kind[id] = kind;
    meta[m + M_KDN] = kind | (dtype << 8) | (nd << 16);
    meta[m + M_LEN] = len;
    const off = meta[m + M_OFF];
    const heap = v.heap;
    if (len <= 64) for (let j = 0; j < len; j++) heap[off + j] = values[v0 + j];
    else heap.set(values.subarray(v0, v0 + len), off);
    if (nd !== 0) {
      const shapes = v.shapes;
      for (let j = 0, so = meta[m + M_SHAPE]; j < nd; j++) shapes[so + j] = sv[s0 + j];
    }
  }

  private removeRow(c: ArrayLike<number>, i: number): boolean {
    const slot = probe(this.v, c, i, hashKey(c, i * DIMS));
    if (slot < 0) return false;
    const v = this.v;
    const id = v.table[2 * slot];
    v.table[2 * slot] = TOMBSTONE;
    this.tombstones++;
    this.live--;
    this.garbage += v.meta[id * META + M_LEN];
    v.kind[id] = 0;
    v.meta[id * META + M_KDN] = 0;
    v.meta[id * META + M_LEN] = 0;
    this.index.noteDelete(id);
    for (const f of this.deleteHooks) f(id);
    return true;
  }

  private maybeCompact(): void {
    const dead = this.v.count - this.live;
    const heapWaste = this.garbage > this.compactMin && this.garbage * 2 > this.heapUsed;
    const entryWaste = dead * 64 > this.compactMin && dead * 2 > this.v.count;
    if (heapWaste || entryWaste) this.compact();
  }
}
