/**
 * The KV cache layout CATTEND reads: one float32 (or float16/bfloat16) tensor of shape (D,)
 * per position, kv head, kind and batch row, at
 *
 *     layer.head.pos / kind.batch.0 / 0.0.0      (kind 1 = key, 2 = value)
 *
 * One vector per scroll keeps a decode step's write to 2·B·Hkv rows of one CPUT batch, and
 * lets a read fetch only the positions the mask can see (band + globals), not the whole cache.
 */
import schema from '../../protocol/protocol.json';
import { DType, Kind } from '../types';
import { VtpuError } from '../errors';
import type { Store } from '../store/store';
import { toFloat32 } from '../tensors';
import { AttnSpec } from '../kernels/attention_spec';
import { rowGroups } from '../kernels/attention';

const LAYOUT = schema.layouts.kv_cache;
/** Kind component of a key vector's coordinate (protocol.json `layouts.kv_cache`). */
export const KV_KEY = LAYOUT.kinds.key;
/** Kind component of a value vector's coordinate. */
export const KV_VALUE = LAYOUT.kinds.value;
/** Index of each part of a cache vector's coordinate. */
const AT = LAYOUT.components;
const OP = 'CATTEND';
/** Most elements in the k (and in the v) read from the cache: 1 GiB of float32 each. */
const MAX_READ = 1 << 28;

/** The 9 components of one cache vector's coordinate. */
export function kvCoord(layer: number, head: number, pos: number, kind: number, batch: number): Uint32Array {
  const c = new Uint32Array(9);
  c[AT.layer] = layer;
  c[AT.head] = head;
  c[AT.pos] = pos;
  c[AT.kind] = kind;
  c[AT.batch] = batch;
  return c;
}

/** What a cache read needs to know. `heads` (kv heads) is counted from the store when absent. */
export interface KvRequest {
  layer: number;
  length: number;
  heads: unknown;
  B: number;
  Hq: number;
  D: number;
}

/** Kv heads stored for a layer: heads 0, 1, … whose key at position 0, batch 0 exists. */
function countHeads(store: Store, layer: number): number {
  let h = 0;
  // Bounded by what is stored: each head counted is a stored vector.
  while (store.get(kvCoord(layer, h, 0, KV_KEY, 0)) !== undefined) h++;
  return h;
}

/** k/v read from the cache; with `keyRow`, compacted to the positions some query can see. */
export interface KvRead {
  k: Float32Array;
  v: Float32Array;
  spec: AttnSpec;
  /** Position → row in k/v (-1 = not read), or null when k/v hold every position. */
  keyRow: Int32Array | null;
}

/**
 * Reads k and v (B, Hkv, ·, D) from the store with one batched lookup of only the
 * positions the mask lets some query see; when those are under half the cache (a decode
 * step with a window) k/v hold just them (`keyRow` maps positions), else all `length`
 * positions with the unread ones 0. E_PARAM when a needed vector is missing, E_SHAPE when
 * one is not (D,) or heads do not divide Hq, E_DTYPE when it is not a float tensor.
 */
