/**
 * Piscina worker for batched reads: looks up one chunk of coordinates in a posted store
 * view (SharedArrayBuffer-backed, so nothing is copied in) and moves the result buffers
 * back (transferred, so nothing is copied out). Loads only the store reader, no Node
 * sockets or engine state.
 */
import { threadId } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { getBatchFromView, type StoreView } from '../engine/store/reader';
import type { ScrollBatch } from '../engine/types';

/** One chunk of a batched CGET. `coords` is a view into a SharedArrayBuffer. */
export interface ReadTask {
  view: StoreView;
  coords: Uint32Array;
}

/** A chunk's rows, aligned with its coords, how many were found, and who spent how long. */
export interface ReadResult {
  batch: ScrollBatch;
  found: number;
  /** The worker's thread id and the ms it spent on this chunk (pool utilisation metrics). */
  thread: number;
  busyMs: number;
}

/** Piscina entry point. */
export default function read(task: ReadTask): ReadResult {
  const t0 = performance.now();
  const { batch, found } = getBatchFromView(task.view, task.coords);
  // Unique, non-shared buffers only: a transfer list rejects duplicates and SABs.
  const buffers = [...new Set([batch.kind, batch.dtype, batch.shapeOffsets, batch.shapeValues, batch.valueOffsets, batch.values]
    .map((a) => a.buffer))].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
  const result: ReadResult = { batch, found, thread: threadId, busyMs: performance.now() - t0 };
  return move({ [transferableSymbol]: buffers, [valueSymbol]: result }) as unknown as ReadResult;
}
