/**
 * CROUTE: owning shard per coordinate from the range-ownership table. `params.table`
 * replaces the table (validated whole); with no coord, batch or table it returns the table.
 */
import type { Instruction } from '../instruction';
import { DIMS } from '../types';
import { coordFromParam } from '../coords';
import { isBatch, coordsBody, batchBody } from './params';

/** The CROUTE instruction. */
export const CROUTE: Instruction = {
  name: 'CROUTE',
  body: batchBody('coords'),
  writes: (p) => p.table !== undefined, // replacing the table
  run(engine, input) {
    const p = input.params;
    if (p.table !== undefined) {
      engine.routes.replace(p.table);
      return { result: { table: engine.routes.toJSON() } };
    }
    if (isBatch('CROUTE', input)) {
      const coords = coordsBody('CROUTE', engine, input);
      return { result: { n: coords.length / DIMS }, shards: engine.routes.routeBatch(coords) };
    }
    if (p.coord === undefined) return { result: { table: engine.routes.toJSON() } };
    return { result: { ...engine.routes.route(coordFromParam(p.coord)) } };
  },
};
