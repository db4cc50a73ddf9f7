/**
 * xxh3-128 checksums of phext bytes, as 32 lowercase hex digits (big-endian, like libphext/SQ).
 * hash-wasm compiles its WASM asynchronously, so: await {@link initChecksum} once at startup,
 * then call {@link checksumSync} per request.
 */
import { createXXHash128, type IHasher } from 'hash-wasm';
import { VtpuError } from '../errors';

let hasher: IHasher | undefined;
let pending: Promise<IHasher> | undefined;

/** Compiles the hasher once; later calls return the same promise. Safe to call from anywhere. */
export function initChecksum(): Promise<void> {
  pending ??= createXXHash128().then((h) => (hasher = h));
  return pending.then(() => undefined);
}

/** True once {@link initChecksum} has finished. */
export function checksumReady(): boolean {
  return hasher !== undefined;
}

/**
 * xxh3-128 of `bytes` as 32 lowercase hex digits.
 * @throws E_INTERNAL when {@link initChecksum} has not completed (a startup bug, not bad input).
 */
export function checksumSync(bytes: Uint8Array): string {
  if (!hasher) {
    throw new VtpuError('E_INTERNAL', 'phext checksum is not initialised; await initChecksum() at startup');
  }
  // One shared hasher is safe: init/update/digest run synchronously, nothing interleaves.
  return hasher.init().update(bytes).digest('hex');
}

/** xxh3-128 of `bytes` as 32 lowercase hex digits, initialising on first use. */
export async function checksum(bytes: Uint8Array): Promise<string> {
  await initChecksum();
  return checksumSync(bytes);
}
