/** Conversions between exploded phext scrolls and the engine's columnar ScrollBatch. */
import { formatCoord } from '../coords';
import { VtpuError } from '../errors';
import { tick } from '../budget';
import { DIMS, DType, Kind, type ScrollBatch } from '../types';
import { kindName } from '../values';
import type { PhextSlice } from './explode';

/** Packs scrolls into a text ScrollBatch with coords (kind text, dtype none, no shape). */
export function slicesToBatch(slices: readonly PhextSlice[]): ScrollBatch {
  const n = slices.length;
  const coords = new Uint32Array(n * DIMS);
  const valueOffsets = new Int32Array(n + 1);
  let total = 0;
  slices.forEach((s, i) => {
    coords.set(s.coord, i * DIMS);
    total += s.bytes.length;
    valueOffsets[i + 1] = total;
  });
  const values = new Uint8Array(total);
  slices.forEach((s, i) => values.set(s.bytes, valueOffsets[i]));
  return {
    n,
    coords,
    kind: new Uint8Array(n).fill(Kind.Text),
    dtype: new Uint8Array(n).fill(DType.None),
    shapeOffsets: new Int32Array(n + 1),
    shapeValues: new Uint32Array(0),
    valueOffsets,
    values,
  };
}

/**
 * Unpacks a ScrollBatch with coords into scrolls (views into `batch.values`, no copy).
 * Rows of kind Missing are skipped (absent, not empty).
 * @throws E_PARAM when the batch has no coords; E_DTYPE for a row that is not text.
 */
export function batchToSlices(batch: ScrollBatch): PhextSlice[] {
  const { coords } = batch;
  if (!coords) throw new VtpuError('E_PARAM', 'a phext export needs scrolls with coordinates');
  const out: PhextSlice[] = [];
  for (let i = 0; i < batch.n; i++) {
    tick();
    const coord = coords.subarray(i * DIMS, (i + 1) * DIMS);
    const kind = batch.kind[i];
    if (kind === Kind.Missing) continue;
    if (kind !== Kind.Text) {
      throw new VtpuError('E_DTYPE', `scroll ${formatCoord(coord)} is ${kindName(kind)}, not text; ` +
        'only text scrolls can be written to a phext file');
    }
    out.push({ coord, bytes: batch.values.subarray(batch.valueOffsets[i], batch.valueOffsets[i + 1]) });
  }
  return out;
}

