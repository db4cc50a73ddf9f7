import { spawn } from 'node:child_process';
import { decodeScrolls, encodeCoords, encodeScrolls } from '../../../bridge/arrow';
import { ReadPool } from '../../../bridge/pool';
import { startSidecar } from '../../../bridge/sidecar';
import { Engine } from '../../../engine/engine';
import type { ScrollBatch } from '../../../engine/types';
import { Client, ROOT, bytesBatch, coordsFor, ensureBuilt, rng } from './helpers';
import { offloadOf } from '../../../engine/ops/index';
import type { OpInput } from '../../../engine/types';

/** Whether the pool takes a request its op would send there. */
function takes(pool: ReadPool, op: string, input: OpInput): boolean {
  const hint = offloadOf(op, input);
  return hint !== null && pool.accepts(op, hint);
}

beforeAll(() => ensureBuilt(), 60_000);

/** A batch of mixed scrolls: text, bytes of varied length (some empty), float32 tensors. */
function mixedBatch(coords: Uint32Array, seed: number): ScrollBatch {
  const n = coords.length / 9;
  const rand = rng(seed);
  const kind = new Uint8Array(n), dtype = new Uint8Array(n);
  const shapeOffsets = new Int32Array(n + 1), valueOffsets = new Int32Array(n + 1);
  const shapes: number[] = [];
  const lens: number[] = [];
  for (let i = 0; i < n; i++) {
    const k = 1 + Math.floor(rand() * 3);
    kind[i] = k;
    if (k === 3) {
      dtype[i] = 1;
      const r = 1 + Math.floor(rand() * 3), cols = 1 + Math.floor(rand() * 5);
      shapes.push(r, cols);
      lens.push(r * cols * 4);
    } else lens.push(Math.floor(rand() * 40));
    shapeOffsets[i + 1] = shapes.length;
    valueOffsets[i + 1] = valueOffsets[i] + lens[i];
  }
  const values = new Uint8Array(valueOffsets[n]);
  for (let i = 0; i < values.length; i++) values[i] = Math.floor(rand() * 256);
  return { n, coords, kind, dtype, shapeOffsets, shapeValues: Uint32Array.from(shapes), valueOffsets, values };
}

function sameBatch(a: ScrollBatch, b: ScrollBatch): void {
  expect(a.n).toBe(b.n);
  for (const k of ['kind', 'dtype', 'shapeOffsets', 'shapeValues', 'valueOffsets', 'values'] as const) {
    expect(Buffer.from(a[k].buffer, a[k].byteOffset, a[k].byteLength).equals(Buffer.from(b[k].buffer, b[k].byteOffset, b[k].byteLength))).toBe(true);
  }
}

/** Query rows: every stored row shuffled in, plus missing ones. */
function queryFor(stored: Uint32Array, missing: number, seed: number): Uint32Array {
  const n = stored.length / 9;
  const q = new Uint32Array((n + missing) * 9);
  q.set(stored);
  q.set(coordsFor(missing, 50), n * 9);
  const rand = rng(seed);
  for (let i = n + missing - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = q.slice(i * 9, i * 9 + 9);
    q.copyWithin(i * 9, j * 9, j * 9 + 9);
    q.set(t, j * 9);
  }
  return q;
}

