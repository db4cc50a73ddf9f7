/**
 * The doorbell's sidecar side (native/experts_bell.c, bridge/experts_bell.ts, SHM mode bell):
 * its layout is protocol.json's, its arguments are checked with wire codes, and the expert host
 * registers exactly its complete native layers. Runs through a bell are rung by a client's futex
 * (test/py/test_bell.py drives them end to end).
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ExpertHost } from '../../../bridge/experts';
import { bellAddon } from '../../../bridge/experts_bell';
import { nativeKernels } from '../../../bridge/experts_run';
import { ShmLinks } from '../../../bridge/shm/links';
import { PROTOCOL } from '../../../bridge/protocol';
import { seededFloats } from '../engine/helpers';
import { codeWith, input } from './experts_fixture';

const addon = bellAddon();
const kernels = nativeKernels();

test('the doorbell addon is built (make build compiles native/experts_bell.c)', () => {
  expect(addon).not.toBeNull();
});

test("the addon's region layout is protocol.json's bell", () => {
  const { about: _about, ...want } = (PROTOCOL as unknown as { bell: Record<string, unknown> }).bell;
  expect(addon!.layout()).toEqual(want);
});

describe('registering layers', () => {
  const H = 16, I = 8, E = 2;
  const f32 = kernels.f32!;
  const packed = () => [0, 1].map(() => new Float32Array(new SharedArrayBuffer(4 * Math.ceil(2 * I / 16) * 16 * H)));
  const down = () => [0, 1].map(() => new Float32Array(new SharedArrayBuffer(4 * Math.ceil(H / 16) * 16 * I)));
  const tally = () => new Float64Array(new SharedArrayBuffer(8 * E));

  it('takes a kernel entry and the lists its kernel reads, and counts what it removes', () => {
    const t = addon!.table();
    addon!.register(t, 3, f32.entry, H, I, 2, [packed(), down()], tally());
    addon!.register(t, 4, f32.entry, H, I, 2, [packed(), down()], tally());
    addon!.register(t, 3, f32.entry, H, I, 2, [packed(), down()], tally()); // replaces layer 3
    expect(addon!.unregister(t, 3)).toBe(1);
    expect(addon!.unregister(t, 3)).toBe(0);
    expect(addon!.unregister(t)).toBe(1);
    expect(addon!.stats(t)).toEqual({ calls: 0, fallbacks: 0, ms: 0 });
  });

  it('registers a dense matrix on the fp32 entry (its panels, one layer id space with experts), never on q4', () => {
    const t = addon!.table(), N = 20, K = 16;
    const panels = () => new Float32Array(new SharedArrayBuffer(4 * Math.ceil(N / 16) * 16 * K));
    const dense = (...a: unknown[]) => (addon!.registerDense as (...x: unknown[]) => void)(...a);
    const ok = [t, 5, f32.entry, K, N, 2, panels()] as const;
    expect(codeWith(dense, ok, 6, panels())).toBe('ok');
    addon!.register(t, 5, f32.entry, H, I, 2, [packed(), down()], tally()); // experts replace the dense layer 5
    expect(addon!.unregister(t, 5)).toBe(1);
    expect(codeWith(dense, ok, 2, kernels.q4!.entry)).toBe('E_PARAM'); // q4 has no dense product
    expect(codeWith(dense, ok, 4, 0)).toBe('E_PARAM');
    expect(codeWith(dense, ok, 6, new Float32Array(N * K))).toBe('E_SHAPE'); // not whole panels
    expect(codeWith(dense, ok, 6, new Float64Array(32 * K))).toBe('E_SHAPE');
    expect(codeWith(dense, ok, 6, new Uint16Array(new SharedArrayBuffer(2 * 32 * K)))).toBe('ok'); // bfloat16 panels
    expect(addon!.unregister(t, 5)).toBe(1);
    expect(codeWith(dense, ok, 6, new Uint16Array(32 * K - 1))).toBe('E_SHAPE');
    expect(codeWith(dense, ok, 6, new Int16Array(32 * K))).toBe('E_SHAPE');
    expect(addon!.unregister(t)).toBe(0);
  });

  it('refuses bad arguments with wire codes', () => {
    const t = addon!.table();
    const reg = (...a: unknown[]) => (addon!.register as (...x: unknown[]) => void)(...a);
    const ok = [t, 0, f32.entry, H, I, 2, [packed(), down()], tally()] as const;
    expect(codeWith(reg, ok, 0, {})).toBe('E_PARAM'); // not a table
    expect(codeWith(reg, ok, 2, {})).toBe('E_PARAM'); // not a kernel entry
    expect(codeWith(reg, ok, 2, t)).toBe('E_PARAM'); // an external that is not an entry
    expect(codeWith(reg, ok, 1, -1)).toBe('E_PARAM');
    expect(codeWith(reg, ok, 5, 0)).toBe('E_PARAM'); // threads
    expect(codeWith(reg, ok, 6, [packed()])).toBe('E_PARAM'); // one list short
    expect(codeWith(reg, ok, 6, [packed(), [new Float32Array(new SharedArrayBuffer(8))]])).toBe('E_PARAM'); // an expert short
    expect(codeWith(reg, ok, 6, [packed(), [new Float32Array(4), new Float32Array(4)]])).toBe('E_SHAPE'); // wrong sizes
    expect(codeWith(reg, ok, 3, H + 16)).toBe('E_SHAPE'); // H the arrays do not have
    expect(codeWith(reg, ok, 7, new Float64Array(E + 1))).toBe('E_PARAM');
    expect(codeWith(reg, ok, 0, t)).toBe('ok');
    expect(codeWith((...a: unknown[]) => (addon!.unregister as (...x: unknown[]) => number)(...a), [t, 0], 1, 'x')).toBe('E_PARAM');
  });
});

describe('SHM mode bell', () => {
  let dir: string;
  let links: ShmLinks;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vtpu-bell-'));
    links = new ShmLinks(dir, 1024);
  });
  afterEach(() => {
    links.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A client's .in arena with the bell's magic word at `at`, and its link. */
  function link(at: number, size = 1 << 16) {
    const path = join(dir, `vtpu-${process.pid}-${randomBytes(8).toString('hex')}.in`);
    const fd = openSync(path, 'wx', 0o600);
    const token = randomBytes(16);
    writeSync(fd, Buffer.alloc(size));
    writeSync(fd, token, 0, 16, 0);
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(addon!.layout().magic);
    writeSync(fd, magic, 0, 4, at);
    closeSync(fd);
    return links.handle({ mode: 'open', path, size, token: token.toString('hex') }).key as string;
  }

  it('starts a bell on a region of the arena and answers with the layout', () => {
    const key = link(4096);
    const res = links.handle({ mode: 'bell', key, offset: 4096, length: 8192 }, addon!.table());
    expect(res).toMatchObject({ key, ...addon!.layout() });
    links.handle({ mode: 'bell', key, offset: 4096, length: 8192 }, addon!.table()); // a second replaces the first
    expect(links.handle({ mode: 'close', keys: [key] })).toEqual({ closed: 1 }); // stops it
  });

  it('refuses regions outside the arena, without the magic word, or with no doorbell here', () => {
    const key = link(4096);
    const t = addon!.table();
    const bad: [Record<string, unknown>, object | null][] = [
      [{ mode: 'bell', key, offset: 4096, length: 8192 }, null], // no expert host's table
      [{ mode: 'bell', key: 'nope', offset: 4096, length: 8192 }, t],
      [{ mode: 'bell', key, offset: 0, length: 8192 }, t], // the token's head
      [{ mode: 'bell', key, offset: 60000, length: 8192 }, t], // past the end
      [{ mode: 'bell', key, offset: 8192, length: 8192 }, t], // no magic there
      [{ mode: 'bell', key, offset: 4100, length: 8192 }, t], // not 64-byte aligned
      [{ mode: 'bell', key, offset: 4096, length: 64 }, t], // too small
    ];
    for (const [p, table] of bad) expect(() => links.handle(p, table)).toThrow(expect.objectContaining({ code: 'E_PARAM' }));
  });
});

test('the expert host offers its complete native layers to bells, and withdraws them on drop and replace', async () => {
  const host = new ExpertHost({ threads: 1 });
  const E = 2, H = 16, I = 8;
  const load = (layer: number, format: string, first = 0, n = E) => host.run(input({ mode: 'load', layer, experts: E, hidden: H, intermediate: I, format, first, replace: true }, {
    gate_up: { shape: [n, 2 * I, H], data: seededFloats(n * 2 * I * H, layer) }, down: { shape: [n, H, I], data: seededFloats(n * H * I, layer + 1) },
  }));
  try {
    const t = host.bellTable()!;
    await load(1, 'fp32');
    await load(2, 'q4');
    await load(3, 'int8'); // no native kernel: never a bell's
    await load(4, 'fp32', 0, 1); // incomplete
    // unregister reports what the host had registered
    expect([1, 2, 3, 4].map((l) => addon!.unregister(t, l))).toEqual([1, 1, 0, 0]);
    await load(1, 'fp32');
    await host.run(input({ mode: 'drop', layer: 1 }));
    expect(addon!.unregister(t, 1)).toBe(0);
  } finally {
    await host.destroy();
  }
  expect(host.bellTable()).toBeNull();
});
