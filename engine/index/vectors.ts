/**
 * Exact k-nearest stored tensors to query vectors (CNEAREST vector form): a blocked brute
 * force over the tensors of a range. Metrics: `cosine` (similarity, higher is nearer; a zero
 * vector has similarity 0 to everything), `ip` (inner product, higher is nearer) and `l2`
 * (Euclidean distance, lower is nearer). Sums run in float64 over float32 inputs; ties go by
 * coordinate order.
 */
import { DIMS, DType, Kind } from '../types';
import { VtpuError } from '../errors';
import type { Store } from '../store/store';
import type { Pattern } from '../pattern';
import { formatCoord } from '../coords';
import { toFloat32 } from '../tensors';
import { TopK } from './topk';

/** Vector-space metrics. */
export type VectorMetric = 'cosine' | 'l2' | 'ip';

/** k answers per query, best first: coords (9 per row) and scores. */
export interface VectorAnswer {
  coords: Uint32Array;
  score: Float32Array;
}

/** Candidate vectors of a range: `m` rows of `dim` floats and their coordinates. */
interface Matrix {
  m: number;
  data: Float32Array;
  coords: Uint32Array;
}

const FLOATS = new Set<number>([DType.Float32, DType.Float16, DType.BFloat16]);
/** Queries per tile and candidate rows per block: a block of rows stays in cache across the tile. */
const Q_TILE = 16;
const ROW_BLOCK = 256;

/** The range's float tensors of `dim` elements; others are an error unless `skip`. */
function gather(op: string, store: Store, pattern: Pattern, dim: number, skip: boolean): Matrix {
  const { batch, truncated } = store.range(pattern, store.maxBatch, true);
  if (truncated) throw new VtpuError('E_LIMIT', `${op}: the range holds more than ${store.maxBatch} values (the batch limit)`);
  if (batch.n === 0) throw new VtpuError('E_PARAM', `${op}: the range holds no stored values`);
  const bc = batch.coords as Uint32Array;
  const keep: number[] = [];
  for (let i = 0; i < batch.n; i++) {
    const shape = Array.from(batch.shapeValues.subarray(batch.shapeOffsets[i], batch.shapeOffsets[i + 1]));
    const len = shape.reduce((a, d) => a * d, 1);
    const float = batch.kind[i] === Kind.Tensor && FLOATS.has(batch.dtype[i]);
    if (float && len === dim) keep.push(i);
    else if (!skip && !float) throw new VtpuError('E_DTYPE', `${op}: value at ${formatCoord(bc, i)} is not a float tensor (pass skip_mismatched to skip it)`);
    else if (!skip) throw new VtpuError('E_SHAPE', `${op}: tensor at ${formatCoord(bc, i)} has ${len} elements, the queries ${dim} (pass skip_mismatched to skip it)`);
  }
  const m = keep.length;
  const data = new Float32Array(m * dim);
  const coords = new Uint32Array(m * DIMS);
  keep.forEach((i, r) => {
    const bytes = batch.values.subarray(batch.valueOffsets[i], batch.valueOffsets[i + 1]);
    data.set(toFloat32(op, 'value', { dtype: batch.dtype[i], shape: [dim], bytes }).data, r * dim);
    coords.set(bc.subarray(i * DIMS, i * DIMS + DIMS), r * DIMS);
  });
  return { m, data, coords };
}

function norms(x: Float32Array, n: number, dim: number): Float64Array {
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = r * dim, e = j + dim; j < e; j++) s += x[j] * x[j];
    out[r] = Math.sqrt(s);
  }
  return out;
}

/**
 * The k nearest stored tensors within `pattern` to each of the nq query rows (`queries`,
 * nq × dim). E_PARAM when the range is empty or holds fewer than k usable tensors.
 */
export function nearestVectors(
  op: string, store: Store, queries: Float32Array, nq: number, dim: number, k: number,
  metric: VectorMetric, pattern: Pattern, skip: boolean,
): VectorAnswer {
  const mat = gather(op, store, pattern, dim, skip);
  if (mat.m < k) throw new VtpuError('E_PARAM', `${op}: k = ${k} but only ${mat.m} matching tensors are stored in the range`);
  const { m, data, coords } = mat;
  const rowNorm = metric === 'cosine' ? norms(data, m, dim) : null;
  const qNorm = metric === 'cosine' ? norms(queries, nq, dim) : null;
  const out: VectorAnswer = { coords: new Uint32Array(nq * k * DIMS), score: new Float32Array(nq * k) };
  const heaps = Array.from({ length: Math.min(Q_TILE, nq) }, () => new TopK(k));
  const a = new Float64Array(k), b = new Float64Array(k), c = new Uint32Array(k * DIMS);
  for (let q0 = 0; q0 < nq; q0 += Q_TILE) {
    const q1 = Math.min(nq, q0 + Q_TILE);
    for (const h of heaps) h.reset();
    for (let r0 = 0; r0 < m; r0 += ROW_BLOCK) {
      const r1 = Math.min(m, r0 + ROW_BLOCK);
      for (let qi = q0; qi < q1; qi++) {
        const heap = heaps[qi - q0];
        const qo = qi * dim;
        for (let r = r0; r < r1; r++) {
          const xo = r * dim;
          let s = 0;
          if (metric === 'l2') {
            for (let j = 0; j < dim; j++) { const g = queries[qo + j] - data[xo + j]; s += g * g; }
          } else {
            for (let j = 0; j < dim; j++) s += queries[qo + j] * data[xo + j];
            if (rowNorm !== null && qNorm !== null) {
              const den = rowNorm[r] * qNorm[qi];
              s = den === 0 ? 0 : s / den;
            }
            s = -s; // higher similarity ranks first
          }
          if (s <= heap.limit) heap.offer(s, 0, coords, r * DIMS);
        }
      }
    }
    for (let qi = q0; qi < q1; qi++) {
      heaps[qi - q0].drain(c, a, b, 0);
      out.coords.set(c, qi * k * DIMS);
      for (let i = 0; i < k; i++) out.score[qi * k + i] = metric === 'l2' ? Math.sqrt(a[i]) : -a[i];
    }
  }
  return out;
}
