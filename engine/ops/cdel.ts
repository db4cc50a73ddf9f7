/** CDEL: delete one coordinate or a batch; reports how many existed. */
import type { Instruction } from '../instruction';
import { coordFromParam } from '../coords';
import { isBatch, coordsBody, batchBody, always } from './params';

/** The CDEL instruction. */
export const CDEL: Instruction = {
  name: 'CDEL',
  body: batchBody('coords'),
  writes: always,
  run(engine, input) {
    if (isBatch('CDEL', input)) return { result: { deleted: engine.store.deleteBatch(coordsBody('CDEL', engine, input)) } };
    return { result: { deleted: engine.store.delete(coordFromParam(input.params.coord)) ? 1 : 0 } };
  },
};
