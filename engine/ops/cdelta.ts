/**
 * CDELTA: shift coordinates by signed per-component offsets (optionally fetching what lives
 * at the result). A shifted component outside 0..2^32-1 is E_COORD, and a batch fails whole.
 */
import type { Instruction } from '../instruction';
import { DIMS } from '../types';
import { VtpuError } from '../errors';
import { coordFromParam, formatCoord, MAX_COMPONENT } from '../coords';
import { isBatch, coordsBody, boolParam, scrollMeta, coordsOnlyBatch, batchBody } from './params';

/** Reads `offset`: 9 signed integers with |x| ≤ 2^32-1. */
export function offsetParam(v: unknown): Float64Array {
  if (!Array.isArray(v) || v.length !== DIMS) throw new VtpuError('E_PARAM', `CDELTA: offset must be ${DIMS} signed integers`);
  const out = new Float64Array(DIMS);
  for (let d = 0; d < DIMS; d++) {
    const x = v[d];
    if (typeof x !== 'number' || !Number.isInteger(x) || Math.abs(x) > MAX_COMPONENT) {
      throw new VtpuError('E_PARAM', `CDELTA: offset component ${d + 1} must be an integer within ±${MAX_COMPONENT}, got ${JSON.stringify(x)}`);
    }
    out[d] = x;
  }
  return out;
}

/** Shifted copy of a flat coordinate column; E_COORD names the first row that leaves the space. */
export function shiftCoords(coords: Uint32Array, offset: Float64Array): Uint32Array {
  const out = new Uint32Array(coords.length);
  for (let i = 0; i < coords.length; i++) {
    const x = coords[i] + offset[i % DIMS];
    if (x < 0 || x > MAX_COMPONENT) {
      const row = Math.floor(i / DIMS);
      throw new VtpuError('E_COORD', `CDELTA: row ${row} ${formatCoord(coords, row)} component ${(i % DIMS) + 1} shifted to ${x}, outside 0..${MAX_COMPONENT}`);
    }
    out[i] = x;
  }
  return out;
}

/** The CDELTA instruction. */
export const CDELTA: Instruction = {
  name: 'CDELTA',
  body: batchBody('coords'),
  run(engine, input) {
    const p = input.params;
    const offset = offsetParam(p.offset);
    const fetch = boolParam('CDELTA', p, 'fetch', false);
    if (isBatch('CDELTA', input)) {
      const shifted = shiftCoords(coordsBody('CDELTA', engine, input), offset);
      if (!fetch) return { result: { n: shifted.length / DIMS }, scrolls: coordsOnlyBatch(shifted) };
      const { batch, found } = engine.store.getBatch(shifted);
      batch.coords = shifted;
      return { result: { n: batch.n, found }, scrolls: batch };
    }
    const c = shiftCoords(coordFromParam(p.coord), offset);
    const coord = formatCoord(c);
    if (!fetch) return { result: { coord } };
    const s = engine.store.get(c);
    return s === undefined ? { result: { coord, found: false } } : { result: { coord, ...scrollMeta(s) }, raw: s.bytes };
  },
};
