/** PHEXT_IMPORT: a raw phext file in, its non-empty scrolls stored as text, all or nothing. */
import type { EngineContext, Instruction } from '../instruction';
import { VtpuError } from '../errors';
import { explodeSlices, slicesToBatch } from '../phext';
import type { OpInput, OpOutput } from '../types';
import { always } from './params';

/**
 * Explodes `input.raw` (libphext semantics) and writes every scroll with one `putBatch`, so a
 * bad file (a scroll past 999, invalid UTF-8) or a batch over the limit writes nothing.
 * Result `{written}`: scrolls stored (empty scrolls are not scrolls). Existing scrolls at the
 * same coordinates are overwritten; others are left alone.
 */
export const PHEXT_IMPORT: Instruction = {
  name: 'PHEXT_IMPORT',
  body: () => 'raw',
  writes: always,
  run(engine: EngineContext, input: OpInput): OpOutput {
    if (!(input.raw instanceof Uint8Array)) {
      throw new VtpuError('E_PARAM', 'PHEXT_IMPORT needs one raw body: the phext file bytes');
    }
    const slices = explodeSlices(input.raw);
    if (slices.length === 0) return { result: { written: 0 } };
    engine.store.checkBatch(slices.length); // before packing a copy of a too-large file
    const written = engine.store.putBatch(slicesToBatch(slices));
    return { result: { written } };
  },
};
