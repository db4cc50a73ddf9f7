/**
 * Durability for one store: recovery at open (latest snapshot, then every later log in
 * order, a torn final record dropped and cut off), then every store write appended to the
 * current log before the write is applied (so before its reply), periodic snapshots that
 * rotate the log and delete what they supersede. See README "Durability".
 */
import { mkdirSync } from 'node:fs';
import type { Store } from '../../engine/store/store';
import { VtpuError } from '../../engine/errors';
import { applyRecord, encodeWrite } from './codec';
import { inDir, listDir, lockDir, logName, removeFile, snapshotName, syncDir, truncateDurably } from './files';
import { LogWriter, readLog, type FsyncPolicy } from './log';
import { initRecords } from './record';
import { loadSnapshot, writeSnapshot } from './snapshot';

/** When to snapshot: after this many logged writes, or every this many seconds (with writes). */
export type SnapshotPolicy = { writes: number } | { seconds: number };

/** Options of {@link Journal.open}. */
export interface DurableOptions {
  /** The data directory (created if missing). */
  dir: string;
  /** `always` (default): fdatasync before each write is acknowledged; N: group commit every N ms. */
  fsync?: FsyncPolicy;
  /** Default `{ writes: 100000 }`. */
  snapshotEvery?: SnapshotPolicy;
}

/** What recovery found. */
export interface Recovery {
  snapshotRows: number;
  logRecords: number;
  /** Bytes of a torn final record that were dropped (0 when the log ended cleanly). */
  tornBytes: number;
  ms: number;
}

/** Checks durable options at the boundary; TypeErrors name the option. */
export function checkDurableOptions(o: unknown): Required<DurableOptions> {
  if (typeof o !== 'object' || o === null) throw new TypeError(`option 'durable' must be an object`);
  const { dir, fsync = 'always', snapshotEvery = { writes: 100_000 }, ...extra } = o as DurableOptions;
  const unknown = Object.keys(extra)[0];
  if (unknown !== undefined) throw new TypeError(`unknown durable option '${unknown}'`);
  if (typeof dir !== 'string' || dir === '' || dir.includes('\0')) throw new TypeError(`option 'durable.dir' must be a directory path`);
  if (fsync !== 'always' && !(Number.isSafeInteger(fsync) && (fsync as number) >= 1)) {
    throw new TypeError(`option 'durable.fsync' must be 'always' or a whole number of milliseconds >= 1, got ${String(fsync)}`);
  }
  const n = typeof snapshotEvery === 'object' && snapshotEvery !== null
    ? ('writes' in snapshotEvery ? snapshotEvery.writes : (snapshotEvery as { seconds?: number }).seconds) : undefined;
  if (!Number.isSafeInteger(n) || (n as number) < 1) {
    throw new TypeError(`option 'durable.snapshotEvery' must be {writes: N} or {seconds: N} with N >= 1`);
  }
  return { dir, fsync, snapshotEvery };
}

/** The durable log and snapshots of one store. */
export class Journal {
  /** What recovery found at open. */
  recovery!: Recovery;
  private writer!: LogWriter;
  private sinceSnapshot = 0;
  private snapshotQueued = false;
  private closed = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private unlock!: () => void;

  private constructor(private readonly store: Store, private readonly o: Required<DurableOptions>) {}

  /**
   * Locks the directory, recovers its contents into `store` (which should be empty), and
   * logs every later write of `store`. Throws when the directory is in use or damaged
   * beyond a torn final record.
   */
  static async open(store: Store, opts: DurableOptions): Promise<Journal> {
    const o = checkDurableOptions(opts);
    await initRecords();
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    const j = new Journal(store, o);
    j.unlock = lockDir(o.dir);
    try {
      j.recover();
    } catch (e) {
      j.unlock();
      throw e;
    }
    store.onWrite((w) => j.append(encodeWrite(w)));
    if (typeof o.fsync === 'number') j.every(o.fsync, () => j.writer.syncSoon());
    if ('seconds' in o.snapshotEvery) j.every(o.snapshotEvery.seconds * 1000, () => j.sinceSnapshot > 0 && j.snapshot());
    return j;
  }

