import { Engine } from '../../../engine/engine';
import { attendForward } from '../../../engine/kernels/attention';
import { attendBackward } from '../../../engine/kernels/attention_backward';
import { AttnSpec } from '../../../engine/kernels/attention_spec';
import { namedTensors, floatInput } from '../../../engine/tensors';
import { DType } from '../../../engine/types';
import { kvCoord, KV_KEY, KV_VALUE } from '../../../engine/ops/kv_cache';
import { denseAttention, maxDiff, qkv, rand, request, spec } from './attn_ref';
import { code } from './helpers';

const forward = (s: AttnSpec, t: { q: Float32Array; k: Float32Array; v: Float32Array }) => {
  const out = { o: new Float32Array(t.q.length), lse: new Float32Array(s.B * s.Hq * s.Sq) };
  attendForward(s, t.q, t.k, t.v, out);
  return out;
};

describe('CATTEND forward kernel vs dense reference', () => {
  const cases: [string, Partial<AttnSpec> & { B: number; Hq: number; Hkv: number; Sq: number; Skv: number; D: number }][] = [
    ['full causal, MHA', { B: 1, Hq: 2, Hkv: 2, Sq: 37, Skv: 37, D: 8 }],
    ['window + globals, GQA 2', { B: 2, Hq: 4, Hkv: 2, Sq: 45, Skv: 45, D: 6, window: 7, globals: [0, 3, 30] }],
    ['window, GQA 4, Sq < Skv', { B: 1, Hq: 4, Hkv: 1, Sq: 13, Skv: 70, D: 5, window: 9, globals: [2] }],
    ['non-causal window + globals', { B: 1, Hq: 2, Hkv: 1, Sq: 40, Skv: 40, D: 4, window: 5, globals: [1, 39], causal: false }],
    ['non-causal, no window, odd Sq', { B: 1, Hq: 3, Hkv: 3, Sq: 33, Skv: 50, D: 3, causal: false, scale: 0.7 }],
    ['decode step', { B: 2, Hq: 4, Hkv: 2, Sq: 1, Skv: 90, D: 8, window: 16, globals: [0, 1, 2, 3] }],
    ['window 1 (self only) + empty globals', { B: 1, Hq: 2, Hkv: 1, Sq: 20, Skv: 20, D: 4, window: 1 }],
  ];
  test.each(cases)('%s', (_name, p) => {
    const s = spec(p);
    const t = qkv(s, 7);
    const got = forward(s, t);
    const ref = denseAttention(s, t.q, t.k, t.v);
    expect(maxDiff(got.o, ref.o)).toBeLessThan(1e-5);
    expect(maxDiff(got.lse, ref.lse)).toBeLessThan(1e-4);
  });

  test('causal queries before the first key (Sq > Skv) see nothing: o = 0, lse = -Inf', () => {
    const s = spec({ B: 1, Hq: 1, Hkv: 1, Sq: 6, Skv: 4, D: 3 });
    const t = qkv(s, 3);
    const got = forward(s, t);
    const ref = denseAttention(s, t.q, t.k, t.v);
    expect(Array.from(got.o.slice(0, 6))).toEqual([0, 0, 0, 0, 0, 0]);
    expect(got.lse[0]).toBe(-Infinity);
    expect(maxDiff(got.o, ref.o)).toBeLessThan(1e-5);
  });
});

describe('CATTEND backward kernel', () => {
  test('matches central finite differences of sum(o * w)', () => {
    const s = spec({ B: 1, Hq: 4, Hkv: 2, Sq: 11, Skv: 11, D: 3, window: 3, globals: [0, 7] });
    const t = qkv(s, 11);
    const w = rand(t.q.length, 99);
    const loss = (x: { q: Float32Array; k: Float32Array; v: Float32Array }) => {
      const o = denseAttention(s, x.q, x.k, x.v).o;
      let a = 0;
      for (let i = 0; i < o.length; i++) a += o[i] * w[i];
      return a;
    };
    const f = forward(s, t);
    const g = { dq: new Float32Array(t.q.length), dk: new Float32Array(t.k.length), dv: new Float32Array(t.v.length) };
    attendBackward(s, { ...t, o: f.o, dO: w, lse: f.lse }, g);
    const eps = 1e-3;
    for (const [name, grad] of [['q', g.dq], ['k', g.dk], ['v', g.dv]] as const) {
      for (const i of [0, 5, 17, grad.length - 1]) {
        const plus = { ...t, [name]: t[name].slice() };
        const minus = { ...t, [name]: t[name].slice() };
        plus[name][i] += eps;
        minus[name][i] -= eps;
        expect(Math.abs((loss(plus) - loss(minus)) / (2 * eps) - grad[i])).toBeLessThan(2e-3);
      }
    }
  });
});

