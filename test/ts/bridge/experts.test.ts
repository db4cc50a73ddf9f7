/**
 * The expert runtime through its host: ONNX Runtime runs in the host's worker thread
 * (a plain node realm; ORT's outputs are rejected inside jest's sandbox).
 */
import { ExpertHost } from '../../../bridge/experts';
import { OutTensor, tensorBatch } from '../../../engine/tensors';
import type { OpOutput } from '../../../engine/types';
import { ensureBuilt } from './helpers';
import { seededFloats as rand } from '../engine/helpers';
import { NBITS, quantizeBlocks } from '../../../engine/kernels/experts_graph';

const E = 6, H = 8, I = 4;

const GU = rand(E * 2 * I * H, 1), DOWN = rand(E * H * I, 2);

/** The reference MoE output in float64: Σ_s w · down(silu(gate x) * up x). */
function reference(x: Float32Array, T: number, ids: Int32Array, w: Float32Array, k: number, GU_ = GU, DOWN_ = DOWN): Float64Array {
  const [GU, DOWN] = [GU_, DOWN_];
  const y = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let s = 0; s < k; s++) {
    const e = ids[t * k + s];
    const m = new Float64Array(I);
    for (let i = 0; i < I; i++) {
      let g = 0, u = 0;
      for (let h = 0; h < H; h++) {
        g += GU[(e * 2 * I + i) * H + h] * x[t * H + h];
        u += GU[(e * 2 * I + I + i) * H + h] * x[t * H + h];
      }
      m[i] = (g / (1 + Math.exp(-g))) * u;
    }
    for (let h = 0; h < H; h++) {
      let d = 0;
      for (let i = 0; i < I; i++) d += DOWN[(e * H + h) * I + i] * m[i];
      y[t * H + h] += w[t * k + s] * d;
    }
  }
  return y;
}

