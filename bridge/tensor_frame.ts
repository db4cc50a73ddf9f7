/**
 * Reply frames laid out before their tensors are computed. A big CATTEND reply used to be
 * written twice: by the kernel into its own output, then by the Arrow writer into the
 * frame. Here the Arrow "scrolls" stream is laid out first and the kernel gets float32
 * views of the frame where the rows' bytes go, so it writes its outputs straight into the
 * reply. Each fresh large buffer costs page faults on first touch (on a VM, several ms per
 * MB), so one buffer instead of two is the saving, beside the copy itself.
 */
import { RecordBatchStreamWriter } from 'apache-arrow';
import { tensorBatch } from '../engine/tensors';
import { scrollsTable } from './arrow';
import { packOffsets, type LayoutEntry } from './tensor_layout';

/** Room for everything in the stream but the rows' bytes (schema, batch header, small columns, EOS). */
const METADATA_ROOM = 64 * 1024;

/** A laid-out reply: `frame` once the views are filled; `buffer` holds both (it may be transferred). */
export interface TensorFrame {
  buffer: ArrayBuffer;
  /** Byte offset of the first row's bytes in `buffer` (a multiple of 8). */
  valuesAt: number;
  /** Length of the reply body, from offset 0 of `buffer`. */
  length: number;
  /** The raw form's `result.layout` (tensor_layout.ts); absent for an Arrow stream. */
  layout?: LayoutEntry[];
}

/** One float32 tensor row of the reply. */
export interface FrameRow {
  shape: number[];
}

/** Elements of a shape. */
function elements(shape: number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/**
 * Lays out the Arrow stream of float32 tensor rows (in order, back to back) and returns
 * the buffer to write them into, or null when the layout is not the expected one (the
 * caller then builds the reply the ordinary way).
 */
export async function layOutTensorFrame(rows: FrameRow[]): Promise<TensorFrame | null> {
  const total = rows.reduce((a, r) => a + elements(r.shape) * 4, 0);
  if (rows.length === 0 || total === 0) return null;
  // Untouched until written: a large ArrayBuffer is mapped lazily.
  const buffer = new ArrayBuffer(total + METADATA_ROOM);
  let at = 0;
  const placeholders = rows.map((r) => {
    const n = elements(r.shape);
    const view = new Float32Array(buffer, at, n);
    at += n * 4;
    return { shape: r.shape, data: view };
  });
  const writer = RecordBatchStreamWriter.writeAll(scrollsTable(tensorBatch(placeholders)));
  const chunks: { pos: number; bytes: Uint8Array }[] = [];
  let valuesAt = -1;
  let pos = 0;
  for await (const chunk of writer) {
    // The rows' bytes arrive as one chunk: the placeholders' span, never read here.
    if (chunk.buffer === buffer && chunk.byteOffset === 0 && chunk.byteLength === total && valuesAt < 0) valuesAt = pos;
    else chunks.push({ pos, bytes: chunk });
    pos += chunk.byteLength;
  }
  if (valuesAt < 0 || valuesAt % 8 !== 0 || pos > buffer.byteLength) return null;
  const frame = new Uint8Array(buffer, 0, pos);
  for (const c of chunks) frame.set(c.bytes, c.pos);
  return { buffer, valuesAt, length: pos };
}

/** The raw form's reply laid out (float32 rows back to back from offset 0): no Arrow metadata to place. */
export function layOutRaw(rows: FrameRow[]): TensorFrame | null {
  const sizes = rows.map((r) => elements(r.shape) * 4);
  const { offsets, total } = packOffsets(sizes, sizes.map(() => 4));
  if (rows.length === 0 || total === 0) return null;
  return { buffer: new ArrayBuffer(total), valuesAt: 0, length: total, layout: rows.map((r, i) => ['float32', r.shape, offsets[i]]) };
}

/** Float32 views of the rows of a laid-out frame, in order (the kernel's thread builds them on the transferred `buffer`). */
export function frameRows(buffer: ArrayBuffer, valuesAt: number, rows: FrameRow[]): Float32Array[] {
  let at = valuesAt;
  return rows.map((r) => {
    const n = elements(r.shape);
    const view = new Float32Array(buffer, at, n);
    at += n * 4;
    return view;
  });
}
