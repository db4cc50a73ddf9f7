/**
 * CKG: knowledge-graph traversal over coordinates in one round trip (layout in ../kg/graph).
 *
 * Starts: `start` (one coordinate) or, with `batch: true`, an arrow coords body; components
 * 1 and 2 of each row name the entity (type, id), the rest are ignored, so a CRANGE of
 * attribute rows can feed CKG inside a PROGRAM. A start that does not exist gives an empty
 * block. Modes:
 * Relations are signed: r follows edges forward (source → target), −r backward; "*" is any
 * relation forward, "-*" any backward, and a list allows each of its items.
 * - `path`: follow `path` (one relation set per hop) and return the distinct end entities
 *   in (type, id) order, or with `paths: true` every matching path as hops+1 rows
 *   (depth-first, each node's forward then backward edges in (relation, type, id) order);
 * - `bfs`: a BFS to `depth` hops along `relations` (default "*"), at most `limit` nodes
 *   per start (the start included), rows in discovery order with depth, parent and relation;
 *   with `multi_source: true` one BFS from all starts together (one block).
 * The reply body holds one `t.id.attr/0.0.0/0.0.0` coordinate per result (attr from params,
 * default 0, so the body feeds a CGET of attributes); `offsets` splits it per start. Path
 * mode sends arrow coords; bfs sends arrow scrolls whose row values are 12 bytes: int32
 * depth, int32 parent row (-1 for a start), int32 relation followed (negative: backwards;
 * 0 for a start).
 */
import type { Instruction, EngineContext } from '../instruction';
import { DIMS, Kind, OpInput, ScrollBatch } from '../types';
import { VtpuError } from '../errors';
import { coordFromParam, MAX_COMPONENT } from '../coords';
import { boolParam, coordsBody, intParam, isBatch, tensorsBody } from './params';
import type { Graph } from '../kg/graph';
import { exists, findNode, graphOf, idOf, typeOf } from '../kg/overlay';
import { bfs, pathEnds, pathWalks, RelSet, Rels, Rows } from '../kg/traverse';
import { MAX_RELATION } from '../kg/graph';

/** Most hops in a path. */
export const MAX_HOPS = 64;
/** Largest BFS depth. */
export const MAX_DEPTH = 65535;

const OP = 'CKG';

