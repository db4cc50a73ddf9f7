/**
 * Parameter and body readers shared by the instructions, so every op reports bad input the
 * same way (E_PARAM naming the op and the parameter).
 */
import { BodyKind, DIMS, OpInput, Scroll, ScrollBatch } from '../types';
import { VtpuError } from '../errors';
import { validateCoordsArray } from '../coords';
import { kindName, dtypeName } from '../values';
import type { EngineContext } from '../instruction';

/** True when the op is called in batch form (`params.batch === true`). */
export function isBatch(op: string, input: OpInput): boolean {
  const b = input.params.batch;
  if (b !== undefined && typeof b !== 'boolean') throw new VtpuError('E_PARAM', `${op}: batch must be a boolean`);
  return b === true;
}

/** A boolean param with a default. */
export function boolParam(op: string, params: Record<string, unknown>, name: string, dflt: boolean): boolean {
  const v = params[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new VtpuError('E_PARAM', `${op}: ${name} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** An integer param in [min, max] with a default. */
export function intParam(op: string, params: Record<string, unknown>, name: string, dflt: number, min: number, max: number): number {
  const v = params[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new VtpuError('E_PARAM', `${op}: ${name} must be an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The batch coords body: `input.coords`, or the coords column of an `input.scrolls` body. */
export function coordsBody(op: string, engine: EngineContext, input: OpInput): Uint32Array {
  const c = input.coords ?? input.scrolls?.coords;
  if (c === undefined) throw new VtpuError('E_PARAM', `${op}: batch form needs a coords body`);
  engine.store.checkBatch(validateCoordsArray(c));
  return c;
}

/** The batch scrolls body (with coords). */
export function scrollsBody(op: string, input: OpInput): ScrollBatch {
  if (input.scrolls === undefined) throw new VtpuError('E_PARAM', `${op}: batch form needs a scrolls body`);
  return input.scrolls;
}

/** Result fields describing one found scroll: kind, dtype and shape names as on the wire. */
export function scrollMeta(s: Scroll): Record<string, unknown> {
  return { found: true, kind: kindName(s.kind), dtype: dtypeName(s.dtype), shape: s.shape };
}

/** A scrolls batch of `n` coordinate-only rows (kind 0, no values): "coords only" bodies. */
export function coordsOnlyBatch(coords: Uint32Array): ScrollBatch {
  const n = coords.length / DIMS;
  return {
    n, coords,
    kind: new Uint8Array(n), dtype: new Uint8Array(n),
    shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(0),
    valueOffsets: new Int32Array(n + 1), values: new Uint8Array(0),
  };
}

/** `body` of ops with a single and a batch form: the batch takes `kind`, the single form none. */
export function batchBody(kind: 'coords' | 'scrolls'): (p: Record<string, unknown>) => BodyKind {
  return (p) => (p.batch === true ? kind : 'none');
}

/** `body` of compute ops: named tensors (raw layout or Arrow scrolls), else a coords batch. */
export function tensorsBody(p: Record<string, unknown>): BodyKind {
  if (p.tensors !== undefined) return p.layout !== undefined ? 'layout' : 'scrolls';
  return p.batch === true ? 'coords' : 'none';
}

/** `writes` of ops that always write. */
export function always(): boolean {
  return true;
}
