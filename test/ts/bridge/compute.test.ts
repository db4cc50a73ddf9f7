import { ComputePool, attendFlops } from '../../../bridge/compute';
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

  test('wants only CATTEND at or over the flop threshold', () => {
    const input: OpInput = request(params, body);
    expect(attendFlops(input)).toBe(4 * 2 * 4 * 70 * 12 * 16);
    expect(workers.wants('CATTEND', input)).toBe(true);
    expect(workers.wants('CGET', input)).toBe(false);
    expect(new ComputePool(engine, { threads: 1, minFlops: 1e12 }).wants('CATTEND', input)).toBe(false);
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

  test('ONNX Runtime forward matches the dense reference (in a plain node process)', () => {
    // ORT builds its output tensors in the main realm, which jest's sandbox rejects, so
    // this runs the built engine in a child process and checks its answer here.
    const script = `
      const { ComputePool } = require('./dist/bridge/compute.js');
      const { Engine } = require('./dist/engine/engine.js');
      const { tensorBatch, namedTensors, floatInput } = require('./dist/engine/tensors.js');
      const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
      const req = (p, b) => ({ params: { ...p, tensors: Object.keys(b) }, scrolls: tensorBatch(Object.values(b).map((x) => ({ shape: x.shape, data: Float32Array.from(x.data) }))) });
      const pool = new ComputePool(new Engine(), { threads: 1, minFlops: 1 });
      const gate = (fn) => Promise.resolve(fn());
      (async () => {
        const out = await pool.run('CATTEND', req(input.params, input.body), gate);
        const t = namedTensors('T', { params: { tensors: out.result.tensors }, scrolls: out.scrolls });
        const long = await pool.run('CATTEND', req({}, input.long), gate);
        process.stdout.write(JSON.stringify({ kernel: out.result.kernel, o: Array.from(floatInput('T', t, 'o').data), lse: Array.from(floatInput('T', t, 'lse').data), long: long.result.kernel }));
        await pool.destroy();
      })();`;
    const plain = (b: Record<string, { shape: number[]; data: Float32Array }>) => Object.fromEntries(Object.entries(b).map(([k, x]) => [k, { shape: x.shape, data: Array.from(x.data) }]));
    // Causal rows before the first key cannot go through ORT: the worker path takes them.
    const long = { q: { shape: [1, 1, 5, 16], data: t.q.slice(0, 80) }, k: { shape: [1, 1, 3, 16], data: t.k.slice(0, 48) }, v: { shape: [1, 1, 3, 16], data: t.v.slice(0, 48) } };
    const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, input: JSON.stringify({ params, body: plain(body), long: plain(long) }), encoding: 'utf8', maxBuffer: 1 << 26 });
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout);
    expect(got.kernel).toBe('ort');
    expect(got.long).toBe('pool');
    const ref = denseAttention(s, t.q, t.k, t.v);
    expect(maxDiff(got.o, ref.o)).toBeLessThan(1e-5);
    expect(maxDiff(got.lse, ref.lse)).toBeLessThan(1e-4);
  });

  test('the hand-encoded ONNX model loads', async () => {
    const o = ort();
    if (o === null) throw new Error('onnxruntime-node failed to load');
    const sess = await o.InferenceSession.create(bandAttentionModel(true));
    expect([...sess.inputNames].sort()).toEqual(['bias', 'idx', 'k', 'q', 'scale', 'v']);
    expect([...sess.outputNames]).toEqual(['o', 'lse']);
  });
});
