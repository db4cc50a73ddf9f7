/**
 * The sidecar's side of the shared-memory tensor path (protocol.json → ops.SHM). A client
 * on this host opens a link once per connection: its `.in` arena (request bodies) and an
 * `.out` arena the sidecar makes for it (reply bodies). Then a request header may carry
 * `shm: {k, b, f}`: `k` the link, `b` one entry per body (`[offset, length]` in the `.in`
 * arena, or null for the next ZeroMQ frame), `f` offsets of `.out` blocks the client no
 * longer uses. Reply bodies of at least `minBytes` go into the `.out` arena and the reply
 * header lists them the same way. Every offset and length is checked against its arena
 * (E_FRAME), so a header can never make the sidecar read or write outside it.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename } from 'node:path';
import { VtpuError } from '../../engine/errors';
import { ALIGN, Allocator, ARENA_NAME, Arena, HEAD_BYTES, pidAlive, removeStaleArenas, TOKEN_BYTES, unlink } from './arena';
import { shmAddon, unavailableReason } from './native';
import type { ArenaSpan } from './span';
import { bellAddon } from '../experts_bell';

/** Bodies from this size on travel through the arenas (smaller ones cost less as frames). */
export const SHM_MIN_BYTES = 32 * 1024;
/** Largest arena either side may have. */
export const MAX_ARENA_BYTES = 2 ** 31;
/** Most links open at once (each holds two descriptors and two mappings). */
export const MAX_LINKS = 1024;
/** How often links of clients that died are dropped. */
const SWEEP_MS = 5_000;

/** One client connection's pair of arenas. */
interface Link {
  key: string;
  pid: number;
  input: Arena;
  output: Arena;
  alloc: Allocator;
  /** What requests over this link see of it (made once: small calls allocate nothing). */
  handle: LinkHandle;
  /** The link's doorbell (native/experts_bell.c), once the client asked for one. */
  bell?: object;
}

/** A reply body's place (given whole or in pieces): `[offset, length]` in the `.out` arena, or null to send it as a frame. */
export type Placer = (body: Uint8Array | Uint8Array[]) => [number, number] | null;

/** One request's view of its link. */
export interface LinkHandle {
  /** Where a reply body goes: a block of `.out` (copied there, unless it was written in one from {@link reserve}), or null: a frame. */
  place: Placer;
  /** Where `view` lies in this link's `.in` arena, for another thread to map it; null when elsewhere. */
  span(view: ArrayBufferView): ArenaSpan | null;
  /** A `.out` block of `n` bytes to write a reply body into directly (then {@link place} it), or null. */
  reserve(n: number): { span: ArenaSpan; bytes: Uint8Array } | null;
  /** Gives back a block from {@link reserve} that will not be placed. */
  unreserve(bytes: Uint8Array): void;
}

/** Where arenas live: /dev/shm (memory) when it exists, else the temp directory. */
export function defaultShmDir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

function frame(reason: string): VtpuError {
  return new VtpuError('E_FRAME', `shm: ${reason}`);
}

function spanOf(a: Arena, offset: number, length: number): ArenaSpan {
  return { fd: a.fd, ino: a.ino, size: a.size, offset, length };
}

