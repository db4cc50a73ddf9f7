/** CPUT: write one scroll (params + raw body) or a batch (scrolls body with coords; atomic). */
import type { Instruction } from '../instruction';
import { Kind } from '../types';
import { VtpuError } from '../errors';
import { coordFromParam } from '../coords';
import { kindCode, dtypeCode } from '../values';
import { isBatch, scrollsBody, always } from './params';

/** The CPUT instruction. `kind` defaults to bytes; tensors need dtype and shape. */
export const CPUT: Instruction = {
  name: 'CPUT',
  body: (p) => (p.batch === true ? 'scrolls' : 'raw'),
  writes: always,
  run(engine, input) {
    if (isBatch('CPUT', input)) return { result: { written: engine.store.putBatch(scrollsBody('CPUT', input)) } };
    const p = input.params;
    const coord = coordFromParam(p.coord);
    if (!(input.raw instanceof Uint8Array)) throw new VtpuError('E_PARAM', 'CPUT: single form needs a raw value body');
    const kind = kindCode(p.kind ?? 'bytes');
    if (kind !== Kind.Tensor && (p.dtype !== undefined && p.dtype !== 'none')) {
      throw new VtpuError('E_DTYPE', `CPUT: dtype ${JSON.stringify(p.dtype)} given for a ${p.kind ?? 'bytes'} scroll`);
    }
    const dtype = kind === Kind.Tensor ? dtypeCode(p.dtype) : 0;
    const shape = p.shape ?? (kind === Kind.Tensor ? undefined : []);
    if (!Array.isArray(shape)) throw new VtpuError('E_SHAPE', `CPUT: shape must be a list of ints, got ${JSON.stringify(shape)}`);
    engine.store.put(coord, 0, { kind, dtype, shape, bytes: input.raw });
    return { result: { written: 1 } };
  },
};
