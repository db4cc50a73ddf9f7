/**
 * Framing of log and snapshot records: `u32 length | 8-byte xxh3-64 of the payload | payload`
 * (little-endian length). A reader stops at the first frame that is short or whose checksum
 * does not match, so a record torn by a crash mid-write is detected and never applied.
 * hash-wasm compiles its WASM asynchronously: await {@link initRecords} before framing.
 */
import { createXXHash3, type IHasher } from 'hash-wasm';
import { VtpuError } from '../../engine/errors';

/** Bytes before a record's payload. */
export const FRAME_HEADER = 12;
/** Largest payload one record may hold (the length field is 32 bits). */
export const MAX_PAYLOAD = 0xffffffff - FRAME_HEADER;

let hasher: IHasher | undefined;
let pending: Promise<IHasher> | undefined;

/** Compiles the checksum once; later calls share the promise. */
export function initRecords(): Promise<void> {
  pending ??= createXXHash3().then((h) => (hasher = h));
  return pending.then(() => undefined);
}

/** xxh3-64 of the concatenation of `parts` (8 bytes). */
export function checksum64(...parts: Uint8Array[]): Uint8Array {
  if (!hasher) throw new VtpuError('E_INTERNAL', 'durable records are not initialised; await initRecords() first');
  // One shared hasher is safe: init/update/digest run synchronously, nothing interleaves.
  const h = hasher.init();
  for (const p of parts) h.update(p);
  return h.digest('binary');
}

/** The header (length + checksum) of a record whose payload is `parts` concatenated. */
export function frameHeader(parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > MAX_PAYLOAD) throw new VtpuError('E_LIMIT', `log record of ${len} bytes is over ${MAX_PAYLOAD}`);
  const h = Buffer.allocUnsafe(FRAME_HEADER);
  h.writeUInt32LE(len, 0);
  h.set(checksum64(...parts), 4);
  return h;
}

/** One whole record (header and payload) in one buffer. */
export function frame(...parts: Uint8Array[]): Buffer {
  return Buffer.concat([frameHeader(parts), ...parts]);
}

/** Result of {@link scanRecords}. */
export interface Scan {
  /** Payloads of the intact records, in order (views into the scanned bytes). */
  payloads: Uint8Array[];
  /** Bytes up to the end of the last intact record. */
  validBytes: number;
  /** Bytes scanned (the file's size). */
  size: number;
  /** Why scanning stopped before the end, or undefined when every byte was an intact record. */
  torn?: string;
}

/** Splits `bytes` from `start` into record payloads, stopping at the first torn or corrupt one. */
export function scanRecords(bytes: Uint8Array, start = 0): Scan {
  const payloads: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = start;
  while (at < bytes.length) {
    if (bytes.length - at < FRAME_HEADER) return { payloads, validBytes: at, size: bytes.length, torn: `short header at byte ${at}` };
    const len = view.getUint32(at, true);
    if (bytes.length - at - FRAME_HEADER < len) return { payloads, validBytes: at, size: bytes.length, torn: `short record at byte ${at}` };
    const payload = bytes.subarray(at + FRAME_HEADER, at + FRAME_HEADER + len);
    const sum = checksum64(payload);
    for (let k = 0; k < 8; k++) {
      if (sum[k] !== bytes[at + 4 + k]) return { payloads, validBytes: at, size: bytes.length, torn: `checksum mismatch at byte ${at}` };
    }
    payloads.push(payload);
    at += FRAME_HEADER + len;
  }
  return { payloads, validBytes: at, size: bytes.length };
}
