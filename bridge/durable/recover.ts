/**
 * Recovery of a data directory into an empty store: the newest snapshot, then every later
 * log in order, checking that they follow on (each log's first record number is the one
 * after the snapshot's or the previous log's last). A torn tail, an incomplete last record
 * of the newest log with nothing intact after it, is what a crash mid-write leaves: it is
 * dropped and cut off. Anything else (a damaged record with intact ones after it, damage in
 * an older log or the snapshot, a missing log or snapshot) would lose acknowledged writes:
 * recovery refuses with a {@link DataLossError} naming the file, the byte and what is lost,
 * unless the mode is `truncate`, which keeps the intact history before the damage and moves
 * everything after it aside into `<file>.cut-<byte>` copies.
 */
import { existsSync, renameSync } from 'node:fs';
import type { Store } from '../../engine/store/store';
import { VtpuError } from '../../engine/errors';
import { applyRecord } from './codec';
import { inDir, listDir, logName, removeFile, snapshotName, syncDir, truncateDurably, writeAtomic } from './files';
import { LOG_HEADER, readLog, writeAll } from './log';
import { findRecord } from './record';
import { loadSnapshot } from './snapshot';

/** What to do about damage that is not a torn tail: refuse to start (default), or cut it off. */
export type RecoverMode = 'refuse' | 'truncate';

/** What recovery found. */
export interface Recovery {
  snapshotRows: number;
  logRecords: number;
  /** Bytes of a torn final record that were dropped (0 when the log ended cleanly). */
  tornBytes: number;
  /** With mode `truncate`: the damage cut off, and the copies that keep what was cut. */
  cut?: { damage: string; copies: string[] };
  ms: number;
}

/** Recovery would lose acknowledged writes: names the file, the byte offset and what is lost. */
export class DataLossError extends VtpuError {
  constructor(readonly file: string, readonly offset: number, message: string) {
    super('E_INTERNAL', message);
    this.name = 'DataLossError';
  }
}

/** Where recovery stopped reading: the file, the byte, why, and what lies beyond. */
interface Damage {
  file: string;
  offset: number;
  why: string;
  lost: string;
  /** Files after the damaged one (whole), moved aside in truncate mode. */
  later: string[];
  /** The damaged file is cut at `offset` (a log) rather than moved aside whole. */
  cutAt?: number;
}

/** The result of {@link recoverDir}: the recovery report and where the next log starts. */
export interface Recovered {
  recovery: Recovery;
  /** The recovered snapshot's number (0 when none). */
  base: number;
  /** Number of the log to open next. */
  nextLog: number;
  /** Sequence number of the next record. */
  nextRecord: number;
}

