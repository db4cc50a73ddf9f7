/**
 * CNEAREST: the k stored entries nearest to each query, exact.
 *
 * Coordinate form (`params.batch: true` with an Arrow coords body, or one `params.coord`):
 * metric `l1`, `l2` (default) or `hier`, optional `pattern`; see engine/index/nearest.ts.
 * Vector form (`params.tensors: ["queries"]`, an (N, D) float tensor, and `params.pattern`):
 * metric `cosine` (default), `l2` or `ip` over the range's float tensors of D elements; see
 * engine/index/vectors.ts.
 *
 * Reply tensors: `coords` int64 (N, k, 9), nearest first, and either `dist` (coordinate form:
 * int64 exact L1 / hier distance / squared L2, or float32 Euclidean L2 when a squared distance
 * passes int64 — `result.dist` says which) or `score` float32 (vector form).
 */
import type { EngineContext, Instruction } from '../instruction';
import { DIMS, OpInput, OpOutput } from '../types';
import { VtpuError } from '../errors';
import { coordFromParam } from '../coords';
import { parsePattern, Pattern } from '../pattern';
import { expectShape, floatInput, namedTensors, tensorOutput } from '../tensors';
import { boolParam, coordsBody, isBatch, tensorsBody } from './params';
import { CoordAnswer, CoordMetric, nearestCoords } from '../index/nearest';
import { VectorMetric, nearestVectors } from '../index/vectors';

const OP = 'CNEAREST';
const COORD_METRICS: readonly string[] = ['l1', 'l2', 'hier'];
const VECTOR_METRICS: readonly string[] = ['cosine', 'l2', 'ip'];

function metricParam(p: Record<string, unknown>, allowed: readonly string[], dflt: string): string {
  const m = p.metric ?? dflt;
  if (typeof m !== 'string' || !allowed.includes(m)) {
    throw new VtpuError('E_PARAM', `${OP}: metric must be one of ${allowed.join(', ')} for this form, got ${JSON.stringify(p.metric)}`);
  }
  return m;
}

function patternParam(p: Record<string, unknown>, required: boolean): Pattern | null {
  if (p.pattern === undefined && !required) return null;
  if (typeof p.pattern !== 'string') throw new VtpuError('E_PARAM', `${OP}: pattern must be a string, got ${JSON.stringify(p.pattern)}`);
  return parsePattern(p.pattern);
}

/** k: required, 1 ≤ k and nq·k ≤ the batch limit (E_LIMIT past it). */
function kParam(p: Record<string, unknown>, nq: number, maxBatch: number): number {
  const k = p.k;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1) throw new VtpuError('E_PARAM', `${OP}: k must be an integer ≥ 1, got ${JSON.stringify(k)}`);
  if (nq * k > maxBatch) throw new VtpuError('E_LIMIT', `${OP}: ${nq} queries × k = ${k} rows over the batch limit ${maxBatch}`);
  return k;
}

/** uint32 components widened to little-endian int64 without BigInt conversions. */
function int64Of(words: Uint32Array): BigInt64Array {
  const w = new Uint32Array(words.length * 2);
  for (let i = 0; i < words.length; i++) w[2 * i] = words[i];
  return new BigInt64Array(w.buffer);
}

/** Exact two-word distances as int64 when all fit, else null. */
function distInt64(hi: Float64Array, lo: Float64Array): BigInt64Array | null {
  const w = new Uint32Array(hi.length * 2);
  for (let i = 0; i < hi.length; i++) {
    if (hi[i] >= 2 ** 31) return null;
    w[2 * i] = lo[i];
    w[2 * i + 1] = hi[i];
  }
  return new BigInt64Array(w.buffer);
}

/** A coordinate-form request's queries and params, validated (shared with the pool path). */
export interface CoordQuery {
  q: Uint32Array;
  k: number;
  metric: CoordMetric;
  pattern: Pattern | null;
}

/** Reads a coordinate-form request: `batch` + coords body, or one `coord`. */
export function coordQuery(engine: EngineContext, input: OpInput): CoordQuery {
  const p = input.params;
  let q: Uint32Array;
  if (isBatch(OP, input)) {
    if (p.coord !== undefined) throw new VtpuError('E_PARAM', `${OP}: batch form takes a coords body, not coord`);
    q = coordsBody(OP, engine, input);
  } else if (p.coord !== undefined) {
    q = coordFromParam(p.coord);
  } else {
    throw new VtpuError('E_PARAM', `${OP}: needs coord, batch with a coords body, or tensors ["queries"]`);
  }
  const metric = metricParam(p, COORD_METRICS, 'l2') as CoordMetric;
  const pattern = patternParam(p, false);
  return { q, k: kParam(p, q.length / DIMS, engine.maxBatch), metric, pattern };
}

/** The coordinate-form reply: coords int64 and dist (int64 exact, or float32 Euclidean when squares pass int64). */
export function coordReply(k: number, metric: CoordMetric, ans: CoordAnswer): OpOutput {
  const nq = ans.hi.length / k;
  const exact = distInt64(ans.hi, ans.lo);
  let dist: BigInt64Array | Float32Array;
  let kind: string = metric === 'l2' ? 'l2sq' : metric;
  if (exact !== null) dist = exact;
  else {
    // Only squared L2 can pass int64 (components ≥ ~1e9 apart): send the Euclidean distance.
    dist = new Float32Array(ans.hi.length);
    for (let i = 0; i < dist.length; i++) dist[i] = Math.sqrt(ans.hi[i] * 4294967296 + ans.lo[i]);
    kind = 'l2';
  }
  return tensorOutput({ n: nq, k, metric, dist: kind }, {
    coords: { shape: [nq, k, DIMS], data: int64Of(ans.coords) },
    dist: { shape: [nq, k], data: dist },
  });
}

/** The CNEAREST instruction. */
export const CNEAREST: Instruction = {
  name: OP,
  body: tensorsBody,
  // Batched coordinate queries to the read pool (the plan is made on the loop, slices searched in workers).
  offload: (input) => (input.params.batch === true && input.coords && input.params.tensors === undefined
    ? { to: 'pool', rows: input.coords.length / DIMS } : null),
  run(engine, input) {
    const p = input.params;
    const named = namedTensors(OP, input);
    if (named.size > 0) {
      if (isBatch(OP, input) || p.coord !== undefined) throw new VtpuError('E_PARAM', `${OP}: send either query vectors (tensors) or coordinates, not both`);
      const queries = floatInput(OP, named, 'queries');
      expectShape(OP, 'queries', queries, [null, null]);
      const [nq, dim] = queries.shape;
      if (dim < 1) throw new VtpuError('E_SHAPE', `${OP}: queries need at least one column`);
      const metric = metricParam(p, VECTOR_METRICS, 'cosine') as VectorMetric;
      const pattern = patternParam(p, true) as Pattern;
      const skip = boolParam(OP, p, 'skip_mismatched', false);
      const k = kParam(p, nq, engine.maxBatch);
      const ans = nearestVectors(OP, engine.store, queries.data, nq, dim, k, metric, pattern, skip);
      return tensorOutput({ n: nq, k, metric }, {
        coords: { shape: [nq, k, DIMS], data: int64Of(ans.coords) },
        score: { shape: [nq, k], data: ans.score },
      });
    }
    const { q, k, metric, pattern } = coordQuery(engine, input);
    return coordReply(k, metric, nearestCoords(OP, engine.store, q, k, metric, pattern));
  },
};
