/**
 * Framing of log and snapshot records:
 * `u32 length | u64 sequence number | 8-byte xxh3-64 of (length, sequence, payload) | payload`
 * (little-endian). Sequence numbers run on by one from record to record, so a reader knows
 * which record it expects next: a checksum or sequence mismatch stops the scan there, and
 * {@link findRecord} looks past the damage for a later intact record, which is what tells
 * a torn tail (nothing intact after it) from corruption (intact records after it).
 * Format 1 (`u32 length | xxh3-64 of payload | payload`, no sequence) is still read.
 * hash-wasm compiles its WASM asynchronously: await {@link initRecords} before framing.
 */
import { createXXHash3, type IHasher } from 'hash-wasm';
import { VtpuError } from '../../engine/errors';

/** Bytes before a record's payload. */
export const FRAME_HEADER = 20;
/** Bytes before a record's payload in format 1. */
export const FRAME_HEADER_V1 = 12;
/** Largest payload one record may hold (the length field is 32 bits). */
export const MAX_PAYLOAD = 0xffffffff - FRAME_HEADER;
/** How many sequence numbers past a damaged record {@link findRecord} looks for. */
const RESYNC_SPAN = 64;

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

/** The header of record `seq` whose payload is `parts` concatenated. */
export function frameHeader(seq: number, parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > MAX_PAYLOAD) throw new VtpuError('E_LIMIT', `log record of ${len} bytes is over ${MAX_PAYLOAD}`);
  const h = Buffer.allocUnsafe(FRAME_HEADER);
  h.writeUInt32LE(len, 0);
  writeSeq(h, 4, seq);
  h.set(checksum64(h.subarray(0, 12), ...parts), 12);
  return h;
}

/** One whole record (header and payload) in one buffer. */
export function frame(seq: number, ...parts: Uint8Array[]): Buffer {
  return Buffer.concat([frameHeader(seq, parts), ...parts]);
}

/** Result of {@link scanRecords}. */
export interface Scan {
  /** Payloads of the intact records, in order (views into the scanned bytes). */
  payloads: Uint8Array[];
  /** Bytes up to the end of the last intact record. */
  validBytes: number;
  /** Bytes scanned (the file's size). */
  size: number;
  /** Sequence number the next record would carry. */
  nextSeq: number;
  /** Why scanning stopped before the end, or undefined when every byte was an intact record. */
  torn?: string;
}

/** Splits `bytes` from `start` into the payloads of records `firstSeq`, `firstSeq + 1`, …, stopping at the first damaged one. */
export function scanRecords(bytes: Uint8Array, start: number, firstSeq: number): Scan {
  const payloads: Uint8Array[] = [];
  let at = start;
  let seq = firstSeq;
  const stop = (torn: string): Scan => ({ payloads, validBytes: at, size: bytes.length, nextSeq: seq, torn });
  while (at < bytes.length) {
    const r = recordAt(bytes, at);
    if (typeof r === 'string') return stop(`${r} at byte ${at}`);
    if (r.seq !== seq) return stop(`record ${r.seq} where record ${seq} belongs, at byte ${at}`);
    payloads.push(r.payload);
    at = r.end;
    seq++;
  }
  return { payloads, validBytes: at, size: bytes.length, nextSeq: seq };
}

/**
 * The first intact record after byte `from` whose sequence number is in `[seq, seq + 64)`,
 * or undefined: a hit means the damage at `from` is followed by data, so it is not a torn tail.
 */
export function findRecord(bytes: Uint8Array, from: number, seq: number): { at: number; seq: number } | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const needle = Buffer.allocUnsafe(8);
  let best: { at: number; seq: number } | undefined;
  for (let s = seq; s < seq + RESYNC_SPAN; s++) {
    writeSeq(needle, 0, s);
    for (let i = buf.indexOf(needle, from + 4); i >= 0 && (best === undefined || i - 4 < best.at); i = buf.indexOf(needle, i + 1)) {
      const r = recordAt(bytes, i - 4);
      if (typeof r !== 'string' && r.seq === s) {
        best = { at: i - 4, seq: s };
        break;
      }
    }
  }
  return best;
}

/** Format 1: splits `bytes` from `start` into record payloads, stopping at the first torn or corrupt one. */
export function scanRecordsV1(bytes: Uint8Array, start = 0): Scan {
  const payloads: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = start;
  const stop = (torn: string): Scan => ({ payloads, validBytes: at, size: bytes.length, nextSeq: payloads.length, torn });
  while (at < bytes.length) {
    if (bytes.length - at < FRAME_HEADER_V1) return stop(`short header at byte ${at}`);
    const len = view.getUint32(at, true);
    if (bytes.length - at - FRAME_HEADER_V1 < len) return stop(`short record at byte ${at}`);
    const payload = bytes.subarray(at + FRAME_HEADER_V1, at + FRAME_HEADER_V1 + len);
    if (!equal8(checksum64(payload), bytes, at + 4)) return stop(`checksum mismatch at byte ${at}`);
    payloads.push(payload);
    at += FRAME_HEADER_V1 + len;
  }
  return { payloads, validBytes: at, size: bytes.length, nextSeq: payloads.length };
}

/** The intact record at `at`, or why there is none. */
function recordAt(bytes: Uint8Array, at: number): { seq: number; payload: Uint8Array; end: number } | string {
  if (bytes.length - at < FRAME_HEADER) return 'short header';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(at, true);
  if (bytes.length - at - FRAME_HEADER < len) return 'short record';
  const payload = bytes.subarray(at + FRAME_HEADER, at + FRAME_HEADER + len);
  if (!equal8(checksum64(bytes.subarray(at, at + 12), payload), bytes, at + 12)) return 'checksum mismatch';
  return { seq: view.getUint32(at + 4, true) + view.getUint32(at + 8, true) * 2 ** 32, payload, end: at + FRAME_HEADER + len };
}

function writeSeq(out: Buffer, at: number, seq: number): void {
  out.writeUInt32LE(seq % 2 ** 32, at);
  out.writeUInt32LE(Math.floor(seq / 2 ** 32), at + 4);
}

function equal8(sum: Uint8Array, bytes: Uint8Array, at: number): boolean {
  for (let k = 0; k < 8; k++) if (sum[k] !== bytes[at + k]) return false;
  return true;
}
