/** Helpers shared by the engine suites. */
import { VtpuError } from '../../../engine/errors';
import { Kind, ScrollBatch } from '../../../engine/types';

/** The error code a call throws (fails the test when it does not throw a VtpuError). */
export function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof VtpuError) return e.code;
    throw e;
  }
  throw new Error('expected a VtpuError');
}

export const enc = new TextEncoder();
export const dec = new TextDecoder();

/** Flat coordinates from rows of 9 components. */
export function coordsOf(rows: number[][]): Uint32Array {
  const out = new Uint32Array(rows.length * 9);
  rows.forEach((r, i) => out.set(r, i * 9));
  return out;
}

/** A batch of text or bytes scrolls: row i at rows[i] holding the UTF-8 of vals[i]. */
export function stringBatch(rows: number[][], vals: string[], kind: Kind.Text | Kind.Bytes): ScrollBatch {
  const n = rows.length;
  const bytes = vals.map((v) => enc.encode(v));
  const valueOffsets = new Int32Array(n + 1);
  bytes.forEach((b, i) => (valueOffsets[i + 1] = valueOffsets[i] + b.length));
  const values = new Uint8Array(valueOffsets[n]);
  bytes.forEach((b, i) => values.set(b, valueOffsets[i]));
  return {
    n, coords: coordsOf(rows), kind: new Uint8Array(n).fill(kind), dtype: new Uint8Array(n),
    shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(0), valueOffsets, values,
  };
}

/** Deterministic pseudo-random floats in [-1, 1) (an LCG: the same seed, the same data). */
export function seededFloats(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}
