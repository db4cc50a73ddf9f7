/**
 * Durability for one store: recovery at open (./recover: latest snapshot, then every later
 * log in order, a torn final record dropped and cut off), then every store write appended to the
 * current log before the write is applied (so before its reply), periodic snapshots that
 * rotate the log and delete what they supersede. See README "Durability".
 */
import { mkdirSync } from 'node:fs';
import type { Store } from '../../engine/store/store';
import { VtpuError } from '../../engine/errors';
import { encodeWrite } from './codec';
import { inDir, listDir, lockDir, logName, removeFile, snapshotName, syncDir } from './files';
import { LogWriter, type FsyncPolicy } from './log';
import { initRecords } from './record';
import { writeSnapshot } from './snapshot';
import { recoverDir, type RecoverMode, type Recovery } from './recover';

export type { Recovery, RecoverMode } from './recover';

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
  /** Damage beyond a torn tail: `refuse` to start (default), or `truncate` it, keeping copies of what is cut. */
  recover?: RecoverMode;
}

/** Checks durable options at the boundary; TypeErrors name the option. */
export function checkDurableOptions(o: unknown): Required<DurableOptions> {
  if (typeof o !== 'object' || o === null) throw new TypeError(`option 'durable' must be an object`);
  const { dir, fsync = 'always', snapshotEvery = { writes: 100_000 }, recover = 'refuse', ...extra } = o as DurableOptions;
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
  if (recover !== 'refuse' && recover !== 'truncate') throw new TypeError(`option 'durable.recover' must be 'refuse' or 'truncate', got ${String(recover)}`);
  return { dir, fsync, snapshotEvery, recover };
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
   * logs every later write of `store`. Throws when the directory is in use, or (a
   * DataLossError) damaged beyond a torn final record unless `recover` is `truncate`.
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
      writeSnapshot(this.o.dir, seq, this.store, this.writer.first - 1);
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
    const r = recoverDir(this.o.dir, this.store, this.o.recover);
    this.prune(r.base);
    this.writer = new LogWriter(inDir(this.o.dir, logName(r.nextLog)), this.o.fsync, r.nextLog, r.nextRecord);
    syncDir(this.o.dir);
    this.recovery = r.recovery;
  }

  /** Closes the current log and opens the next; returns the new log's sequence number. */
  private rotate(): number {
    const seq = this.writer.seq + 1;
    const first = this.writer.nextSeq;
    this.writer.close();
    this.writer = new LogWriter(inDir(this.o.dir, logName(seq)), this.o.fsync, seq, first);
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
