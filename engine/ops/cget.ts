/** CGET: read one coordinate (raw body) or a batch (scrolls body, rows aligned, kind 0 = missing). */
import type { Instruction } from '../instruction';
import { coordFromParam } from '../coords';
import { DIMS } from '../types';
import { isBatch, coordsBody, scrollMeta, batchBody } from './params';

/** The CGET instruction. */
export const CGET: Instruction = {
  name: 'CGET',
  body: batchBody('coords'),
  // A plain batch (no other params) to the read pool: its workers give the same rows.
  offload: (input) => (input.params.batch === true && input.coords && Object.keys(input.params).every((k) => k === 'batch')
    ? { to: 'pool', rows: input.coords.length / DIMS } : null),
  run(engine, input) {
    if (isBatch('CGET', input)) {
      const { batch, found } = engine.store.getBatch(coordsBody('CGET', engine, input));
      return { result: { n: batch.n, found }, scrolls: batch };
    }
    const c = coordFromParam(input.params.coord);
    const s = input.replyViews ? engine.store.peek(c) : engine.store.get(c);
    return s === undefined ? { result: { found: false } } : { result: scrollMeta(s), raw: s.bytes, rawIsView: input.replyViews };
  },
};
