/**
 * Piscina worker for CATTEND: runs units [u0, u1) of the plain-JS forward or backward
 * kernel over SharedArrayBuffer-backed inputs and writes into shared outputs (units own
 * disjoint rows, so workers never write the same element).
 */
import { attendForward } from '../engine/kernels/attention';
import { attendBackward } from '../engine/kernels/attention_backward';
import type { AttnSpec } from '../engine/kernels/attention_spec';

/** One slice of a CATTEND job. Every array is a view of a SharedArrayBuffer. */
export interface AttendTask {
  spec: AttnSpec;
  u0: number;
  u1: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** Forward outputs. */
  o?: Float32Array;
  lse?: Float32Array | null;
  /** Backward inputs and outputs. */
  grad?: { o: Float32Array; dO: Float32Array; lse: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array };
}

/** Piscina entry point; returns the number of units done. */
export default function attend(t: AttendTask): number {
  if (t.grad) {
    const g = t.grad;
    attendBackward(t.spec, { q: t.q, k: t.k, v: t.v, o: g.o, dO: g.dO, lse: g.lse }, { dq: g.dq, dk: g.dk, dv: g.dv }, t.u0, t.u1);
  } else {
    attendForward(t.spec, t.q, t.k, t.v, { o: t.o as Float32Array, lse: t.lse ?? null }, t.u0, t.u1);
  }
  return t.u1 - t.u0;
}