describe('CATTEND op', () => {
  const s = spec({ B: 1, Hq: 4, Hkv: 2, Sq: 9, Skv: 9, D: 4, window: 3, globals: [0] });
  const t = qkv(s, 5);
  const shape = (h: number, n: number) => [s.B, h, n, s.D];
  const body = { q: { shape: shape(4, 9), data: t.q }, k: { shape: shape(2, 9), data: t.k }, v: { shape: shape(2, 9), data: t.v } };
  const outputs = (out: ReturnType<Engine['execute']>) => namedTensors('T', { params: { tensors: out.result.tensors }, scrolls: out.scrolls });

  test('forward with lse; 3-D inputs drop the batch dim', () => {
    const e = new Engine();
    const out = outputs(e.execute('CATTEND', request({ window: 3, global: [0], return_lse: true }, body)));
    const ref = denseAttention(s, t.q, t.k, t.v);
    expect(maxDiff(floatInput('T', out, 'o').data, ref.o)).toBeLessThan(1e-5);
    expect(out.get('lse')?.shape).toEqual([1, 4, 9]);
    const three = Object.fromEntries(Object.entries(body).map(([k, x]) => [k, { shape: x.shape.slice(1), data: x.data }]));
    const o3 = outputs(e.execute('CATTEND', request({ window: 3, global: [0] }, three)));
    expect(o3.get('o')?.shape).toEqual([4, 9, 4]);
    expect(o3.has('lse')).toBe(false);
  });

  test('reads k/v from the KV cache, only the visible positions needed', () => {
    const e = new Engine();
    for (let h = 0; h < 2; h++) for (let j = 0; j < 9; j++) {
      for (const [kind, src] of [[KV_KEY, t.k], [KV_VALUE, t.v]] as const) {
        const vec = src.slice((h * 9 + j) * 4, (h * 9 + j + 1) * 4);
        e.store.put(kvCoord(3, h, j, kind, 0), 0, { kind: 3, dtype: DType.Float32, shape: [4], bytes: new Uint8Array(vec.buffer) });
      }
    }
    const q1 = { q: { shape: [1, 4, 1, 4], data: t.q.filter((_, i) => Math.floor(i / 4) % 9 === 8) } };
    const out = outputs(e.execute('CATTEND', request({ window: 3, global: [0], kv: { layer: 3, length: 9 } }, q1)));
    const ref = denseAttention(s, t.q, t.k, t.v).o.filter((_, i) => Math.floor(i / 4) % 9 === 8);
    expect(maxDiff(floatInput('T', out, 'o').data, ref)).toBeLessThan(1e-5);
    // Position 4 is outside the band of position 8 and not global: deleting it changes nothing.
    e.store.delete(kvCoord(3, 0, 4, KV_KEY, 0));
    expect(() => e.execute('CATTEND', request({ window: 3, global: [0], kv: { layer: 3, length: 9 } }, q1))).not.toThrow();
    expect(code(() => e.execute('CATTEND', request({ kv: { layer: 3, length: 9 } }, q1)))).toBe('E_PARAM');
    expect(code(() => e.execute('CATTEND', request({ kv: { layer: 4, length: 9 } }, q1)))).toBe('E_PARAM');
    expect(code(() => e.execute('CATTEND', request({ kv: { layer: 3, length: 9, heads: 3 } }, q1)))).toBe('E_SHAPE');
    // Lengths past the cache are refused by one lookup, before anything is sized by them.
    for (const length of [10, 2 ** 24, 2 ** 26, 2 ** 28]) {
      expect(() => e.execute('CATTEND', request({ window: 3, kv: { layer: 3, length } }, q1))).toThrow(new RegExp(`kv.length ${length} is beyond the KV cache`));
    }
    expect(code(() => e.execute('CATTEND', request({ kv: { layer: 3, length: 2 ** 28 + 1 } }, q1)))).toBe('E_PARAM');
  });

  test('bad input is a typed error', () => {
    const e = new Engine();
    const run = (params: Record<string, unknown>, b: Record<string, { shape: number[]; data: Float32Array | Int32Array }> = body) => code(() => e.execute('CATTEND', request(params, b)));
    expect(run({}, { ...body, k: { shape: shape(3, 3), data: rand(36, 1) }, v: { shape: shape(3, 3), data: rand(36, 1) } })).toBe('E_SHAPE');
    expect(run({}, { ...body, k: { shape: [1, 2, 9, 3], data: rand(54, 1) } })).toBe('E_SHAPE');
    expect(run({}, { ...body, v: { shape: shape(2, 8), data: rand(64, 1) } })).toBe('E_SHAPE');
    expect(run({}, { ...body, q: { shape: [4, 4], data: rand(16, 1) } })).toBe('E_SHAPE');
    expect(run({}, { ...body, q: { shape: shape(4, 9), data: new Int32Array(144) } })).toBe('E_DTYPE');
    expect(run({ window: 0 })).toBe('E_PARAM');
    expect(run({ window: 1.5 })).toBe('E_PARAM');
    expect(run({ global: [9] })).toBe('E_PARAM');
    expect(run({ global: [-1] })).toBe('E_PARAM');
    expect(run({ causal: 1 })).toBe('E_PARAM');
    expect(run({ scale: 0 })).toBe('E_PARAM');
    expect(run({ backward: true })).toBe('E_PARAM');
    expect(run({}, { q: body.q })).toBe('E_PARAM');
    expect(run({}, { ...body, q: { shape: [1, 1 << 15, 1 << 14, 1], data: new Float32Array(0) } })).toBe('E_LIMIT');
  });
});
