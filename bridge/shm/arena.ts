/**
 * One arena of the shared-memory tensor path: a file in the shared-memory directory,
 * mapped here (and by the client), whose pages are reused call after call (a fresh buffer
 * costs page faults on first touch: ~3 ms per MB on some VMs). A client writes request
 * bodies into its `.in` arena; the sidecar writes reply bodies into the `.out` arena it
 * made for that client, carving them with an {@link Allocator}.
 *
 * Files are named `vtpu-<pid>-<hex>.in|.out`, owner-only (0600), and unlinked once both
 * sides have mapped them, so a process that dies leaves nothing behind after that point;
 * {@link removeStaleArenas} clears files whose creator died before it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { VtpuError } from '../../engine/errors';
import type { ShmAddon } from './native';

/** Bytes at the start of every arena that hold its token (bodies never go there). */
export const HEAD_BYTES = 64;
/** Token bytes at offset 0: proof that both sides mapped the same file. */
export const TOKEN_BYTES = 16;
/** Bodies start on cache-line boundaries. */
export const ALIGN = 64;
/** Arena file names: creator pid, random hex, direction. */
export const ARENA_NAME = /^vtpu-(\d{1,10})-([0-9a-f]{16,64})\.(in|out)$/;

function param(reason: string): VtpuError {
  return new VtpuError('E_PARAM', `SHM: ${reason}`);
}

/** A mapped arena file. The mapping lives until its buffer is collected, after {@link close} too. */
export class Arena {
  readonly bytes: Uint8Array;

  private constructor(
    readonly path: string,
    readonly fd: number,
    readonly ino: number,
    readonly size: number,
    readonly buffer: ArrayBuffer,
  ) {
    this.bytes = new Uint8Array(buffer);
  }

  /**
   * Maps a client's `.in` arena after checking it is what a same-host client of ours made:
   * named as {@link ARENA_NAME} in `dir`, a regular file (no symlink) owned by this user,
   * closed to group and others, `size` bytes, holding `token` at offset 0 (E_PARAM otherwise).
   */
  static attach(addon: ShmAddon, dir: string, path: string, size: number, token: Buffer): Arena {
    const m = ARENA_NAME.exec(basename(path));
    if (!m || m[3] !== 'in' || resolve(dirname(path)) !== resolve(dir)) throw param(`arena must be a vtpu-<pid>-<hex>.in file in ${dir}, got ${JSON.stringify(path).slice(0, 200)}`);
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
    } catch (e) {
      throw param(`cannot open ${path} (${(e as NodeJS.ErrnoException).code}): not on this host?`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw param(`${path} is not a regular file`);
      if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw param(`${path} belongs to another user`);
      if ((st.mode & 0o077) !== 0) throw param(`${path} must be readable by its owner only (mode ${(st.mode & 0o777).toString(8)})`);
      if (st.size !== size) throw param(`${path} has ${st.size} bytes, the client said ${size}`);
      const a = new Arena(path, fd, st.ino, size, addon.map(fd, st.ino, size));
      if (!Buffer.from(a.buffer, 0, TOKEN_BYTES).equals(token)) throw param(`${path} does not hold the client's token`);
      return a;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Creates and maps a new owner-only `.out` arena of `size` bytes in `dir`, a fresh token at offset 0. */
  static create(addon: ShmAddon, dir: string, size: number): Arena {
    const path = join(dir, `vtpu-${process.pid}-${randomBytes(12).toString('hex')}.out`);
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      ftruncateSync(fd, size);
      addon.reserve(fd, 0, HEAD_BYTES);
      const a = new Arena(path, fd, fstatSync(fd).ino, size, addon.map(fd, fstatSync(fd).ino, size));
      randomBytes(TOKEN_BYTES).copy(Buffer.from(a.buffer, 0, TOKEN_BYTES));
      return a;
    } catch (e) {
      closeSync(fd);
      unlink(path);
      throw e;
    }
  }

  /** The token at offset 0. */
  get token(): Buffer {
    return Buffer.from(this.bytes.subarray(0, TOKEN_BYTES));
  }

  /** Closes the descriptor (the mapping stays while views of it live). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }

  private closed = false;
}

/** Unlinks `path`, ignoring a file already gone. */
export function unlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

/** True when a process with this pid exists (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes this user's arena files in `dir` whose creating process is gone; returns how many. */
export function removeStaleArenas(dir: string): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  for (const name of names) {
    const m = ARENA_NAME.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    try {
      if (uid >= 0 && statSync(join(dir, name)).uid !== uid) continue;
    } catch {
      continue;
    }
    unlink(join(dir, name));
    n++;
  }
  return n;
}

/**
 * First-fit allocation of ALIGN-aligned blocks in [HEAD_BYTES, size). Pages are reserved
 * (posix_fallocate) as the high-water mark rises, so a full file system fails an
 * allocation (the reply then goes as a frame) instead of faulting a mapped write.
 */
export class Allocator {
  /** Free blocks [start, end), sorted by start, never adjacent. */
  private free: [number, number][];
  private readonly used = new Map<number, number>();
  private reserved = HEAD_BYTES;

  constructor(private readonly arena: Arena, private readonly addon: ShmAddon) {
    this.free = [[HEAD_BYTES, arena.size]];
  }

  /** Bytes in live blocks. */
  get inUse(): number {
    let n = 0;
    for (const len of this.used.values()) n += len;
    return n;
  }

  /** Offset of a new block of `n` bytes, or -1 when none fits (or its pages cannot be reserved). */
  alloc(n: number): number {
    const len = Math.ceil(Math.max(n, 1) / ALIGN) * ALIGN;
    const i = this.free.findIndex(([s, e]) => e - s >= len);
    if (i < 0) return -1;
    const start = this.free[i][0];
    if (start + len > this.reserved) {
      try {
        this.addon.reserve(this.arena.fd, this.reserved, start + len - this.reserved);
      } catch {
        return -1;
      }
      this.reserved = start + len;
    }
    if (this.free[i][1] - start === len) this.free.splice(i, 1);
    else this.free[i][0] = start + len;
    this.used.set(start, len);
    return start;
  }

  /** True when a live block starts at `off` and holds at least `n` bytes. */
  owns(off: number, n: number): boolean {
    return (this.used.get(off) ?? -1) >= n;
  }

  /** Returns the block at `off`; false when no block starts there. */
  release(off: number): boolean {
    const len = this.used.get(off);
    if (len === undefined) return false;
    this.used.delete(off);
    let i = 0;
    while (i < this.free.length && this.free[i][0] < off) i++;
    this.free.splice(i, 0, [off, off + len]);
    // Merge with the neighbours.
    if (i + 1 < this.free.length && this.free[i][1] === this.free[i + 1][0]) {
      this.free[i][1] = this.free[i + 1][1];
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1][1] === this.free[i][0]) {
      this.free[i - 1][1] = this.free[i][1];
      this.free.splice(i, 1);
    }
    return true;
  }
}
