/**
 * Entry digests for sync: xxh3-64 (hash-wasm, the implementation behind the phext checksums)
 * of one scroll's coordinate, kind, dtype, shape and value bytes, as two uint32 lanes.
 * hash-wasm compiles its WASM asynchronously: await {@link initSyncHash} once at startup.
 */
import { createXXHash3, type IHasher } from 'hash-wasm';
import { VtpuError } from '../errors';
import { DIMS, type ScrollBatch } from '../types';

let hasher: IHasher | undefined;
let pending: Promise<IHasher> | undefined;

/** Compiles the hasher once; later calls return the same promise. */
export function initSyncHash(): Promise<void> {
  pending ??= createXXHash3().then((h) => (hasher = h));
  return pending.then(() => undefined);
}

function ready(): IHasher {
  if (!hasher) throw new VtpuError('E_INTERNAL', 'sync hash is not initialised; await initSyncHash() at startup');
  return hasher;
}

/**
 * Digests of every row of a batch with coords: out[2i], out[2i+1] are the low and high 32 bits
 * of xxh3-64 over (coords LE, kind, dtype, ndim, shape LE, value). Equal on two sidecars iff
 * the scrolls are byte-identical (up to xxh3 collisions).
 */
export function entryDigests(b: ScrollBatch): Uint32Array {
  const h = ready();
  const coords = b.coords as Uint32Array;
  const cbytes = new Uint8Array(coords.buffer, coords.byteOffset, coords.byteLength);
  const head = new Uint32Array(1);
  const headBytes = new Uint8Array(head.buffer);
  const sv = b.shapeValues;
  const svBytes = new Uint8Array(sv.buffer, sv.byteOffset, sv.byteLength);
  const out = new Uint32Array(b.n * 2);
  for (let i = 0; i < b.n; i++) {
    const s0 = b.shapeOffsets[i];
    const s1 = b.shapeOffsets[i + 1];
    head[0] = b.kind[i] | (b.dtype[i] << 8) | ((s1 - s0) << 16);
    h.init();
    h.update(cbytes.subarray(i * DIMS * 4, (i + 1) * DIMS * 4));
    h.update(headBytes);
    if (s1 > s0) h.update(svBytes.subarray(s0 * 4, s1 * 4));
    h.update(b.values.subarray(b.valueOffsets[i], b.valueOffsets[i + 1]));
    const d = h.digest('binary');
    out[2 * i] = (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
    out[2 * i + 1] = (d[4] | (d[5] << 8) | (d[6] << 16) | (d[7] << 24)) >>> 0;
  }
  return out;
}

/** Orders two digests (lanes high then low); a deterministic tie-break both sides agree on. */
export function compareDigests(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number): number {
  const ha = a[2 * ai + 1];
  const hb = b[2 * bi + 1];
  if (ha !== hb) return ha < hb ? -1 : 1;
  const la = a[2 * ai];
  const lb = b[2 * bi];
  return la === lb ? 0 : la < lb ? -1 : 1;
}
