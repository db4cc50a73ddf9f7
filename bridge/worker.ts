/**
 * Piscina worker for batched reads: looks up one chunk of coordinates in a posted store
 * view (SharedArrayBuffer-backed, so nothing is copied in) and moves the result buffers
 * back (transferred, so nothing is copied out). Loads only the store reader and the
 * nearest-neighbour search, no Node sockets or engine state. `nearest` answers a slice of a
 * batched CNEAREST from a posted plan (its k-d tree is shared memory too).
 */
import { threadId } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { getBatchFromView, type StoreView } from '../engine/store/reader';
import type { ScrollBatch } from '../engine/types';
import { newAnswer, searchCoords, type CoordAnswer, type CoordPlan } from '../engine/index/nearest';

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

/** One slice of a batched CNEAREST: the main thread's plan and a view of the (permuted) queries. */
export interface NearestTask {
  plan: CoordPlan;
  q: Uint32Array;
}

/** Piscina entry point `nearest`: the slice's answers, buffers moved back. */
export function nearest(task: NearestTask): CoordAnswer {
  const ans = newAnswer(task.q.length / 9, task.plan.k);
  searchCoords(task.plan, task.q, ans);
  return move({ [transferableSymbol]: [ans.coords.buffer, ans.hi.buffer, ans.lo.buffer], [valueSymbol]: ans }) as unknown as CoordAnswer;
}
