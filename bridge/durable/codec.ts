/**
 * Log record payloads: one per store write ({@link StoreWrite}), and back onto a store.
 * Byte 0 is the record type; single puts and deletes use a small fixed layout (a CPUT pays
 * microseconds, not an Arrow encoder), batches carry an Arrow scrolls stream (the wire's
 * body schema) or a flat coordinate column. Numbers are little-endian.
 */
import { DIMS, type Scroll } from '../../engine/types';
import { VtpuError } from '../../engine/errors';
import type { Store } from '../../engine/store/store';
import type { StoreWrite } from '../../engine/store/store_types';
import { decodeScrolls, encodeScrolls } from '../arrow';

/** Record types (byte 0 of a payload). */
export const enum RecType { Put = 1, PutBatch = 2, Delete = 3, DeleteBatch = 4, Clear = 5 }

const PUT_FIXED = 4 + DIMS * 4;

/** The payload of `w` as parts to write back to back (large values are not copied). */
export function encodeWrite(w: StoreWrite): Uint8Array[] {
  switch (w.op) {
    case 'put': {
      const s = w.scroll;
      const nd = s.shape.length;
      const head = Buffer.allocUnsafe(PUT_FIXED + nd * 4);
      head[0] = RecType.Put;
      head[1] = s.kind;
      head[2] = s.dtype;
      head[3] = nd;
      putCoords(head, 4, w.coords, w.row);
      for (let d = 0; d < nd; d++) head.writeUInt32LE(s.shape[d], PUT_FIXED + 4 * d);
      return [head, s.bytes];
    }
    case 'putBatch':
      return [Uint8Array.of(RecType.PutBatch), encodeScrolls(w.batch)];
    case 'delete': {
      const b = Buffer.allocUnsafe(4 + DIMS * 4);
      b[0] = RecType.Delete;
      b[1] = b[2] = b[3] = 0;
      putCoords(b, 4, w.coords, w.row);
      return [b];
    }
    case 'deleteBatch': {
      const c = w.coords;
      return [Uint8Array.of(RecType.DeleteBatch, 0, 0, 0), new Uint8Array(c.buffer, c.byteOffset, c.byteLength)];
    }
    case 'clear':
      return [Uint8Array.of(RecType.Clear)];
  }
}

/** Applies one payload to `store` (a payload is trusted only after its checksum matched). */
export function applyRecord(store: Store, payload: Uint8Array): void {
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  switch (b[0]) {
    case RecType.Put: {
      need(b, PUT_FIXED);
      const nd = b[3];
      need(b, PUT_FIXED + nd * 4);
      const shape: number[] = [];
      for (let d = 0; d < nd; d++) shape.push(b.readUInt32LE(PUT_FIXED + 4 * d));
      const scroll: Scroll = { kind: b[1], dtype: b[2], shape, bytes: b.subarray(PUT_FIXED + nd * 4) };
      store.put(readCoords(b, 4, 1), 0, scroll);
      return;
    }
    case RecType.PutBatch:
      store.putBatch(decodeScrolls(b.subarray(1)));
      return;
    case RecType.Delete:
      need(b, 4 + DIMS * 4);
      store.delete(readCoords(b, 4, 1), 0);
      return;
    case RecType.DeleteBatch: {
      const bytes = b.length - 4;
      if (bytes % (4 * DIMS) !== 0) throw bad(`delete batch of ${bytes} bytes`);
      store.deleteBatch(readCoords(b, 4, bytes / (4 * DIMS)));
      return;
    }
    case RecType.Clear:
      store.clear();
      return;
    default:
      throw bad(`unknown record type ${b[0]}`);
  }
}

function putCoords(out: Buffer, at: number, c: ArrayLike<number>, row: number): void {
  for (let d = 0; d < DIMS; d++) out.writeUInt32LE(c[row * DIMS + d], at + 4 * d);
}

/** `rows` coordinates from byte `at` (copied: payload views need not be 4-byte aligned). */
function readCoords(b: Buffer, at: number, rows: number): Uint32Array {
  const out = new Uint32Array(rows * DIMS);
  new Uint8Array(out.buffer).set(b.subarray(at, at + rows * DIMS * 4));
  return out;
}

function need(b: Buffer, n: number): void {
  if (b.length < n) throw bad(`record of ${b.length} bytes is shorter than its ${n}-byte layout`);
}

function bad(why: string): VtpuError {
  return new VtpuError('E_INTERNAL', `durable log: ${why}`);
}
