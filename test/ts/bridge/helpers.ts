/** Test helpers: a DEALER client speaking the wire protocol, batch builders, a seeded RNG. */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as zmq from 'zeromq';
import type { ScrollBatch } from '../../../engine/types';

export interface Reply {
  header: { v: number; id: number; ok: boolean; result?: Record<string, unknown>; error?: { code: string; message: string } };
  bodies: Buffer[];
}

/** A DEALER client that matches replies to requests by id (replies may come out of order). */
export class Client {
  readonly sock = new zmq.Dealer({ linger: 0, receiveTimeout: 20_000 });
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private readonly loop: Promise<void>;
  /** Replies whose id nobody waited for (e.g. id 0 errors), in arrival order. */
  readonly stray: Reply[] = [];

  constructor(address: string) {
    this.sock.connect(address);
    this.loop = (async () => {
      try {
        for await (const [h, ...bodies] of this.sock) {
          const r: Reply = { header: JSON.parse(h.toString()), bodies };
          const w = this.waiting.get(r.header.id);
          if (w) { this.waiting.delete(r.header.id); w(r); } else this.stray.push(r);
        }
      } catch { /* closed */ }
    })();
  }

  /** Sends a request with a fresh id and resolves with its reply. */
  request(op: string, params: Record<string, unknown> = {}, bodies: Uint8Array[] = []): Promise<Reply> {
    const id = this.nextId++;
    return this.raw([Buffer.from(JSON.stringify({ v: 1, id, op, params })), ...bodies], id);
  }

  /** Sends arbitrary frames and waits for the reply carrying `id`. */
  async raw(frames: (Uint8Array | string)[], id: number): Promise<Reply> {
    const p = new Promise<Reply>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to id ${id}`)), 20_000);
      this.waiting.set(id, (r) => { clearTimeout(t); resolve(r); });
    });
    await this.sock.send(frames);
    return p;
  }

  /** Sends frames without waiting. */
  send(frames: (Uint8Array | string)[]): Promise<void> {
    return this.sock.send(frames);
  }

  /** Waits for the next reply that nobody waited for. */
  async nextStray(timeoutMs = 10_000): Promise<Reply> {
    const t0 = Date.now();
    while (!this.stray.length) {
      if (Date.now() - t0 > timeoutMs) throw new Error('no stray reply');
      await new Promise((r) => setTimeout(r, 2));
    }
    return this.stray.shift()!;
  }

  async close(): Promise<void> {
    this.sock.close();
    await this.loop;
  }
}

/** Mulberry32: small seeded PRNG so fuzz runs are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n coordinates whose row i is [1,1,1,1,1,1,1, i>>>16 + 1, (i & 0xffff) + 1]. */
export function coordsFor(n: number, base = 1): Uint32Array {
  const c = new Uint32Array(n * 9).fill(base);
  for (let i = 0; i < n; i++) { c[i * 9 + 7] = (i >>> 16) + base; c[i * 9 + 8] = (i & 0xffff) + base; }
  return c;
}

/** A bytes-kind batch with `width`-byte values derived from the row number. */
export function bytesBatch(coords: Uint32Array | undefined, n: number, width = 16): ScrollBatch {
  const values = new Uint8Array(n * width);
  for (let i = 0; i < values.length; i++) values[i] = (i * 31 + (i / width) | 0) & 0xff;
  const valueOffsets = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) valueOffsets[i] = i * width;
  return {
    n, coords, kind: new Uint8Array(n).fill(2), dtype: new Uint8Array(n),
    shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(0), valueOffsets, values,
  };
}

/** Row i of a batch as plain data, for comparisons. */
export function row(b: ScrollBatch, i: number) {
  return {
    kind: b.kind[i], dtype: b.dtype[i],
    shape: Array.from(b.shapeValues.subarray(b.shapeOffsets[i], b.shapeOffsets[i + 1])),
    value: Buffer.from(b.values.subarray(b.valueOffsets[i], b.valueOffsets[i + 1])).toString('hex'),
    coords: b.coords ? Array.from(b.coords.subarray(i * 9, i * 9 + 9)) : undefined,
  };
}

/** Newest mtime (ms) of the .ts files under `dir`, recursively. */
function newestSource(dir: string): number {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** The repository root. */
export const ROOT = join(__dirname, '..', '..', '..');

/**
 * Builds dist/ with tsc when `out` (relative to the root) is missing or older than any
 * engine/bridge source. tsc emits despite type errors elsewhere (typechecking is its own
 * step); a build that leaves no fresh `out` fails with tsc's output.
 */
export function ensureBuilt(out = 'dist/bridge/worker.js'): void {
  const file = join(ROOT, out);
  const sources = Math.max(newestSource(join(ROOT, 'engine')), newestSource(join(ROOT, 'bridge')));
  if (existsSync(file) && statSync(file).mtimeMs >= sources) return;
  const started = Date.now();
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
  if (!existsSync(file) || statSync(file).mtimeMs < started - 1000) {
    throw new Error(`tsc did not build ${out}:\n${r.stdout}${r.stderr}`);
  }
}
