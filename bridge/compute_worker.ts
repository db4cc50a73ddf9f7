/**
 * Piscina worker for CATTEND: runs units [u0, u1) of the plain-JS forward or backward
 * kernel over SharedArrayBuffer-backed inputs and writes into shared outputs (units own
 * disjoint rows, so workers never write the same element) — or a whole forward pass on
 * ONNX Runtime, whose node binding runs synchronously and so must not run on the
 * sidecar's event loop.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { attendForward } from '../engine/kernels/attention';
import { attendForwardOrt } from '../engine/kernels/attention_ort';
import { attendBackward } from '../engine/kernels/attention_backward';
import type { AttnSpec } from '../engine/kernels/attention_spec';
import { frameRows, type FrameRow } from './tensor_frame';
import { spanBytes, spanFloats, type ArenaSpan } from './shm/span';

/** One slice of a CATTEND job. Every array is a view of a SharedArrayBuffer. */
export interface AttendTask {
  spec: AttnSpec;
  u0: number;
  u1: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** Position → k/v row for compacted KV-cache reads, else null. */
  keyRow: Int32Array | null;
  /** Forward outputs. */
  o?: Float32Array;
  lse?: Float32Array | null;
  /** Backward inputs and outputs. */
  grad?: { o: Float32Array; dO: Float32Array; lse: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array };
}

/**
 * A whole forward pass for ONNX Runtime. Inputs are views of one plain, transferred
 * ArrayBuffer, or spans of a client's shared-memory arena (bridge/shm/span.ts).
 */
export interface OrtTask {
  ort: true;
  spec: AttnSpec;
  q: Float32Array | ArenaSpan;
  k: Float32Array | ArenaSpan;
  v: Float32Array | ArenaSpan;
  wantLse: boolean;
  /** Where o (then lse) go: a reply frame laid out by tensor_frame.ts (transferred), a reply block in an arena, or new arrays. */
  out?: { buffer: ArrayBuffer; at: number; rows: FrameRow[] } | { span: ArenaSpan; rows: FrameRow[] };
}

/**
 * What an ORT task returns (buffers moved, not copied): the outputs (null when written
 * into an arena block) and the inputs' buffer for reuse (null when they were spans).
 */
export interface OrtResult {
  o: Float32Array | null;
  lse: Float32Array | null;
  inputs: ArrayBuffer | null;
}

/** Piscina entry point: units done (JS kernels) or the outputs (ORT). */
export default function attend(t: AttendTask | OrtTask): number | Promise<OrtResult> {
  if ('ort' in t) return runOrt(t);
  if (t.grad) {
    const g = t.grad;
    attendBackward(t.spec, { q: t.q, k: t.k, v: t.v, o: g.o, dO: g.dO, lse: g.lse }, { dq: g.dq, dk: g.dk, dv: g.dv }, t.u0, t.u1);
  } else {
    attendForward(t.spec, t.q, t.k, t.v, { o: t.o as Float32Array, lse: t.lse ?? null }, t.u0, t.u1, t.keyRow);
  }
  return t.u1 - t.u0;
}

const floats = (x: Float32Array | ArenaSpan): Float32Array => (x instanceof Float32Array ? x : spanFloats(x));

async function runOrt(t: OrtTask): Promise<OrtResult> {
  let views: Float32Array[] | undefined;
  if (t.out && 'span' in t.out) {
    const b = spanBytes(t.out.span);
    views = frameRows(b.buffer as ArrayBuffer, b.byteOffset, t.out.rows);
  } else if (t.out) {
    views = frameRows(t.out.buffer, t.out.at, t.out.rows);
  }
  const dest = views && { o: views[0], lse: views[1] ?? null };
  const r = await attendForwardOrt(t.spec, floats(t.q), floats(t.k), floats(t.v), t.wantLse, dest);
  // Never post a view of an arena back: the clone would copy the whole mapping.
  const inArena = t.out !== undefined && 'span' in t.out;
  const inputs = t.q instanceof Float32Array ? (t.q.buffer as ArrayBuffer) : null;
  const value: OrtResult = inArena ? { o: null, lse: null, inputs } : { ...r, inputs };
  const buffers = [value.o?.buffer, value.lse?.buffer, inputs].filter((b): b is ArrayBuffer => b instanceof ArrayBuffer);
  return move({ [transferableSymbol]: [...new Set(buffers)], [valueSymbol]: value }) as unknown as OrtResult;
}