export function readKvCache(store: Store, r: KvRequest, makeSpec: (Hkv: number) => AttnSpec): KvRead {
  let Hkv: number;
  if (r.heads === undefined) {
    Hkv = countHeads(store, r.layer);
    if (Hkv === 0) throw new VtpuError('E_PARAM', `${OP}: no KV cache stored for layer ${r.layer}`);
  } else {
    if (typeof r.heads !== 'number' || !Number.isInteger(r.heads) || r.heads < 1) throw new VtpuError('E_PARAM', `${OP}: kv.heads must be a positive integer`);
    Hkv = r.heads;
  }
  if (r.Hq % Hkv !== 0) throw new VtpuError('E_SHAPE', `${OP}: q heads ${r.Hq} must be a multiple of the cache's kv heads ${Hkv}`);
  // Sizes are checked against what the store holds before anything is allocated by them:
  // a length past the cache is refused in one lookup, whatever its value.
  if (store.get(kvCoord(r.layer, Hkv - 1, r.length - 1, KV_VALUE, r.B - 1)) === undefined) {
    throw new VtpuError('E_PARAM', `${OP}: kv.length ${r.length} is beyond the KV cache: layer ${r.layer} has no value at head ${Hkv - 1} position ${r.length - 1} batch ${r.B - 1}`);
  }
  const most = r.B * Hkv * r.length * r.D;
  const spec = makeSpec(Hkv);
  const need = new Uint8Array(r.length);
  for (const g of rowGroups(spec)) for (const j of g.keys) need[j] = 1;
  let P = 0;
  for (let j = 0; j < r.length; j++) P += need[j];
  const positions = new Int32Array(P);
  for (let j = 0, i = 0; j < r.length; j++) if (need[j]) positions[i++] = j;
  const compact = P * 2 < r.length;
  const rows = compact ? P : r.length;
  const n = compact ? r.B * Hkv * rows * r.D : most;
  if (n > MAX_READ) throw new VtpuError('E_LIMIT', `${OP}: KV cache read of ${n} elements is over the limit of ${MAX_READ}`);
  const keyRow = compact ? new Int32Array(r.length).fill(-1) : null;
  if (keyRow) positions.forEach((j, i) => (keyRow[j] = i));
  // One lookup batch: (b, h, position, kind) in row order.
  const coords = new Uint32Array(r.B * Hkv * P * 2 * 9);
  let at = 0;
  for (let b = 0; b < r.B; b++) for (let h = 0; h < Hkv; h++) for (const j of positions) for (const kind of [KV_KEY, KV_VALUE]) {
    coords[at + AT.layer] = r.layer; coords[at + AT.head] = h; coords[at + AT.pos] = j; coords[at + AT.kind] = kind; coords[at + AT.batch] = b;
    at += 9;
  }
  const { batch } = store.getBatch(coords);
  const k = new Float32Array(n);
  const v = new Float32Array(n);
  const f32 = batch.values.byteOffset % 4 === 0 ? new Float32Array(batch.values.buffer, batch.values.byteOffset, batch.values.byteLength >> 2) : null;
  for (let i = 0; i < batch.n; i++) {
    const c = i * 9;
    const h = coords[c + AT.head], j = coords[c + AT.pos], kind = coords[c + AT.kind], b = coords[c + AT.batch];
    const what = () => `${kind === KV_KEY ? 'key' : 'value'} of layer ${r.layer} head ${h} position ${j} batch ${b}`;
    if (batch.kind[i] === Kind.Missing) throw new VtpuError('E_PARAM', `${OP}: KV cache has no ${what()}`);
    if (batch.kind[i] !== Kind.Tensor) throw new VtpuError('E_DTYPE', `${OP}: KV cache ${what()} is not a tensor`);
    const so = batch.shapeOffsets[i];
    if (batch.shapeOffsets[i + 1] - so !== 1 || batch.shapeValues[so] !== r.D) {
      const shape = Array.from(batch.shapeValues.subarray(so, batch.shapeOffsets[i + 1]));
      throw new VtpuError('E_SHAPE', `${OP}: KV cache ${what()} has shape [${shape.join(', ')}], expected [${r.D}]`);
    }
    const dst = ((b * Hkv + h) * rows + (keyRow ? keyRow[j] : j)) * r.D;
    const v0 = batch.valueOffsets[i];
    const out = kind === KV_KEY ? k : v;
    if (batch.dtype[i] === DType.Float32 && f32 && v0 % 4 === 0) out.set(f32.subarray(v0 >> 2, (v0 >> 2) + r.D), dst);
    else out.set(toFloat32(OP, what(), { dtype: batch.dtype[i], shape: [r.D], bytes: batch.values.subarray(v0, batch.valueOffsets[i + 1]) }).data, dst);
  }
  return { k, v, spec, keyRow };
}