/** The weights a MatMulNBits format holds, back in float: experts × rows (N) × K, each row quantised in blocks. */
function dequantised(w: Float32Array, experts: number, N: number, K: number, fmt: keyof typeof NBITS): Float32Array {
  const { bits, block } = NBITS[fmt];
  const out = new Float32Array(w.length), zp = 1 << (bits - 1);
  for (let e = 0; e < experts; e++) {
    const { q, scale, blocks } = quantizeBlocks(w.subarray(e * N * K, (e + 1) * N * K), N, K, bits, block);
    for (let n = 0; n < N; n++) for (let c = 0; c < K; c++) {
      const b = Math.floor(c / block), j = c % block, at = (n * blocks + b) * ((block * bits) / 8);
      const code = bits === 8 ? q[at + j] : (q[at + (j >> 1)] >> ((j & 1) * 4)) & 15;
      out[(e * N + n) * K + c] = (code - zp) * scale[n * blocks + b];
    }
  }
  return out;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const input = (params: Record<string, unknown>, named: Record<string, OutTensor> = {}) => {
  const names = Object.keys(named);
  return names.length ? { params: { ...params, tensors: names }, scrolls: tensorBatch(names.map((n) => named[n])) } : { params };
};

/** Reply tensor `name` as numbers. */
function get(out: OpOutput, name: string): number[] {
  const i = (out.result.tensors as string[]).indexOf(name);
  const b = out.scrolls!;
  const bytes = b.values.slice(b.valueOffsets[i], b.valueOffsets[i + 1]);
  return Array.from(b.dtype[i] === 1 ? new Float32Array(bytes.buffer) : new Int32Array(bytes.buffer));
}

const T = 5, k = 2;
const X = rand(T * H, 9);
const LOGITS = rand(T * E, 11);

describe('ExpertHost and the expert runtime', () => {
  let host: ExpertHost;
  beforeAll(() => ensureBuilt('dist/bridge/experts_worker.js'));
  beforeEach(() => { host = new ExpertHost({ threads: 1 }); });
  afterEach(() => host.destroy());

  const load = (layer: number, first: number, n: number, over: Record<string, unknown> = {}) => host.run(input(
    { mode: 'load', layer, experts: E, hidden: H, intermediate: I, first, ...over },
    { gate_up: { shape: [n, 2 * I, H], data: GU.slice(first * 2 * I * H, (first + n) * 2 * I * H) }, down: { shape: [n, H, I], data: DOWN.slice(first * H * I, (first + n) * H * I) } },
  ));
  const runIds = (layer: number, ids: Int32Array, w: Float32Array, x = X) => host.run(input({ mode: 'run', layer }, {
    x: { shape: [x.length / H, H], data: x }, expert_ids: { shape: [T, k], data: ids }, weights: { shape: [T, k], data: w },
  }));

  test.each([[16], [4], [1]])('fp32, group %i: routed from logits and from a given selection, equal to the reference', async (group) => {
    // two chunks, out of order
    expect((await load(0, 3, 3, { group })).result.info).toMatchObject({ complete: false, received: 3 });
    expect((await load(0, 0, 3, { group })).result.info).toMatchObject({ layer: 0, received: E, complete: true, format: 'fp32' });
    const r = await host.run(input({ mode: 'run', layer: 0, top_k: k, renormalize: true }, { x: { shape: [T, H], data: X }, logits: { shape: [T, E], data: LOGITS } }));
    // the selection CMOE makes: softmax, top-2, renormalised
    const ids = new Int32Array(T * k), w = new Float32Array(T * k);
    for (let t = 0; t < T; t++) {
      const order = Array.from(LOGITS.subarray(t * E, (t + 1) * E)).map((v, e) => [v, e]).sort((a, b) => b[0] - a[0]).slice(0, k);
      const ex = order.map(([v]) => Math.exp(v));
      order.forEach(([, e], s) => { ids[t * k + s] = e; w[t * k + s] = ex[s] / (ex[0] + ex[1]); });
    }
    expect(maxDiff(get(r, 'y'), reference(X, T, ids, w, k))).toBeLessThan(1e-5);
    expect(get(r, 'counts').reduce((a, b) => a + b)).toBe(T * k);
    const g = await runIds(0, ids, w);
    expect(maxDiff(get(g, 'y'), get(r, 'y'))).toBeLessThan(1e-6);
  });

  test.each([['int8', 0.05], ['q8', 0.05], ['q4', 0.3]])('%s is close to the reference but not equal; experts with no tokens are skipped', async (format, tol) => {
    await load(1, 0, E, { format, group: 2 });
    const ids = Int32Array.from([0, 5, 5, 0, 0, 5, 5, 0, 0, 5]); // experts 1-4 idle
    const w = new Float32Array(T * k).fill(0.5);
    const r = await runIds(1, ids, w);
    const ref = reference(X, T, ids, w, k);
    const scale = Math.max(...Array.from(ref, Math.abs));
    expect(maxDiff(get(r, 'y'), ref)).toBeLessThan((tol as number) * scale);
    expect(maxDiff(get(r, 'y'), ref)).toBeGreaterThan(0);
    expect(get(r, 'counts')).toEqual([5, 0, 0, 0, 0, 5]);
  });

  test('q4 holds 4-bit blocks of 128 and computes at level 4: the reference over its own weights, but for int8 activations', async () => {
    // Level 4 rounds each row's activations to int8 per block (~1/254 of the block's largest), so
    // the output misses the float reference over the same 4-bit weights by ~1e-2, never more.
    await load(2, 0, E, { format: 'q4' });
    const ids = Int32Array.from([0, 5, 1, 2, 3, 4, 5, 0, 2, 1]);
    const w = new Float32Array(T * k).fill(0.5);
    const ref = reference(X, T, ids, w, k, dequantised(GU, E, 2 * I, H, 'q4'), dequantised(DOWN, E, H, I, 'q4'));
    const scale = Math.max(...Array.from(ref, Math.abs));
    const miss = maxDiff(get(await runIds(2, ids, w), 'y'), ref) / scale;
    expect(miss).toBeLessThan(0.03);
  });

  test('typed errors: missing layer or experts, double upload, other spec, bad ids and widths', async () => {
    const ids = new Int32Array(T * k), w = new Float32Array(T * k);
    await expect(runIds(7, ids, w)).rejects.toMatchObject({ code: 'E_PARAM', message: expect.stringMatching(/no experts uploaded for layer 7/) });
    await load(7, 0, 2);
    await expect(runIds(7, ids, w)).rejects.toMatchObject({ code: 'E_PARAM', message: expect.stringMatching(/missing experts 2-5/) });
    await expect(load(7, 1, 1)).rejects.toMatchObject({ code: 'E_PARAM', message: expect.stringMatching(/already uploaded/) });
    await expect(load(7, 2, 1, { format: 'int8' })).rejects.toMatchObject({ code: 'E_SHAPE' });
    await expect(host.run(input({ mode: 'load', layer: 7, experts: E, hidden: H, intermediate: I, first: 5 }, {
      gate_up: { shape: [2, 2 * I, H], data: GU.slice(0, 2 * 2 * I * H) }, down: { shape: [2, H, I], data: DOWN.slice(0, 2 * H * I) },
    }))).rejects.toMatchObject({ code: 'E_PARAM', message: expect.stringMatching(/outside 0..5/) });
    await expect(load(7, 0, 1, { format: 'int3', replace: true })).rejects.toMatchObject({ code: 'E_PARAM' });
    // replace starts afresh with the new spec
    await load(7, 0, E, { format: 'int8', replace: true });
    expect((await host.run(input({ mode: 'info', layer: 7 }))).result.layers).toEqual([expect.objectContaining({ format: 'int8', complete: true })]);
    await expect(runIds(7, ids, w, X.subarray(0, T * 4))).rejects.toMatchObject({ code: 'E_SHAPE' });
    await expect(runIds(7, ids.map(() => E), w)).rejects.toMatchObject({ code: 'E_PARAM' });
    await expect(host.run(input({ mode: 'run', layer: 7, top_k: 2 }, { x: { shape: [T, H], data: X }, logits: { shape: [T, 3], data: new Float32Array(T * 3) } })))
      .rejects.toMatchObject({ code: 'E_SHAPE' });
    expect((await host.run(input({ mode: 'drop', layer: 7 }))).result.dropped).toBe(1);
    expect((await host.run(input({ mode: 'info' }))).result.layers).toEqual([]);
  });

  test('a dead runtime thread fails its requests with E_INTERNAL and the next one starts empty', async () => {
    await load(3, 0, E);
    const pending = runIds(3, new Int32Array(T * k), new Float32Array(T * k));
    await (host as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const err = await pending.then(() => null, (e: unknown) => e);
    // the run either finished before the thread went, or failed with a clear E_INTERNAL
    if (err !== null) expect(err).toMatchObject({ code: 'E_INTERNAL', message: expect.stringMatching(/expert runtime stopped/) });
    await expect(runIds(3, new Int32Array(T * k), new Float32Array(T * k))).rejects.toMatchObject({ message: expect.stringMatching(/no experts uploaded/) });
  });
});
