/**
 * The data directory's layout and the file-system steps that make it crash-safe:
 * `log-<seq>.vlog` (append-only write log), `snapshot-<seq>.vsnap` (the store as of the
 * start of log `<seq>`), `*.tmp` (a snapshot being written; removed at startup) and `LOCK`
 * (pid of the sidecar using the directory). Every name is made here and confined to the
 * directory.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, readdirSync, realpathSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

/** Sequence numbers are zero-padded so names sort in order. */
const SEQ_DIGITS = 12;
const NAME = /^(log|snapshot)-(\d{12})\.(vlog|vsnap)$/;

/** `name` inside `dir`; refuses anything that could leave it (separators, `..`, absolute). */
export function inDir(dir: string, name: string): string {
  if (name === '' || name === '.' || name === '..' || isAbsolute(name) || /[\\/\0]/.test(name)) {
    throw new TypeError(`data file name ${JSON.stringify(name)} would leave the data directory`);
  }
  return join(dir, name);
}

/** File name of log `seq`. */
export function logName(seq: number): string {
  return `log-${String(seq).padStart(SEQ_DIGITS, '0')}.vlog`;
}

/** File name of snapshot `seq`. */
export function snapshotName(seq: number): string {
  return `snapshot-${String(seq).padStart(SEQ_DIGITS, '0')}.vsnap`;
}

/** What the directory holds: log and snapshot sequence numbers (ascending) and leftover temp files. */
export interface Listing {
  logs: number[];
  snapshots: number[];
  temps: string[];
}

/** Lists the data files in `dir` (other files are left alone). */
export function listDir(dir: string): Listing {
  const out: Listing = { logs: [], snapshots: [], temps: [] };
  for (const name of readdirSync(dir)) {
    const m = NAME.exec(name);
    if (m) (m[1] === 'log' ? out.logs : out.snapshots).push(Number(m[2]));
    else if (name.endsWith('.tmp')) out.temps.push(name);
  }
  out.logs.sort((a, b) => a - b);
  out.snapshots.sort((a, b) => a - b);
  return out;
}

/** fsyncs the directory itself, so a create, rename or unlink in it survives power loss. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Cuts the file at `path` to `len` bytes and fsyncs it. */
export function truncateDurably(path: string, len: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, len);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `name` via a temp file: `write(fd)`, fsync, rename, fsync the directory. */
export function writeAtomic(dir: string, name: string, write: (fd: number) => void): void {
  const tmp = inDir(dir, `${name}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    write(fd);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, inDir(dir, name));
  syncDir(dir);
}

/** Removes `name` from `dir` if present. */
export function removeFile(dir: string, name: string): void {
  try {
    unlinkSync(inDir(dir, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Directories this process holds (a LOCK naming our own pid may be a dead namesake's). */
const held = new Set<string>();

/**
 * Takes the directory's LOCK for this process. A lock whose process is gone (a crash) is
 * taken over; one held by a live process (or by this one) is an error, as two writers
 * would corrupt the log.
 */
export function lockDir(dir: string): () => void {
  const key = realpathSync(dir);
  const path = inDir(dir, 'LOCK');
  if (held.has(key)) throw new TypeError(`data directory ${dir} is already open in this process`);
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      held.add(key);
      return () => {
        held.delete(key);
        removeFile(dir, 'LOCK');
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
    }
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new TypeError(`data directory ${dir} is in use by process ${pid} (its LOCK file)`);
    }
    removeFile(dir, 'LOCK');
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
