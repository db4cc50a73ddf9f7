/**
 * CRANGE: scrolls matching a pattern, in coordinate order, at most `limit` (default and
 * maximum: the batch limit). `values: false` returns coords only (kind 0 rows, no values).
 */
import type { Instruction } from '../instruction';
import { VtpuError } from '../errors';
import { parsePattern } from '../pattern';
import { boolParam, intParam } from './params';

/** The CRANGE instruction. */
export const CRANGE: Instruction = {
  name: 'CRANGE',
  run(engine, input) {
    const p = input.params;
    if (typeof p.pattern !== 'string') throw new VtpuError('E_PARAM', `CRANGE: pattern must be a string, got ${JSON.stringify(p.pattern)}`);
    const pattern = parsePattern(p.pattern);
    const max = engine.maxBatch;
    if (typeof p.limit === 'number' && Number.isInteger(p.limit) && p.limit > max) {
      throw new VtpuError('E_LIMIT', `CRANGE: limit ${p.limit} over the batch limit ${max}`);
    }
    const limit = intParam('CRANGE', p, 'limit', max, 0, max);
    const values = boolParam('CRANGE', p, 'values', true);
    const { batch, truncated } = engine.store.range(pattern, limit, values);
    return { result: { n: batch.n, truncated }, scrolls: batch };
  },
};
