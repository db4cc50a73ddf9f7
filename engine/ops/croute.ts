/**
 * CROUTE: owning shard per coordinate from the range-ownership table. `params.table`
 * replaces the table (validated whole; with `version` and `shard` for a cluster shard,
 * engine/shard.ts); `prune` deletes what other shards own; with no coord, batch, table or
 * prune it returns the table, its version and this sidecar's shard.
 */
import type { Instruction } from '../instruction';
import { DIMS } from '../types';
import { coordFromParam } from '../coords';
import { isBatch, coordsBody, batchBody, boolParam } from './params';
import { installTable, pruneForeign } from '../shard';
import type { EngineContext } from '../instruction';

function tableResult(engine: EngineContext): Record<string, unknown> {
  return { table: engine.routes.toJSON(), version: engine.routes.version, shard: engine.routes.self ?? null };
}

/** The CROUTE instruction. */
export const CROUTE: Instruction = {
  name: 'CROUTE',
  body: batchBody('coords'),
  writes: (p) => p.table !== undefined || p.prune === true, // replacing the table, pruning
  run(engine, input) {
    const p = input.params;
    if (p.table !== undefined) {
      installTable(engine, p);
      return { result: tableResult(engine) };
    }
    if (boolParam('CROUTE', p, 'prune', false)) return { result: { ...tableResult(engine), pruned: pruneForeign(engine) } };
    if (isBatch('CROUTE', input)) {
      const coords = coordsBody('CROUTE', engine, input);
      return { result: { n: coords.length / DIMS }, shards: engine.routes.routeBatch(coords) };
    }
    if (p.coord === undefined) return { result: tableResult(engine) };
    return { result: { ...engine.routes.route(coordFromParam(p.coord)) } };
  },
};