function isOffset(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** The links of one sidecar. */
export class ShmLinks {
  private readonly links = new Map<string, Link>();
  private readonly timer: NodeJS.Timeout;

  /** Clears arena files of processes that died (a sidecar that starts cleans up after them). */
  constructor(readonly dir: string = defaultShmDir(), readonly minBytes: number = SHM_MIN_BYTES) {
    removeStaleArenas(dir);
    this.timer = setInterval(() => this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  /** Links open now. */
  get size(): number {
    return this.links.size;
  }

  /** Bytes of reply blocks the clients still hold, over all links. */
  get outBytes(): number {
    let n = 0;
    for (const l of this.links.values()) n += l.alloc.inUse;
    return n;
  }

  /**
   * Answers an SHM request (`mode` open, ready, bell or close). `bells` is the expert host's
   * doorbell table (null: no doorbell here). Throws E_PARAM / E_LIMIT.
   */
  handle(params: Record<string, unknown>, bells: object | null = null): Record<string, unknown> {
    const mode = params.mode;
    if (mode === 'open') return this.open(params);
    if (mode === 'bell') return this.bell(params, bells);
    if (mode === 'ready') {
      const l = this.link(params.key, 'E_PARAM');
      unlink(l.output.path); // both sides hold it now: nothing is left in the directory
      return { key: l.key };
    }
    if (mode === 'close') {
      const keys = Array.isArray(params.keys) ? params.keys : [];
      let closed = 0;
      for (const k of keys) if (typeof k === 'string' && this.drop(k)) closed++;
      return { closed };
    }
    throw new VtpuError('E_PARAM', `SHM: mode must be open, ready, bell or close, got ${JSON.stringify(mode)}`);
  }

  /** Starts a doorbell on [offset, offset + length) of the link's `.in` arena (replacing its last). */
  private bell(p: Record<string, unknown>, table: object | null): Record<string, unknown> {
    const l = this.link(p.key, 'E_PARAM');
    const addon = bellAddon();
    if (!addon || !table) throw new VtpuError('E_PARAM', 'SHM: this sidecar has no doorbell (its addon did not build, or no expert host); use the socket');
    const { offset, length } = p;
    if (!isOffset(offset) || !isOffset(length) || offset < HEAD_BYTES || offset + length > l.input.size) {
      throw new VtpuError('E_PARAM', `SHM: a bell region must lie in the .in arena's [${HEAD_BYTES}, ${l.input.size}), got offset ${String(offset)} length ${String(length)}`);
    }
    if (l.bell) addon.stop(l.bell);
    l.bell = undefined;
    try {
      l.bell = addon.start(table, l.input.buffer, offset, length);
    } catch (e) {
      throw new VtpuError('E_PARAM', `SHM: ${(e as Error).message}`);
    }
    return { key: l.key, ...addon.layout() };
  }

  private open(p: Record<string, unknown>): Record<string, unknown> {
    const addon = shmAddon();
    if (!addon) throw new VtpuError('E_PARAM', `SHM: unavailable: ${unavailableReason()}`);
    const { path, token } = p;
    const size = p.size, replySize = p.reply_size ?? p.size;
    if (typeof path !== 'string' || typeof token !== 'string' || !/^[0-9a-f]+$/.test(token) || token.length !== TOKEN_BYTES * 2) {
      throw new VtpuError('E_PARAM', `SHM: open needs path and a ${TOKEN_BYTES}-byte hex token`);
    }
    for (const [name, v] of [['size', size], ['reply_size', replySize]] as const) {
      if (!isOffset(v) || v < HEAD_BYTES + ALIGN || v > MAX_ARENA_BYTES) throw new VtpuError('E_PARAM', `SHM: ${name} must be ${HEAD_BYTES + ALIGN}..${MAX_ARENA_BYTES} bytes, got ${String(v)}`);
    }
    const key = basename(path);
    if (this.links.has(key)) throw new VtpuError('E_PARAM', `SHM: ${key} is open already`);
    if (this.links.size >= MAX_LINKS) {
      this.sweep();
      if (this.links.size >= MAX_LINKS) throw new VtpuError('E_LIMIT', `SHM: ${MAX_LINKS} links are open; clients fall back to frames`);
    }
    const input = Arena.attach(addon, this.dir, path, size as number, Buffer.from(token, 'hex'));
    let output: Arena;
    try {
      output = Arena.create(addon, this.dir, replySize as number);
    } catch (e) {
      input.close();
      throw new VtpuError('E_PARAM', `SHM: cannot make the reply arena in ${this.dir}: ${(e as Error).message}`);
    }
    const pid = Number((ARENA_NAME.exec(key) as RegExpExecArray)[1]);
    const link = { key, pid, input, output, alloc: new Allocator(output, addon) } as Link;
    link.handle = this.handleOf(link);
    this.links.set(key, link);
    return { key, path: output.path, size: output.size, token: output.token.toString('hex'), min_bytes: this.minBytes };
  }

  private link(k: unknown, code: 'E_PARAM' | 'E_FRAME'): Link {
    const l = typeof k === 'string' ? this.links.get(k) : undefined;
    if (!l) throw new VtpuError(code, `shm: no open link ${JSON.stringify(k)?.slice(0, 80)} (closed, or its client died)`);
    return l;
  }

  /**
   * A request's bodies with the `shm` header field applied: frees the `.out` blocks listed
   * in `f`, and puts views of the `.in` arena where `b` says. Returns the link (replies
   * go into its `.out` arena) and the bodies. E_FRAME for anything out of bounds.
   */
  resolve(shm: unknown, frames: Uint8Array[]): { link: LinkHandle; bodies: Uint8Array[] } {
    if (typeof shm !== 'object' || shm === null || Array.isArray(shm)) throw frame('header field shm must be an object');
    const { k, b, f } = shm as Record<string, unknown>;
    const l = this.link(k, 'E_FRAME');
    if (b === undefined && f === undefined) return { link: l.handle, bodies: frames };
    if (f !== undefined) {
      if (!Array.isArray(f)) throw frame('f must be a list of offsets');
      for (const off of f) if (!isOffset(off) || !l.alloc.release(off)) throw frame(`f: no reply block at ${JSON.stringify(off)}`);
    }
    let bodies = frames;
    if (b !== undefined) {
      if (!Array.isArray(b)) throw frame('b must be a list with one entry per body');
      bodies = [];
      let next = 0;
      for (const e of b) {
        if (e === null) {
          if (next >= frames.length) throw frame(`b names more frames than the ${frames.length} sent`);
          bodies.push(frames[next++]);
          continue;
        }
        if (!Array.isArray(e) || e.length !== 2 || !isOffset(e[0]) || !isOffset(e[1])) throw frame('a body entry must be [offset, length] or null');
        const [off, len] = e as [number, number];
        if (off < HEAD_BYTES || off + len > l.input.size) throw frame(`body [${off}, ${off + len}) is outside the arena's [${HEAD_BYTES}, ${l.input.size})`);
        bodies.push(l.input.bytes.subarray(off, off + len));
      }
      if (next !== frames.length) throw frame(`${frames.length - next} frame(s) not named in b`);
    }
    return { link: l.handle, bodies };
  }

  private handleOf(l: Link): LinkHandle {
    return {
      place: (body) => this.place(l, body),
      span: (v) => (v.buffer === l.input.buffer ? spanOf(l.input, v.byteOffset, v.byteLength) : null),
      reserve: (n) => {
        const off = n >= this.minBytes && this.links.has(l.key) ? l.alloc.alloc(n) : -1;
        return off < 0 ? null : { span: spanOf(l.output, off, n), bytes: l.output.bytes.subarray(off, off + n) };
      },
      unreserve: (b) => {
        if (b.buffer === l.output.buffer) l.alloc.release(b.byteOffset);
      },
    };
  }

  private place(l: Link, body: Uint8Array | Uint8Array[]): [number, number] | null {
    const parts = Array.isArray(body) ? body : [body];
    if (parts.length === 1 && parts[0].buffer === l.output.buffer && l.alloc.owns(parts[0].byteOffset, parts[0].length)) return [parts[0].byteOffset, parts[0].length];
    const n = parts.reduce((a, p) => a + p.length, 0);
    if (n < this.minBytes || !this.links.has(l.key)) return null;
    const off = l.alloc.alloc(n);
    if (off < 0) return null; // full: this reply goes as a frame
    let at = off;
    for (const p of parts) {
      l.output.bytes.set(p, at);
      at += p.length;
    }
    return [off, n];
  }

  /** Drops links whose client process is gone. */
  sweep(): void {
    for (const l of [...this.links.values()]) if (!pidAlive(l.pid)) this.drop(l.key);
  }

  private drop(key: string): boolean {
    const l = this.links.get(key);
    if (!l) return false;
    this.links.delete(key);
    if (l.bell) bellAddon()?.stop(l.bell); // before the arena may be unmapped
    l.input.close();
    l.output.close();
    unlink(l.output.path);
    return true;
  }

  /** Drops every link and stops the sweep. */
  close(): void {
    clearInterval(this.timer);
    for (const k of [...this.links.keys()]) this.drop(k);
  }
}
