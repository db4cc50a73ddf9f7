/** Batched CNEAREST through the read pool: same bytes as the engine, errors typed. */
import { ReadPool } from '../../../bridge/pool';
import { Engine } from '../../../engine/engine';
import { VtpuError } from '../../../engine/errors';
import type { OpOutput } from '../../../engine/types';
import { bytesBatch, ensureBuilt, rng } from './helpers';
import { offloadOf } from '../../../engine/ops/index';
import type { OpInput } from '../../../engine/types';

/** Whether the pool takes a request its op would send there. */
function takes(pool: ReadPool, op: string, input: OpInput): boolean {
  const hint = offloadOf(op, input);
  return hint !== null && pool.accepts(op, hint);
}

beforeAll(() => ensureBuilt(), 60_000);

/** n rows with components in small ranges (ties, clusters). */
function points(n: number, seed: number): Uint32Array {
  const r = rng(seed);
  const spans = [3, 2, 4, 3, 5, 4, 6, 5, 9];
  const out = new Uint32Array(n * 9);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r() * spans[i % 9]);
  return out;
}

function sameOutput(a: OpOutput, b: OpOutput): void {
  expect(a.result).toEqual(b.result);
  const x = a.scrolls!, y = b.scrolls!;
  expect(Buffer.from(x.values).equals(Buffer.from(y.values))).toBe(true);
  expect(Array.from(x.shapeValues)).toEqual(Array.from(y.shapeValues));
}

test('pool CNEAREST equals the engine for every metric, with and without a pattern', async () => {
  const engine = new Engine();
  const stored = points(6_500, 1);
  engine.execute('CPUT', { params: { batch: true }, scrolls: bytesBatch(stored, stored.length / 9, 4) });
  const pool = new ReadPool(engine, { threads: 2, threshold: 1000, nearestThreshold: 64 });
  try {
    const coords = points(200, 2);
    for (const params of [{ metric: 'l2' }, { metric: 'l1', pattern: '*.*.*/*.*.*/*.*.[0:7]' }, { metric: 'hier' }, {}]) {
      const input = { params: { batch: true, k: 10, ...params }, coords };
      expect(takes(pool, 'CNEAREST', input)).toBe(true);
      sameOutput(await pool.run('CNEAREST', input), engine.execute('CNEAREST', input));
    }
    expect(takes(pool, 'CNEAREST', { params: { batch: true, k: 10 }, coords: coords.subarray(0, 63 * 9) })).toBe(false);
    // A narrow pattern has no tree path: answered on this thread, same bytes.
    const narrow = { params: { batch: true, k: 3, pattern: '1.*.*/[1:3].*.*/*.*.*' }, coords };
    sameOutput(await pool.run('CNEAREST', narrow), engine.execute('CNEAREST', narrow));
    await expect(pool.run('CNEAREST', { params: { batch: true, k: 0 }, coords })).rejects.toBeInstanceOf(VtpuError);
    await expect(pool.run('CNEAREST', { params: { batch: true, k: 20_000 }, coords })).rejects.toMatchObject({ code: 'E_PARAM' });
  } finally {
    await pool.destroy();
  }
}, 60_000);
