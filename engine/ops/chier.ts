/**
 * CHIER: walk the coordinate hierarchy. A node is the first `level` components of `coord`.
 * `up` lists ancestors at levels level-1 … max(0, level-depth); `down` lists existing
 * descendant prefixes at levels level+1 … min(9, level+depth), level by level, each level in
 * coordinate order. Counts come from the range index (no scan).
 */
import type { Instruction } from '../instruction';
import { DIMS } from '../types';
import { VtpuError } from '../errors';
import { coordFromParam } from '../coords';
import { formatPattern, patternFromPrefix } from '../pattern';
import { intParam } from './params';
import { tick } from '../budget';

/** One node of a CHIER reply. */
export interface HierNode {
  level: number;
  prefix: number[];
  pattern: string;
  count: number;
}

function node(prefix: ArrayLike<number>, level: number, count: number): HierNode {
  const p = new Array<number>(DIMS).fill(0);
  for (let d = 0; d < level; d++) p[d] = prefix[d];
  return { level, prefix: p, pattern: formatPattern(patternFromPrefix(p, level)), count };
}

/** The CHIER instruction. */
export const CHIER: Instruction = {
  name: 'CHIER',
  run(engine, input) {
    const p = input.params;
    const coord = coordFromParam(p.coord);
    const level = intParam('CHIER', p, 'level', DIMS, 0, DIMS);
    const depth = intParam('CHIER', p, 'depth', 1, 1, DIMS);
    if (p.direction !== 'up' && p.direction !== 'down') {
      throw new VtpuError('E_PARAM', `CHIER: direction must be "up" or "down", got ${JSON.stringify(p.direction)}`);
    }
    const nodes: HierNode[] = [];
    if (p.direction === 'up') {
      for (let l = level - 1; l >= Math.max(0, level - depth); l--) nodes.push(node(coord, l, engine.store.countPrefix(coord, l)));
    } else {
      for (let l = level + 1; l <= Math.min(DIMS, level + depth); l++) {
        const children = engine.store.children(coord, level, l);
        // Each node is a JSON object in the reply: as many as a batch holds, no more.
        if (nodes.length + children.length > engine.maxBatch) {
          throw new VtpuError('E_LIMIT', `CHIER: ${nodes.length + children.length} nodes down to level ${l}, over the batch limit ${engine.maxBatch}; walk fewer levels`);
        }
        for (const c of children) { tick(); nodes.push(node(c.prefix, l, c.count)); }
      }
    }
    return { result: { nodes } };
  },
};