  /** Writes a snapshot now and rotates the log (the old log and snapshot are deleted after). */
  snapshot(): void {
    this.snapshotQueued = false;
    if (this.closed) return;
    const seq = this.rotate();
    try {
      writeSnapshot(this.o.dir, seq, this.store);
    } catch (e) {
      // The rotated logs are still there, so nothing is lost; the next snapshot retries.
      process.emitWarning(`vtpu: snapshot ${snapshotName(seq)} failed: ${(e as Error).message}`);
      return;
    }
    this.prune(seq);
  }

  /** Forces the log to disk, stops the timers and releases the directory. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    try {
      this.writer.close();
    } finally {
      this.unlock();
    }
  }

  private append(parts: Uint8Array[]): void {
    if (this.closed) throw new VtpuError('E_INTERNAL', 'the durable log is closed');
    this.writer.append(parts);
    this.sinceSnapshot++;
    const every = this.o.snapshotEvery;
    if ('writes' in every && this.sinceSnapshot >= every.writes && !this.snapshotQueued) {
      // After the write this record describes has been applied: snapshot between requests.
      this.snapshotQueued = true;
      setImmediate(() => this.snapshot());
    }
  }

  private recover(): void {
    const t0 = performance.now();
    const dir = this.o.dir;
    const { logs, snapshots, temps } = listDir(dir);
    for (const t of temps) removeFile(dir, t);
    const base = snapshots.length ? snapshots[snapshots.length - 1] : 0;
    const snapshotRows = base ? loadSnapshot(dir, base, this.store) : 0;
    const replay = logs.filter((s) => s >= base);
    let logRecords = 0;
    let tornBytes = 0;
    replay.forEach((seq, k) => {
      const path = inDir(dir, logName(seq));
      const scan = readLog(path);
      if (scan.torn && k < replay.length - 1) {
        throw new VtpuError('E_INTERNAL', `log ${logName(seq)} is damaged (${scan.torn}) and later logs exist; refusing to skip writes`);
      }
      scan.payloads.forEach((p, r) => {
        try {
          applyRecord(this.store, p);
        } catch (e) {
          // E.g. a batch logged under a larger --max-batch than this start's.
          throw new VtpuError('E_INTERNAL', `replaying ${logName(seq)} record ${r + 1}: ${(e as Error).message}`);
        }
      });
      logRecords += scan.payloads.length;
      if (scan.torn) {
        tornBytes = scan.size - scan.validBytes;
        // Cut the torn tail so this log ends cleanly before later ones; drop it if nothing is left.
        if (scan.validBytes === 0) removeFile(dir, logName(seq));
        else truncateDurably(path, scan.validBytes);
      }
    });
    this.prune(base);
    const next = Math.max(base, ...replay, 0) + 1;
    this.writer = new LogWriter(inDir(dir, logName(next)), this.o.fsync, true);
    syncDir(dir);
    this.recovery = { snapshotRows, logRecords, tornBytes, ms: performance.now() - t0 };
  }

  /** Closes the current log and opens the next; returns the new log's sequence number. */
  private rotate(): number {
    const seq = Number(/(\d+)\.vlog$/.exec(this.writer.path)![1]) + 1;
    this.writer.close();
    this.writer = new LogWriter(inDir(this.o.dir, logName(seq)), this.o.fsync, true);
    syncDir(this.o.dir);
    this.sinceSnapshot = 0;
    return seq;
  }

  /** Deletes logs and snapshots older than snapshot `seq` (which holds all they held). */
  private prune(seq: number): void {
    const { logs, snapshots } = listDir(this.o.dir);
    for (const s of logs) if (s < seq) removeFile(this.o.dir, logName(s));
    for (const s of snapshots) if (s < seq) removeFile(this.o.dir, snapshotName(s));
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }
}
