/**
 * The store's public types: its limits, the write notices its observers get (the durable log
 * appends them), and the counters of its stats.
 */
import type { Scroll, ScrollBatch } from '../types';

/** Store limits; both are E_LIMIT when exceeded. */
export interface StoreOptions {
  /** Most rows in one batch (default 16,777,216 as in protocol.json). */
  maxBatch?: number;
  /** Largest single value in bytes (default 256 MiB). */
  maxValueBytes?: number;
  /** Garbage below this many bytes never triggers compaction (default 1 MiB). */
  compactMinBytes?: number;
}

/**
 * A write about to be applied, reported to {@link Store.onWrite} observers after every check
 * passed and before the store changes (a durable log appends it there). Arrays are the
 * caller's: copy what must outlive the call.
 */
export type StoreWrite =
  | { op: 'put'; coords: Uint32Array; row: number; scroll: Scroll }
  | { op: 'putBatch'; batch: ScrollBatch }
  | { op: 'delete'; coords: ArrayLike<number>; row: number }
  | { op: 'deleteBatch'; coords: Uint32Array }
  | { op: 'clear' };

/** Counters reported by {@link Store.stats}. */
export interface StoreStats {
  entries: number;
  heapBytes: number;
  garbageBytes: number;
  /** Hash table plus built range orderings. */
  indexBytes: number;
  /** Every array the store holds, allocated capacity included (keys, metadata, heap, index). */
  allocatedBytes: number;
  rangeIndexHits: number;
  rangeScans: number;
}
