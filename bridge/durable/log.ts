/**
 * One append-only log file. A file starts with an 8-byte magic, then framed records
 * (./record). {@link LogWriter.append} writes a record with one writev before it returns,
 * so a process crash loses nothing once it returned; the fsync policy decides when the
 * bytes are forced to the disk: `always` (fdatasync before append returns) or every N ms
 * (group commit from a timer, so a power loss may lose up to N ms of acknowledged writes).
 */
import { closeSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync, writevSync } from 'node:fs';
import { VtpuError } from '../../engine/errors';
import { frameHeader, scanRecords, type Scan } from './record';

/** First bytes of every log file. */
export const LOG_MAGIC = Buffer.from('VTPULOG1');

/** When appended records are forced to disk: before each append returns, or every N ms. */
export type FsyncPolicy = 'always' | number;

/** An open log file taking appends. */
export class LogWriter {
  /** Bytes in the file. */
  size: number;
  private fd: number;
  private dirty = false;
  private syncing = false;
  private closeAfterSync = false;
  /** Set when a write or sync failed: the file may not hold what was acknowledged. */
  private failure?: Error;

  /** Creates (or, when `create` is false, opens for appending) the log at `path`. */
  constructor(readonly path: string, private readonly fsync: FsyncPolicy, create: boolean) {
    this.fd = openSync(path, create ? 'wx' : 'r+', 0o600);
    this.size = fstatSync(this.fd).size;
    if (create) {
      writeAll(this.fd, [LOG_MAGIC], 0);
      fdatasyncSync(this.fd);
      this.size = LOG_MAGIC.length;
    }
  }

  /**
   * Appends one record made of `parts`. Returns once it is in the file (and on disk with
   * `always`). On failure the file is cut back to its size before the call and the error
   * thrown, so a failed append never leaves a torn record before later ones.
   */
  append(parts: Uint8Array[]): void {
    if (this.failure) throw new VtpuError('E_INTERNAL', `durable log unusable after an earlier failure: ${this.failure.message}`);
    const header = frameHeader(parts);
    const before = this.size;
    try {
      this.size = before + writeAll(this.fd, [header, ...parts], before);
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

/** Reads a log file's intact records. An empty or magic-less file reads as torn at byte 0. */
export function readLog(path: string): Scan {
  const bytes = readFileSync(path);
  if (bytes.length < LOG_MAGIC.length || !bytes.subarray(0, LOG_MAGIC.length).equals(LOG_MAGIC)) {
    return { payloads: [], validBytes: 0, size: bytes.length, torn: bytes.length === 0 ? 'empty file' : 'no log header' };
  }
  return scanRecords(bytes, LOG_MAGIC.length);
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
