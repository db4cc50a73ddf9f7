/**
 * One append-only log file. A file starts with a header, `VTPULOG2 | u64 log number |
 * u64 sequence number of its first record | xxh3-64 of those 24 bytes`, then framed records
 * (./record) numbered on from the first; format 1 files (`VTPULOG1`, then unnumbered
 * records) are still read. {@link LogWriter.append} writes a record with one writev before it returns,
 * so a process crash loses nothing once it returned; the fsync policy decides when the
 * bytes are forced to the disk: `always` (fdatasync before append returns) or every N ms
 * (group commit from a timer, so a power loss may lose up to N ms of acknowledged writes).
 */
import { closeSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync, writevSync } from 'node:fs';
import { VtpuError } from '../../engine/errors';
import { checksum64, frameHeader, scanRecords, scanRecordsV1, type Scan } from './record';

/** First bytes of every log file. */
export const LOG_MAGIC = Buffer.from('VTPULOG2');
/** First bytes of a format 1 log file. */
export const LOG_MAGIC_V1 = Buffer.from('VTPULOG1');
/** Bytes of a log file's header. */
export const LOG_HEADER = 32;

/** The header of log `seq` whose first record is `first`. */
export function logHeader(seq: number, first: number): Buffer {
  const h = Buffer.alloc(LOG_HEADER);
  LOG_MAGIC.copy(h, 0);
  h.writeBigUInt64LE(BigInt(seq), 8);
  h.writeBigUInt64LE(BigInt(first), 16);
  h.set(checksum64(h.subarray(0, 24)), 24);
  return h;
}

/** When appended records are forced to disk: before each append returns, or every N ms. */
export type FsyncPolicy = 'always' | number;

/** An open log file taking appends. */
export class LogWriter {
  /** Bytes in the file. */
  size: number;
  /** Sequence number of the next record appended. */
  nextSeq: number;
  private fd: number;
  private dirty = false;
  private syncing = false;
  private closeAfterSync = false;
  /** Set when a write or sync failed: the file may not hold what was acknowledged. */
  private failure?: Error;

  /** Creates log number `seq` at `path`; its first record will be number `first`. */
  constructor(readonly path: string, private readonly fsync: FsyncPolicy, readonly seq: number, readonly first: number) {
    this.fd = openSync(path, 'wx', 0o600);
    writeAll(this.fd, [logHeader(seq, first)], 0);
    fdatasyncSync(this.fd);
    this.size = LOG_HEADER;
    this.nextSeq = first;
  }

  /**
   * Appends one record made of `parts`. Returns once it is in the file (and on disk with
   * `always`). On failure the file is cut back to its size before the call and the error
   * thrown, so a failed append never leaves a torn record before later ones.
   */
  append(parts: Uint8Array[]): void {
    if (this.failure) throw new VtpuError('E_INTERNAL', `durable log unusable after an earlier failure: ${this.failure.message}`);
    const header = frameHeader(this.nextSeq, parts);
    const before = this.size;
    try {
      this.size = before + writeAll(this.fd, [header, ...parts], before);
      this.nextSeq++;
      if (this.fsync === 'always') fdatasyncSync(this.fd);
      else this.dirty = true;
    } catch (e) {
      try {
        ftruncateSync(this.fd, before);
        this.size = before;
      } catch (e2) {
        this.failure = e2 as Error;
      }
      throw new VtpuError('E_INTERNAL', `durable log write failed: ${(e as Error).message}`);
    }
  }

  /** Starts an fdatasync when appends are pending and none runs (the group-commit tick). */
  syncSoon(): void {
    if (!this.dirty || this.syncing || this.fd < 0) return;
    this.dirty = false;
    this.syncing = true;
    fdatasync(this.fd, (err) => {
      this.syncing = false;
      if (err) {
        this.failure = err;
        process.emitWarning(`vtpu: durable log fsync failed: ${err.message}`);
      }
      if (this.closeAfterSync) this.close();
    });
  }

  /** Forces pending appends to disk and closes the file (after an fdatasync in progress ends). */
  close(): void {
    if (this.fd < 0) return;
    if (this.syncing) {
      this.closeAfterSync = true;
      return;
    }
    try {
      fdatasyncSync(this.fd);
    } finally {
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** A log file as read: its header fields (format 2) and its intact records. */
export interface LogRead extends Scan {
  /** 1 or 2; 0 when the file has no readable header. */
  format: 0 | 1 | 2;
  /** The log number its header names (format 2). */
  seq?: number;
  /** The sequence number of its first record (format 2). */
  first?: number;
  /** Bytes of header before the first record. */
  headerBytes: number;
  /** The whole file. */
  bytes: Buffer;
}

/** Reads a log file's header and intact records; a missing or damaged header reads as `format` 0. */
export function readLog(path: string): LogRead {
  const bytes = readFileSync(path);
  const magic = bytes.subarray(0, 8);
  if (magic.length === 8 && magic.equals(LOG_MAGIC_V1)) return { ...scanRecordsV1(bytes, 8), format: 1, headerBytes: 8, bytes };
  const headerOk = bytes.length >= LOG_HEADER && magic.equals(LOG_MAGIC) && Buffer.from(checksum64(bytes.subarray(0, 24))).equals(bytes.subarray(24, 32));
  if (!headerOk) {
    const why = bytes.length === 0 ? 'empty file' : bytes.length < LOG_HEADER ? 'short log header' : 'damaged log header';
    return { payloads: [], validBytes: 0, size: bytes.length, nextSeq: 0, torn: `${why} at byte 0`, format: 0, headerBytes: 0, bytes };
  }
  const seq = Number(bytes.readBigUInt64LE(8));
  const first = Number(bytes.readBigUInt64LE(16));
  return { ...scanRecords(bytes, LOG_HEADER, first), format: 2, seq, first, headerBytes: LOG_HEADER, bytes };
}

/** Writes every byte of `parts` at `pos` (short writes continued); returns the bytes written. */
export function writeAll(fd: number, parts: Uint8Array[], pos: number): number {
  let total = 0;
  for (const p of parts) total += p.length;
  let done = writevSync(fd, parts, pos);
  if (done === total) return total;
  // Rare (a signal, a full disk): finish part by part.
  let skip = done;
  for (const p of parts) {
    if (skip >= p.length) {
      skip -= p.length;
      continue;
    }
    let at = skip;
    skip = 0;
    while (at < p.length) {
      const n = writeSync(fd, p, at, p.length - at, pos + done);
      if (n <= 0) throw new Error('short write');
      at += n;
      done += n;
    }
  }
  return done;
}
