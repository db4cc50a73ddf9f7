/**
 * The data directory's layout and the file-system steps that make it crash-safe:
 * `log-<seq>.vlog` (append-only write log), `snapshot-<seq>.vsnap` (the store as of the
 * start of log `<seq>`), `*.tmp` (a snapshot being written; removed when it fails and at startup) and `LOCK`
 * (pid and start time of the sidecar using the directory). Every name is made here and confined to the
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
  const tmp = `${name}.tmp`;
  const fd = openSync(inDir(dir, tmp), 'w', 0o600);
  try {
    try {
      write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(inDir(dir, tmp), inDir(dir, name));
  } catch (e) {
    // A failed write (e.g. a full disk) must not leave its partial file taking space.
    removeFile(dir, tmp);
    throw e;
  }
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
 * What identifies a running process beyond its pid, which the kernel reuses: the boot and
 * the process's start time (Linux /proc), or undefined where the platform does not say.
 */
export function processIdentity(pid: number): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is field 3, starttime 22.
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start ? `${boot}:${start}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the directory's LOCK for this process. The LOCK names the pid and its identity
 * ({@link processIdentity}); one whose process is gone (a crash) or whose pid now belongs
 * to another process is taken over. One held by a live sidecar (or by this process) is an
 * error, as two writers would corrupt the log; when liveness cannot be proven either way
 * the error says how to clear the LOCK by hand.
 */
export function lockDir(dir: string): () => void {
  const key = realpathSync(dir);
  const path = inDir(dir, 'LOCK');
  if (held.has(key)) throw new TypeError(`data directory ${dir} is already open in this process`);
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n${processIdentity(process.pid) ?? ''}\n`, { flag: 'wx', mode: 0o600 });
      held.add(key);
      return () => {
        held.delete(key);
        removeFile(dir, 'LOCK');
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
    }
    const [pidLine, identity = ''] = readFileSync(path, 'utf8').split('\n');
    const pid = Number(pidLine.trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      const now = processIdentity(pid);
      const reused = identity.trim() !== '' && now !== undefined && now !== identity.trim();
      if (!reused) {
        throw new TypeError(`data directory ${dir} is in use by process ${pid} (its LOCK file); stop that sidecar, ` +
          `or if process ${pid} is not a vtpu sidecar using this directory, delete ${path}`);
      }
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
