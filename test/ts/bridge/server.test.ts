import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeScrolls, encodeCoords, encodeScrolls } from '../../../bridge/arrow';
import { startSidecar, type Sidecar } from '../../../bridge/sidecar';
import { defaults as schemaDefaults } from '../../../protocol/protocol.json';
import { Client, bytesBatch, coordsFor, rng, row } from './helpers';

const MAX_REQ = 1 << 20;
const MAX_BATCH = 1000;
let seq = 0;
const ipcAddr = () => `ipc://${join(tmpdir(), `vtpu-test-${process.pid}-${seq++}.sock`)}`;

describe.each(['ipc', 'tcp'])('sidecar over %s', (transport) => {
  let sc: Sidecar;
  let c: Client;
  const addr = () => (transport === 'ipc' ? ipcAddr() : 'tcp://127.0.0.1:*');

  beforeAll(async () => {
    sc = await startSidecar({ address: addr(), maxRequestBytes: MAX_REQ, maxBatch: MAX_BATCH, poolThreshold: 0 });
    c = new Client(sc.address);
  });
  afterAll(async () => {
    await c.close();
    await sc.close();
  });

  async function expectError(p: Promise<{ header: { ok: boolean; error?: { code: string } } }>, code: string) {
    const r = await p;
    expect(r.header.ok).toBe(false);
    expect(r.header.error!.code).toBe(code);
    const ping = await c.request('PING');
    expect(ping.header.ok).toBe(true);
  }

  test('bound address is concrete', () => {
    expect(sc.address).toMatch(transport === 'ipc' ? /^ipc:\/\/.+\.sock$/ : /^tcp:\/\/127\.0\.0\.1:\d+$/);
  });

  test('PING reports version, ops and limits', async () => {
    const r = await c.request('PING');
    expect(r.header).toMatchObject({ v: 1, ok: true });
    expect(r.header.result!.version).toBe(1);
    expect(r.header.result!.ops).toEqual(expect.arrayContaining(['CGET', 'CPUT', 'CRANGE', 'PROGRAM']));
    expect(r.header.result!.limits).toEqual({ max_request_bytes: MAX_REQ, max_batch: MAX_BATCH, max_loop_ms: schemaDefaults.max_loop_ms });
  });

  test('CPUT / CGET single round trip', async () => {
    const put = await c.request('CPUT', { coord: '2.1.1/1.1.1/1.1.1', kind: 'text' }, [Buffer.from('héllo')]);
    expect(put.header.result).toEqual({ written: 1 });
    const get = await c.request('CGET', { coord: [2, 1, 1, 1, 1, 1, 1, 1, 1] });
    expect(get.header.result).toMatchObject({ found: true, kind: 'text' });
    expect(get.bodies[0].toString()).toBe('héllo');
    const miss = await c.request('CGET', { coord: '2.1.1/1.1.1/1.1.9' });
    expect(miss.header.result!.found).toBe(false);
    expect(miss.bodies.length).toBe(0);
    const t = Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
    await c.request('CPUT', { coord: '2.1.1/1.1.1/1.1.2', kind: 'tensor', dtype: 'float32', shape: [2, 3] }, [t]);
    const tg = await c.request('CGET', { coord: '2.1.1/1.1.1/1.1.2' });
    expect(tg.header.result).toMatchObject({ found: true, kind: 'tensor', dtype: 'float32', shape: [2, 3] });
    expect(tg.bodies[0]).toEqual(t);
  });

  test('CPUT / CGET batch round trip through Arrow frames', async () => {
    const n = 500;
    const coords = coordsFor(n, 3);
    const b = bytesBatch(coords, n, 24);
    const put = await c.request('CPUT', { batch: true }, [encodeScrolls(b)]);
    expect(put.header.result).toEqual({ written: n });
    const ask = new Uint32Array(coords.length + 9);
    ask.set(coords);
    ask.set([9, 9, 9, 9, 9, 9, 9, 9, 9], coords.length); // one missing row at the end
    const get = await c.request('CGET', { batch: true }, [encodeCoords(ask)]);
    expect(get.header.result).toEqual({ n: n + 1, found: n });
    const d = decodeScrolls(get.bodies[0]);
    expect(d.coords).toBeUndefined();
    for (const i of [0, 1, 250, n - 1]) expect(row(d, i)).toEqual({ ...row(b, i), coords: undefined });
    expect(d.kind[n]).toBe(0);
  });

  test('CRANGE returns coords and values in coordinate order', async () => {
    const coords = new Uint32Array([4, 1, 1, 1, 1, 1, 1, 1, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 1, 1, 1, 1, 1, 2, 1]);
    await c.request('CPUT', { batch: true }, [encodeScrolls(bytesBatch(coords, 3, 4))]);
    const r = await c.request('CRANGE', { pattern: '4.1.1/1.1.1/1.*.*' });
    expect(r.header.result).toEqual({ n: 3, truncated: false });
    const d = decodeScrolls(r.bodies[0]);
    expect(Array.from(d.coords!).filter((_, i) => i % 9 >= 7)).toEqual([1, 1, 1, 3, 2, 1]);
    const lim = await c.request('CRANGE', { pattern: '4.*.*/*.*.*/*.*.*', limit: 2 });
    expect(lim.header.result).toEqual({ n: 2, truncated: true });
  });

  test('PROGRAM: range then fetch in one round trip', async () => {
    const steps = [
      { op: 'CRANGE', params: { pattern: '4.1.1/1.1.1/1.*.*', values: false } },
      { op: 'CGET', params: { batch: true, body: { $ref: 0 } } },
    ];
    const r = await c.request('PROGRAM', { steps });
    expect(r.header.error).toBeUndefined();
    expect((r.header.result!.results as unknown[]).length).toBe(2);
    expect(r.bodies.length).toBe(1);
    expect(decodeScrolls(r.bodies[0]).n).toBe(3);
  });

  test('PROGRAM with literal bodies: params.body === true takes the next request frame', async () => {
    const steps = [
      { op: 'CPUT', params: { batch: true, body: true } },
      { op: 'CGET', params: { batch: true, body: true } },
    ];
    const coords = coordsFor(3, 5);
    const r = await c.request('PROGRAM', { steps }, [encodeScrolls(bytesBatch(coords, 3, 8)), encodeCoords(coords)]);
    expect(r.header.error).toBeUndefined();
    expect(decodeScrolls(r.bodies[0]).n).toBe(3);
  });

  describe('bad input gets its code, and the next request is served', () => {
    test('garbage header bytes', () => expectError(c.raw([Buffer.from([0xff, 0, 0x80])], 0), 'E_FRAME'));
    test('non-JSON header', () => expectError(c.raw(['{"v": 1, "id": 77'], 0), 'E_FRAME'));
    test('JSON array header', () => expectError(c.raw(['[1, 2, 3]'], 0), 'E_FRAME'));
    test('missing id', () => expectError(c.raw(['{"v": 1, "op": "PING"}'], 0), 'E_FRAME'));
    test('missing op keeps the id', () => expectError(c.raw(['{"v": 1, "id": 4242}'], 4242), 'E_FRAME'));
    test('unknown op', () => expectError(c.request('CFROB'), 'E_OP'));
    test('bad coord', () => expectError(c.request('CGET', { coord: '1.2.3' }), 'E_COORD'));
    test('bad pattern', () => expectError(c.request('CRANGE', { pattern: '1.[4:x].1/1.1.1/1.1.1' }), 'E_PATTERN'));
    test('bad dtype', () => expectError(c.request('CPUT', { coord: '1.1.1/1.1.1/1.1.1', kind: 'tensor', dtype: 'float99', shape: [1] }, [Buffer.alloc(4)]), 'E_DTYPE'));
    test('bad shape', () => expectError(c.request('CPUT', { coord: '1.1.1/1.1.1/1.1.1', kind: 'tensor', dtype: 'float32', shape: [3] }, [Buffer.alloc(8)]), 'E_SHAPE'));
    test('truncated Arrow body', () => {
      const body = encodeCoords(coordsFor(10));
      return expectError(c.request('CGET', { batch: true }, [body.subarray(0, body.length - 40)]), 'E_FRAME');
    });
    test('Arrow body with the wrong schema', () => expectError(c.request('CPUT', { batch: true }, [encodeCoords(coordsFor(2))]), 'E_FRAME'));
    test('oversized request is E_LIMIT, with its id', async () => {
      const r = await c.request('CPUT', { coord: '1.1.1/1.1.1/1.1.1', kind: 'bytes' }, [Buffer.alloc(MAX_REQ + 1)]);
      expect(r.header.id).toBeGreaterThan(0);
      await expectError(Promise.resolve(r), 'E_LIMIT');
    });
    test('batch over max_batch', () => expectError(c.request('CGET', { batch: true }, [encodeCoords(coordsFor(MAX_BATCH + 1))]), 'E_LIMIT'));
    test('a batch with one bad row writes nothing', async () => {
      const coords = coordsFor(4, 7);
      const b = bytesBatch(coords, 4, 8);
      b.kind[2] = 3; b.dtype[2] = 1; // tensor float32 with no shape and 8 bytes: bad row
      b.shapeOffsets = new Int32Array([0, 0, 0, 1, 1]); b.shapeValues = new Uint32Array([5]);
      await expectError(c.request('CPUT', { batch: true }, [encodeScrolls(b)]), 'E_SHAPE');
      const get = await c.request('CGET', { batch: true }, [encodeCoords(coords)]);
      expect(get.header.result).toEqual({ n: 4, found: 0 });
    });
  });

  test('random garbage fuzz while a second client is served', async () => {
    const fuzz = new Client(sc.address);
    const rand = rng(1234);
    const valid = [Buffer.from(JSON.stringify({ v: 1, id: 5, op: 'CGET', params: { batch: true } })), Buffer.from(encodeCoords(coordsFor(4)))];
    const N = 3000;
    let stop = false;
    const served = (async () => {
      let k = 0;
      while (!stop) {
        const r = await c.request('CPUT', { coord: `8.1.1/1.1.1/1.1.${(k % 900) + 1}`, kind: 'bytes' }, [Buffer.from([k & 0xff])]);
        expect(r.header.ok).toBe(true);
        const g = await c.request('CGET', { coord: `8.1.1/1.1.1/1.1.${(k % 900) + 1}` });
        expect(g.bodies[0][0]).toBe(k & 0xff);
        k++;
      }
      return k;
    })();
    for (let i = 0; i < N; i++) {
      const frames: Buffer[] = [];
      const nf = 1 + Math.floor(rand() * 3);
      for (let f = 0; f < nf; f++) {
        const mode = rand();
        let buf: Buffer;
        if (mode < 0.4) { // random bytes
          buf = Buffer.alloc(Math.floor(rand() * 64));
          for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256);
        } else { // a valid frame with a few bytes flipped or cut
          buf = Buffer.from(valid[f % 2]);
          for (let j = 0; j < 3; j++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
          if (rand() < 0.3) buf = buf.subarray(0, Math.floor(rand() * buf.length));
        }
        frames.push(buf);
      }
      await fuzz.send(frames);
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    const t0 = Date.now();
    while (fuzz.stray.length < N && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    expect(await served).toBeGreaterThan(5);
    expect(fuzz.stray.length).toBe(N);
    const codes = new Set(fuzz.stray.map((r) => r.header.error?.code ?? 'ok'));
    expect(codes.has('E_FRAME')).toBe(true);
    expect(codes.has('E_INTERNAL')).toBe(false);
    await fuzz.close();
    expect((await c.request('PING')).header.ok).toBe(true);
  });

  test('concurrent DEALER clients get their own replies', async () => {
    const clients = Array.from({ length: 8 }, () => new Client(sc.address));
    await Promise.all(clients.map(async (cl, k) => {
      const pending = [];
      for (let i = 0; i < 40; i++) {
        const coord = `9.1.1/1.1.${k + 1}/1.1.${i + 1}`;
        pending.push(cl.request('CPUT', { coord, kind: 'text' }, [Buffer.from(`${k}:${i}`)])
          .then(() => cl.request('CGET', { coord }))
          .then((r) => expect(r.bodies[0].toString()).toBe(`${k}:${i}`)));
      }
      await Promise.all(pending);
      expect(cl.stray).toEqual([]);
    }));
    await Promise.all(clients.map((cl) => cl.close()));
  });
});

describe('lifecycle', () => {
  test('close removes the ipc file and is idempotent; a new sidecar can bind the same path', async () => {
    const address = ipcAddr();
    const sc = await startSidecar({ address, poolThreshold: 0 });
    const file = sc.address.slice('ipc://'.length);
    expect(existsSync(file)).toBe(true);
    const c = new Client(sc.address);
    expect((await c.request('PING')).header.ok).toBe(true);
    await Promise.all([sc.close(), sc.close()]);
    await sc.close();
    expect(existsSync(file)).toBe(false);
    const again = await startSidecar({ address, poolThreshold: 0 });
    expect((await c.request('PING')).header.ok).toBe(true); // the DEALER reconnects
    await again.close();
    await c.close();
  });

  test('options are checked at the boundary', async () => {
    await expect(startSidecar({ address: 'http://x' })).rejects.toThrow(TypeError);
    await expect(startSidecar({ maxBatch: 0 })).rejects.toThrow(/maxBatch/);
    await expect(startSidecar({ threads: 1.5 })).rejects.toThrow(/threads/);
    await expect(startSidecar({ poolThreshold: -1 })).rejects.toThrow(/poolThreshold/);
    await expect(startSidecar({ bogus: 1 } as never)).rejects.toThrow(/unknown option 'bogus'/);
  });

  test('binding a taken tcp port rejects', async () => {
    const a = await startSidecar({ address: 'tcp://127.0.0.1:*', poolThreshold: 0 });
    await expect(startSidecar({ address: a.address, poolThreshold: 0 })).rejects.toMatchObject({ code: expect.any(String) });
    await a.close();
  });
});
