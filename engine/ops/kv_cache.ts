/**
 * The KV cache layout CATTEND reads: one float32 (or float16/bfloat16) tensor of shape (D,)
 * per position, kv head, kind and batch row, at
 *
 *     layer.head.pos / kind.batch.0 / 0.0.0      (kind 1 = key, 2 = value)
 *
 * One vector per scroll keeps a decode step's write to 2·B·Hkv rows of one CPUT batch, and
 * lets a read fetch only the positions the mask can see (band + globals), not the whole cache.
 */
import { Kind } from '../types';
import { VtpuError } from '../errors';
import type { Store } from '../store/store';
import { toFloat32 } from '../tensors';
import { AttnSpec } from '../kernels/attention_spec';
import { rowGroups } from '../kernels/attention';

/** Kind component of a key vector's coordinate. */
export const KV_KEY = 1;
/** Kind component of a value vector's coordinate. */
export const KV_VALUE = 2;
const OP = 'CATTEND';

/** The 9 components of one cache vector's coordinate. */
export function kvCoord(layer: number, head: number, pos: number, kind: number, batch: number): Uint32Array {
  return Uint32Array.of(layer, head, pos, kind, batch, 0, 0, 0, 0);
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
  while (store.get(kvCoord(layer, h, 0, KV_KEY, 0)) !== undefined) h++;
  return h;
}

/**
 * Reads k and v (B, Hkv, length, D) from the store, filling only the positions the mask
 * lets some query see (the rest stay 0 and are never read by the kernels). E_PARAM when a
 * needed vector is missing, E_SHAPE when one is not (D,) or heads do not divide Hq.
 */
export function readKvCache(store: Store, r: KvRequest, makeSpec: (Hkv: number) => AttnSpec): { k: Float32Array; v: Float32Array; spec: AttnSpec } {
  let Hkv: number;
  if (r.heads === undefined) {
    Hkv = countHeads(store, r.layer);
    if (Hkv === 0) throw new VtpuError('E_PARAM', `${OP}: no KV cache stored for layer ${r.layer}`);
  } else {
    if (typeof r.heads !== 'number' || !Number.isInteger(r.heads) || r.heads < 1) throw new VtpuError('E_PARAM', `${OP}: kv.heads must be a positive integer`);
    Hkv = r.heads;
  }
  if (r.Hq % Hkv !== 0) throw new VtpuError('E_SHAPE', `${OP}: q heads ${r.Hq} must be a multiple of the cache's kv heads ${Hkv}`);
  const spec = makeSpec(Hkv);
  const n = r.B * Hkv * r.length * r.D;
  if (n > 1 << 28) throw new VtpuError('E_LIMIT', `${OP}: KV cache read of ${n} elements is over the limit`);
  const need = new Uint8Array(r.length);
  for (const g of rowGroups(spec)) for (const j of g.keys) need[j] = 1;
  const k = new Float32Array(n);
  const v = new Float32Array(n);
  const c = kvCoord(r.layer, 0, 0, 0, 0);
  for (let b = 0; b < r.B; b++) {
    for (let h = 0; h < Hkv; h++) {
      for (let j = 0; j < r.length; j++) {
        if (!need[j]) continue;
        const at = ((b * Hkv + h) * r.length + j) * r.D;
        for (const [kind, dst] of [[KV_KEY, k], [KV_VALUE, v]] as const) {
          c[1] = h; c[2] = j; c[3] = kind; c[4] = b;
          const s = store.get(c);
          const what = `${kind === KV_KEY ? 'key' : 'value'} of layer ${r.layer} head ${h} position ${j} batch ${b}`;
          if (s === undefined) throw new VtpuError('E_PARAM', `${OP}: KV cache has no ${what}`);
          if (s.kind !== Kind.Tensor) throw new VtpuError('E_DTYPE', `${OP}: KV cache ${what} is not a tensor`);
          if (s.shape.length !== 1 || s.shape[0] !== r.D) throw new VtpuError('E_SHAPE', `${OP}: KV cache ${what} has shape [${s.shape.join(', ')}], expected [${r.D}]`);
          dst.set(toFloat32(OP, what, { dtype: s.dtype, shape: s.shape, bytes: s.bytes }).data, at);
        }
      }
    }
  }
  return { k, v, spec };
}