describe('read pool', () => {
  test('pool CGET equals the single-thread CGET, row for row', async () => {
    const engine = new Engine();
    const stored = coordsFor(60_000, 2);
    engine.execute('CPUT', { params: { batch: true }, scrolls: mixedBatch(stored, 7) });
    const coords = queryFor(stored, 5_000, 3);
    const pool = new ReadPool(engine, { threads: 2, threshold: 1000, minChunk: 4096 });
    try {
      const input = { params: { batch: true }, coords };
      expect(takes(pool, 'CGET', input)).toBe(true);
      expect(takes(pool, 'CGET', { params: { batch: true }, coords: coords.subarray(0, 9 * 999) })).toBe(false);
      expect(takes(pool, 'CPUT', input)).toBe(false);
      const viaPool = await pool.run('CGET', input);
      const direct = engine.execute('CGET', input);
      expect(viaPool.result).toEqual(direct.result);
      expect(viaPool.result).toEqual({ n: 65_000, found: 60_000 });
      sameBatch(viaPool.scrolls!, direct.scrolls!);
      expect(viaPool.scrolls!.coords).toBeUndefined();
      // zero rows and one row still work
      const one = await pool.run('CGET', { params: { batch: true }, coords: coords.subarray(0, 9) });
      sameBatch(one.scrolls!, engine.execute('CGET', { params: { batch: true }, coords: coords.subarray(0, 9) }).scrolls!);
    } finally {
      await pool.destroy();
    }
  });

  test('over the wire: pool replies equal non-pool replies; writes wait for pool reads; close waits too', async () => {
    const engine = new Engine();
    const n = 100_000;
    const stored = coordsFor(n, 1);
    engine.execute('CPUT', { params: { batch: true }, scrolls: bytesBatch(stored, n, 16) });
    const pooled = await startSidecar({ engine, address: 'tcp://127.0.0.1:*', poolThreshold: 10_000, threads: 2 });
    const plain = await startSidecar({ engine, address: 'tcp://127.0.0.1:*', poolThreshold: 0 });
    const a = new Client(pooled.address), b = new Client(plain.address);
    try {
      // (No timings here: under jest's vm sandbox, engine code runs many times slower.)
      const body = encodeCoords(stored);
      const ra = await a.request('CGET', { batch: true }, [body]);
      const rb = await b.request('CGET', { batch: true }, [body]);
      expect(ra.header.result).toEqual(rb.header.result);
      expect(ra.bodies[0].equals(rb.bodies[0])).toBe(true);

      // A CPUT pipelined right behind a pool CGET must not change what the CGET reads.
      const first = stored.slice(0, 9);
      const overwrite = bytesBatch(first, 1, 16);
      overwrite.values.fill(0xee);
      const read = a.request('CGET', { batch: true }, [body]);
      const write = a.request('CPUT', { batch: true }, [encodeScrolls(overwrite)]);
      const [r, w] = await Promise.all([read, write]);
      expect(w.header.result).toEqual({ written: 1 });
      const d = decodeScrolls(r.bodies[0]);
      expect(Buffer.from(d.values.subarray(0, 16)).equals(Buffer.from(bytesBatch(first, 1, 16).values))).toBe(true);

      // Graceful close: a pool read in flight is answered before the socket closes.
      const inflight = a.request('CGET', { batch: true }, [body]);
      const t1 = Date.now();
      while (pooled.inFlight === 0 && Date.now() - t1 < 5000) await new Promise((res) => setImmediate(res));
      expect(pooled.inFlight).toBeGreaterThan(0);
      await pooled.close();
      expect((await inflight).header.result).toEqual({ n, found: n });
    } finally {
      await a.close(); await b.close();
      await pooled.close(); await plain.close();
    }
  });
});

describe('serveForever', () => {
  test('prints one listening line, serves, exits 0 on SIGTERM', async () => {
    const code = "require('./dist/bridge/sidecar').serveForever({ address: 'tcp://127.0.0.1:*', poolThreshold: 0 })";
    const child = spawn(process.execPath, ['-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(out); });
      child.on('exit', () => reject(new Error(`exited early: ${err}`)));
    });
    const m = /^vtpu sidecar listening on (tcp:\/\/127\.0\.0\.1:\d+)\n$/.exec(line);
    expect(m).not.toBeNull();
    const c = new Client(m![1]);
    expect((await c.request('PING')).header.ok).toBe(true);
    const exited = new Promise<number | null>((r) => child.on('exit', (codeNum) => r(codeNum)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toBe(line);
    await c.close();
  });
});