/** Recovers `dir` into `store` (which should be empty); see the module comment. */
export function recoverDir(dir: string, store: Store, mode: RecoverMode): Recovered {
  const t0 = performance.now();
  const { logs, snapshots, temps } = listDir(dir);
  for (const t of temps) removeFile(dir, t);
  const base = snapshots.length ? snapshots[snapshots.length - 1] : 0;
  const replay = logs.filter((s) => s >= base);
  const later = (k: number) => replay.slice(k).map(logName);
  let snapshotRows = 0;
  let logRecords = 0;
  let tornBytes = 0;
  /** Sequence number of the next record; undefined after format 1 files, which carry none. */
  let expected: number | undefined = 1;
  let damage: Damage | undefined;
  if (base) {
    try {
      const s = loadSnapshot(dir, base, store);
      snapshotRows = s.rows;
      expected = s.records === undefined ? undefined : s.records + 1;
      // A snapshot is written after its log was created, so a format 2 one always has it.
      if (expected !== undefined && replay[0] !== base) {
        damage = { file: logName(base), offset: 0, why: 'the file is missing', lost: `every write after ${snapshotName(base)} (from record ${expected})`, later: later(0) };
      }
    } catch (e) {
      if (!(e instanceof VtpuError)) throw e;
      store.clear();
      snapshotRows = 0;
      damage = { file: snapshotName(base), offset: 0, why: e.message, lost: `the whole snapshot and ${replay.length} log(s) after it`, later: later(0) };
    }
  }
  for (let k = 0; k < replay.length && !damage; k++) {
    const seq = replay[k];
    const name = logName(seq);
    const path = inDir(dir, name);
    const r = readLog(path);
    const last = k === replay.length - 1;
    if (r.format === 0) {
      if (last && r.size <= LOG_HEADER) {
        // Creating the newest log was cut short: it never held a record.
        removeFile(dir, name);
        tornBytes = r.size;
        break;
      }
      damage = { file: name, offset: 0, why: r.torn!, lost: `the whole file (${r.size} bytes)${laterText(later(k + 1))}`, later: later(k + 1) };
      break;
    }
    if (r.format === 2) {
      if (r.seq !== seq) {
        damage = { file: name, offset: 8, why: `its header names log ${r.seq} (renamed or copied?)`, lost: `the whole file${laterText(later(k + 1))}`, later: later(k + 1) };
        break;
      }
      if (expected !== undefined && r.first !== expected) {
        damage = r.first! > expected
          ? { file: name, offset: 0, why: `records ${expected} to ${r.first! - 1} are missing before it (a log or snapshot that held them is gone)`, lost: `those ${r.first! - expected} writes; starting would also replay this file and later ones out of order`, later: later(k) }
          : { file: name, offset: 0, why: `it starts at record ${r.first}, but records up to ${expected - 1} came before it`, lost: `the whole file${laterText(later(k + 1))}`, later: later(k) };
        break;
      }
    }
    r.payloads.forEach((p, i) => {
      try {
        applyRecord(store, p);
      } catch (e) {
        // E.g. a batch logged under a larger --max-batch than this start's.
        throw new VtpuError('E_INTERNAL', `replaying ${name} record ${i + 1}: ${(e as Error).message}`);
      }
    });
    logRecords += r.payloads.length;
    expected = r.format === 2 ? r.nextSeq : undefined;
    if (!r.torn) continue;
    const after = r.format === 2 ? findRecord(r.bytes, r.validBytes, r.nextSeq) : undefined;
    if (last && !after) {
      tornBytes = r.size - r.validBytes;
      truncateDurably(path, r.validBytes);
      break;
    }
    const intact = after ? `, intact records from ${after.seq} at byte ${after.at} on among them` : '';
    damage = {
      file: name, offset: r.validBytes, why: r.torn!, cutAt: r.validBytes, later: later(k + 1),
      lost: `the ${r.size - r.validBytes} bytes from there (record ${r.nextSeq} onward${intact})${laterText(later(k + 1))}`,
    };
  }
  let cut: Recovery['cut'];
  if (damage) {
    const what = `data directory ${dir}: ${damage.file} is damaged at byte ${damage.offset}: ${damage.why}; lost would be ${damage.lost}`;
    if (mode !== 'truncate') {
      throw new DataLossError(damage.file, damage.offset, `${what}. Refusing to start rather than drop acknowledged writes: restore the file, ` +
        `or start with --recover=truncate to keep only what comes before that point (what is cut is kept in copies named <file>.cut-<byte>)`);
    }
    cut = { damage: what, copies: cutOff(dir, damage) };
  }
  const left = listDir(dir);
  // Snapshot N is followed by log N: when that log is gone (cut, or never held a record), reuse its number.
  const reuse = base > 0 && left.snapshots.includes(base) && !left.logs.some((s) => s >= base);
  const nextLog = reuse ? base : Math.max(base, ...left.logs, 0) + 1;
  const nextRecord = expected ?? 1;
  return { recovery: { snapshotRows, logRecords, tornBytes, cut, ms: performance.now() - t0 }, base, nextLog, nextRecord };
}

function laterText(later: string[]): string {
  return later.length ? ` and ${later.length} later log(s) (${later.join(', ')})` : '';
}

/** Truncate mode: copies what lies beyond the damage aside, then cuts it; returns the copies' names. */
function cutOff(dir: string, d: Damage): string[] {
  const copies: string[] = [];
  if (d.cutAt !== undefined && d.cutAt > LOG_HEADER) {
    const path = inDir(dir, d.file);
    const bytes = readLog(path).bytes;
    const copy = freeName(dir, `${d.file}.cut-${d.cutAt}`);
    // The copy is on disk (fsynced, renamed into place) before the original is cut.
    writeAtomic(dir, copy, (fd) => writeAll(fd, [bytes.subarray(d.cutAt)], 0));
    copies.push(copy);
    truncateDurably(path, d.cutAt);
  } else if (existsSync(inDir(dir, d.file))) {
    copies.push(moveAside(dir, d.file));
  }
  for (const f of d.later) if (f !== d.file) copies.push(moveAside(dir, f));
  syncDir(dir);
  return copies;
}

function moveAside(dir: string, name: string): string {
  const copy = freeName(dir, `${name}.cut-0`);
  renameSync(inDir(dir, name), inDir(dir, copy));
  return copy;
}

/** `name`, or `name.N` for the first N not taken (an earlier truncation may have used it). */
function freeName(dir: string, name: string): string {
  let out = name;
  for (let n = 1; existsSync(inDir(dir, out)); n++) out = `${name}.${n}`;
  return out;
}
