import { ComputePool } from '../../../bridge/compute';
import { attendFlops } from '../../../engine/ops/cattend';
import { offloadOf } from '../../../engine/ops/index';
import { Engine } from '../../../engine/engine';
import { namedTensors, floatInput } from '../../../engine/tensors';
import type { OpInput, OpOutput } from '../../../engine/types';
import { bandAttentionModel, ort } from '../../../engine/kernels/attention_ort';
import { denseAttention, maxDiff, qkv, request, spec } from '../engine/attn_ref';
import { spawnSync } from 'node:child_process';
import { ROOT, ensureBuilt } from './helpers';

beforeAll(() => ensureBuilt(), 60_000);

const gate = <T>(fn: () => T) => Promise.resolve(fn());
const tensors = (out: OpOutput) => namedTensors('T', { params: { tensors: out.result.tensors }, scrolls: out.scrolls });
const get = (out: OpOutput, name: string) => floatInput('T', tensors(out), name).data;

describe('CATTEND compute pool', () => {
  const s = spec({ B: 2, Hq: 4, Hkv: 2, Sq: 70, Skv: 75, D: 16, window: 9, globals: [0, 2, 40] });
  const t = qkv(s, 21);
  const body = {
    q: { shape: [2, 4, 70, 16], data: t.q }, k: { shape: [2, 2, 75, 16], data: t.k }, v: { shape: [2, 2, 75, 16], data: t.v },
  };
  const params = { window: 9, global: [0, 2, 40], return_lse: true };
  const engine = new Engine();
  let workers: ComputePool;
  let withOrt: ComputePool;
  beforeAll(() => {
    workers = new ComputePool(engine, { threads: 2, minFlops: 1, ort: false });
    withOrt = new ComputePool(engine, { threads: 2, minFlops: 1 });
  });
  afterAll(async () => {
    await workers.destroy();
    await withOrt.destroy();
  });

  test('takes only CATTEND at or over the flop threshold', () => {
    const input: OpInput = request(params, body);
    expect(attendFlops(input)).toBe(4 * 2 * 4 * 70 * 12 * 16);
    const hint = offloadOf('CATTEND', input);
    expect(hint).toEqual({ to: 'compute', flops: attendFlops(input) });
    expect(workers.accepts(hint!)).toBe(true);
    expect(offloadOf('CGET', input)).toBeNull();
    expect(new ComputePool(engine, { threads: 1, minFlops: 1e12 }).accepts(hint!)).toBe(false);
  });

  test('worker threads give exactly the main-thread result (forward and backward)', async () => {
    const main = engine.execute('CATTEND', request(params, body));
    const pooled = await workers.run('CATTEND', request(params, body), gate);
    expect(pooled.result.kernel).toBe('pool');
    expect(maxDiff(get(pooled, 'o'), get(main, 'o'))).toBe(0);
    expect(maxDiff(get(pooled, 'lse'), get(main, 'lse'))).toBe(0);
    const grads = { ...body, o: { shape: body.q.shape, data: get(main, 'o') }, do: { shape: body.q.shape, data: t.q.map((x) => x * 0.5 + 0.1) }, lse: { shape: [2, 4, 70], data: get(main, 'lse') } };
    const bMain = engine.execute('CATTEND', request({ ...params, backward: true }, grads));
    const bPool = await workers.run('CATTEND', request({ ...params, backward: true }, grads), gate);
    for (const n of ['dq', 'dk', 'dv']) expect(maxDiff(get(bPool, n), get(bMain, n))).toBeLessThan(1e-6);
  });

  test('ONNX Runtime forward matches the dense reference on every run layout (in a plain node process)', () => {
    // ORT builds its output tensors in the main realm, which jest's sandbox rejects, so
    // this runs the built engine in a child process and checks its answers here.
    const script = `
      const { ComputePool } = require('./dist/bridge/compute.js');
      const { ortLimits } = require('./dist/engine/kernels/attention_ort.js');
      const { Engine } = require('./dist/engine/engine.js');
      const { tensorBatch, namedTensors, floatInput } = require('./dist/engine/tensors.js');
      const { decodeScrolls } = require('./dist/bridge/arrow.js');
      const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
      const req = (p, b) => ({ params: { ...p, tensors: Object.keys(b) }, scrolls: tensorBatch(Object.values(b).map((x) => ({ shape: x.shape, data: Float32Array.from(x.data) }))) });
      const pool = new ComputePool(new Engine(), { threads: 1, minFlops: 1 });
      const gate = (fn) => Promise.resolve(fn());
      (async () => {
        const got = [];
        for (const c of cases) {
          ortLimits.maxScores = c.maxScores;
          const out = await pool.run('CATTEND', req(c.params, c.body), gate);
          // ORT writes into a laid-out reply frame (an encoded Arrow stream); the worker path replies with a batch.
          const t = namedTensors('T', { params: { tensors: out.result.tensors }, scrolls: out.encoded ? decodeScrolls(out.encoded) : out.scrolls });
          got.push({ kernel: out.result.kernel, encoded: Boolean(out.encoded), o: Array.from(floatInput('T', t, 'o').data), lse: t.has('lse') ? Array.from(floatInput('T', t, 'lse').data) : null });
        }
        process.stdout.write(JSON.stringify(got));
        await pool.destroy();
      })();`;
    const plain = (b: Record<string, { shape: number[]; data: Float32Array }>) => Object.fromEntries(Object.entries(b).map(([k, x]) => [k, { shape: x.shape, data: Array.from(x.data) }]));
    const s2 = spec({ B: 1, Hq: 4, Hkv: 2, Sq: 128, Skv: 128, D: 8, window: 9, globals: [0, 2, 40] });
    const t2 = qkv(s2, 5);
    const body2 = { q: { shape: [1, 4, 128, 8], data: t2.q }, k: { shape: [1, 2, 128, 8], data: t2.k }, v: { shape: [1, 2, 128, 8], data: t2.v } };
    const s3 = spec({ B: 1, Hq: 2, Hkv: 1, Sq: 100, Skv: 130, D: 8, window: 5, globals: [1, 60, 129], causal: false });
    const t3 = qkv(s3, 9);
    const body3 = { q: { shape: [1, 2, 100, 8], data: t3.q }, k: { shape: [1, 1, 130, 8], data: t3.k }, v: { shape: [1, 1, 130, 8], data: t3.v } };
    const s4 = spec({ B: 1, Hq: 2, Hkv: 1, Sq: 128, Skv: 128, D: 8, scale: 0.5 });
    const t4 = qkv(s4, 13);
    const body4 = { q: { shape: [1, 2, 128, 8], data: t4.q }, k: { shape: [1, 1, 128, 8], data: t4.k }, v: { shape: [1, 1, 128, 8], data: t4.v } };
    // Causal rows before the first key cannot go through ORT: the worker path takes them.
    const long = { q: { shape: [1, 1, 5, 16], data: t.q.slice(0, 80) }, k: { shape: [1, 1, 3, 16], data: t.k.slice(0, 48) }, v: { shape: [1, 1, 3, 16], data: t.v.slice(0, 48) } };
    const cases = [
      { spec: s, t, params, body, maxScores: 1 << 24 }, // Sq not a multiple of the block: packed rows
      { spec: s, t, params, body, maxScores: 1 }, // one block per run
      { spec: s2, t: t2, params, body: body2, maxScores: 1 << 24 }, // all units in one run, q in place
      { spec: s2, t: t2, params, body: body2, maxScores: 2 * 2 * 64 * 75 }, // one unit per run (G · NB · BQ · 75 band keys)
      { spec: s3, t: t3, params: { window: 5, global: [1, 60, 129], causal: false, return_lse: true }, body: body3, maxScores: 1 << 24 },
      { spec: s4, t: t4, params: { scale: 0.5, return_lse: true }, body: body4, maxScores: 1 << 24 }, // no window: every key
    ];
    const r = spawnSync(process.execPath, ['-e', script], {
      cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26,
      input: JSON.stringify([...cases.map((c) => ({ params: c.params, body: plain(c.body), maxScores: c.maxScores })), { params: {}, body: plain(long), maxScores: 1 << 24 }]),
    });
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout);
    cases.forEach((c, i) => {
      expect(got[i].kernel).toBe('ort');
      expect(got[i].encoded).toBe(true);
      const ref = denseAttention(c.spec, c.t.q, c.t.k, c.t.v);
      expect(maxDiff(got[i].o, ref.o)).toBeLessThan(1e-5);
      expect(maxDiff(got[i].lse, ref.lse)).toBeLessThan(1e-4);
    });
    expect(got[cases.length].kernel).toBe('pool');
  });

  test('the hand-encoded ONNX model loads', async () => {
    const o = ort();
    if (o === null) throw new Error('onnxruntime-node failed to load');
    const sess = await o.InferenceSession.create(bandAttentionModel(true, 0.125));
    expect([...sess.inputNames].sort()).toEqual(['bias', 'idx', 'k', 'q', 'v']);
    expect([...sess.outputNames]).toEqual(['o', 'lse']);
  });
});