/** One signed relation id: r ≥ 1 follows r forward, −r backward (0 is the attribute space). */
function relId(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v === 0 || Math.abs(v) > MAX_RELATION) {
    throw new VtpuError('E_PARAM', `${OP}: ${where} must be a relation id ±1..${MAX_RELATION}, "*" or "-*", got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Sorted distinct ids, or '*' when `any`. */
function rels(ids: number[], any: boolean): Rels | null {
  if (any) return '*';
  if (ids.length === 0) return null;
  const out = Uint32Array.from(ids).sort();
  return out.filter((x, i) => i === 0 || out[i - 1] !== x);
}

/**
 * A relation set from a signed id, "*" (any forward), "-*" (any backward) or a non-empty
 * list of them.
 */
function relSet(v: unknown, where: string): RelSet {
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) throw new VtpuError('E_PARAM', `${OP}: ${where} is an empty relation list`);
  const fwd: number[] = [];
  const back: number[] = [];
  let anyFwd = false;
  let anyBack = false;
  items.forEach((x, i) => {
    if (x === '*') anyFwd = true;
    else if (x === '-*') anyBack = true;
    else {
      const r = relId(x, Array.isArray(v) ? `${where}[${i}]` : where);
      (r > 0 ? fwd : back).push(Math.abs(r));
    }
  });
  return { fwd: rels(fwd, anyFwd), back: rels(back, anyBack) };
}

/** Entity (type, id) pairs of the starts. */
function starts(engine: EngineContext, input: OpInput): Uint32Array {
  if (isBatch(OP, input)) {
    const c = coordsBody(OP, engine, input);
    const n = c.length / DIMS;
    const out = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) {
      out[2 * i] = c[i * DIMS];
      out[2 * i + 1] = c[i * DIMS + 1];
    }
    return out;
  }
  if (input.params.start === undefined) throw new VtpuError('E_PARAM', `${OP}: give start (a coordinate) or batch: true with a coords body`);
  const c = coordFromParam(input.params.start, `${OP}: start`);
  return Uint32Array.of(c[0], c[1]);
}

/** Reply body: one `t.id.attr/0.0.0/0.0.0` row per result node. */
function rowCoords(g: Graph, nodes: Int32Array, attr: number): Uint32Array {
  const out = new Uint32Array(nodes.length * DIMS);
  for (let i = 0; i < nodes.length; i++) {
    out[i * DIMS] = typeOf(g, nodes[i]);
    out[i * DIMS + 1] = idOf(g, nodes[i]);
    out[i * DIMS + 2] = attr;
  }
  return out;
}

/** Bytes per BFS row value: int32 depth, int32 parent row, int32 signed relation (little-endian). */
const META_BYTES = 12;

/** BFS reply body: the row coordinates, each with a 12-byte bytes value (depth, parent, relation). */
function bfsBatch(coords: Uint32Array, rows: Rows): ScrollBatch {
  const n = rows.n;
  const words = new Uint32Array(3 * n);
  const depth = rows.depth.a;
  const parent = rows.parent.a;
  const via = rows.via.a;
  for (let i = 0; i < n; i++) {
    words[3 * i] = depth[i];
    words[3 * i + 1] = parent[i];
    words[3 * i + 2] = via[i];
  }
  const valueOffsets = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) valueOffsets[i] = i * META_BYTES;
  return {
    n, coords, kind: new Uint8Array(n).fill(Kind.Bytes), dtype: new Uint8Array(n),
    shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(0), valueOffsets,
    values: new Uint8Array(words.buffer),
  };
}

/** The CKG instruction. */
export const CKG: Instruction = {
  name: OP,
  body: tensorsBody,
  run(engine, input) {
    const t0 = performance.now();
    const p = input.params;
    const mode = p.mode;
    if (mode !== 'path' && mode !== 'bfs') throw new VtpuError('E_PARAM', `${OP}: mode must be "path" or "bfs", got ${JSON.stringify(mode)}`);
    const max = engine.maxBatch;
    const limit = intParam(OP, p, 'limit', max, 1, max);
    const attr = intParam(OP, p, 'attr', 0, 0, MAX_COMPONENT);
    let hops: RelSet[] = [];
    let walks = false;
    let depth = 0;
    let follow: RelSet = { fwd: '*', back: null };
    let multi = false;
    if (mode === 'path') {
      if (!Array.isArray(p.path) || p.path.length < 1 || p.path.length > MAX_HOPS) {
        throw new VtpuError('E_PARAM', `${OP}: path must be a list of 1..${MAX_HOPS} hops, got ${JSON.stringify(p.path)}`);
      }
      hops = p.path.map((h, i) => relSet(h, `path[${i}]`));
      walks = boolParam(OP, p, 'paths', false);
    } else {
      if (p.depth === undefined) throw new VtpuError('E_PARAM', `${OP}: bfs needs depth (0..${MAX_DEPTH})`);
      depth = intParam(OP, p, 'depth', 0, 0, MAX_DEPTH);
      if (p.relations !== undefined && p.relations !== null) follow = relSet(p.relations, 'relations');
      multi = boolParam(OP, p, 'multi_source', false);
    }
    const ents = starts(engine, input);
    const { graph: g, built } = graphOf(engine.store);
    const nodes: number[] = [];
    for (let s = 0; s < ents.length / 2; s++) {
      const u = findNode(g, ents[2 * s], ents[2 * s + 1]);
      nodes.push(u >= 0 && exists(g, u) ? u : -1);
    }
    const rows = new Rows(mode === 'bfs');
    // multi_source: one BFS from every start together, answered as a single block.
    const blocks = multi ? [nodes.filter((u) => u >= 0)] : nodes.map((u) => (u >= 0 ? [u] : []));
    const offsets = new Array<number>(blocks.length + 1);
    const truncated = new Array<boolean>(blocks.length);
    offsets[0] = 0;
    const per = walks ? hops.length + 1 : 1;
    blocks.forEach((us, s) => {
      // The reply may not pass the batch limit: a block gets at most the rows still free.
      const cap = Math.min(limit, Math.floor((max - rows.n) / per));
      let cut = false;
      if (us.length > 0) {
        if (mode === 'bfs') cut = bfs(g, us, depth, follow, cap, rows);
        else cut = walks ? pathWalks(g, us[0], hops, cap, rows) : pathEnds(g, us[0], hops, cap, rows);
      }
      if (cut && cap < limit) throw new VtpuError('E_LIMIT', `${OP}: reply over ${max} rows; lower limit or send fewer starts`);
      truncated[s] = cut;
      offsets[s + 1] = walks ? rows.n / per : rows.n;
    });
    const result: Record<string, unknown> = { mode, n: rows.n, starts: nodes.length, offsets, truncated };
    if (walks) result.hops = hops.length;
    const coords = rowCoords(g, rows.node.view(), attr);
    const out = mode === 'bfs' ? { result, scrolls: bfsBatch(coords, rows) } : { result, coords };
    result.build_us = built ? g.buildUs : 0;
    // Traversal and reply rows; Arrow encoding and the socket come after, in the bridge.
    result.elapsed_us = Math.round((performance.now() - t0) * 1000);
    return out;
  },
};
