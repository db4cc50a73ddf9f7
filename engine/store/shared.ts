/**
 * SharedArrayBuffer-backed typed arrays, so Piscina worker threads can read the store
 * without copies. Growth allocates a new buffer and copies: old views keep reading the old
 * (stale) arrays, which is why a StoreView is only valid until the next write.
 */
import { VtpuError } from '../errors';

type TypedCtor<T> = { new (buf: SharedArrayBuffer, off?: number, len?: number): T; BYTES_PER_ELEMENT: number };

/** Allocates a zeroed shared typed array of `length` elements; E_LIMIT when memory runs out. */
export function sharedArray<T>(Ctor: TypedCtor<T>, length: number): T {
  try {
    return new Ctor(new SharedArrayBuffer(Math.max(1, length) * Ctor.BYTES_PER_ELEMENT), 0, length);
  } catch (e) {
    throw new VtpuError('E_LIMIT', `cannot allocate ${length} × ${Ctor.BYTES_PER_ELEMENT} shared bytes: ${(e as Error).message}`);
  }
}

/** Returns `arr` when it holds at least `need` elements, else a shared copy with capacity ≥ need (doubling). */
export function growShared<T extends Uint8Array | Uint32Array | Int32Array>(
  Ctor: TypedCtor<T>, arr: T, need: number, used: number,
): T {
  if (arr.length >= need) return arr;
  let cap = Math.max(16, arr.length);
  while (cap < need) cap *= 2;
  const out = sharedArray(Ctor, cap);
  out.set(arr.subarray(0, used) as never);
  return out;
}

/** Smallest power of two ≥ n (n ≥ 1). */
export function nextPow2(n: number): number {
  let c = 1;
  while (c < n) c *= 2;
  return c;
}

/** A store hash table of `slots` (a power of two) empty slots: two words each, all EMPTY (-1). */
export function newTable(slots: number): Int32Array {
  return sharedArray(Int32Array, slots * 2).fill(-1);
}
