import { checkLogits, dispatchPlan, expertCapacity, route, shardCounts } from '../../../engine/kernels/moe';
import { checkOrder, combine, combineBackward } from '../../../engine/kernels/moe_combine';
import { expNonPositive } from '../../../engine/kernels/exp';

/** A seeded LCG in [0, 1), so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function randomLogits(T: number, E: number, seed: number, levels = 0): Float32Array {
  const r = rng(seed);
  // levels > 0 quantizes, so rows hold many exact ties
  return Float32Array.from({ length: T * E }, () => (levels ? Math.floor(r() * levels) : r() * 8 - 4));
}

/** The reference: full softmax and a full stable sort per row (what the kernel must not do). */
function naive(x: Float32Array, T: number, E: number, k: number) {
  const ids: number[] = [];
  const ws: number[] = [];
  const P = new Float64Array(E);
  const f = new Float64Array(E);
  const f1 = new Float64Array(E);
  let z = 0;
  for (let t = 0; t < T; t++) {
    const row = Array.from(x.subarray(t * E, (t + 1) * E));
    const m = Math.max(...row);
    const s = row.reduce((a, v) => a + Math.exp(v - m), 0);
    z += (m + Math.log(s)) ** 2;
    const p = row.map((v) => Math.fround(Math.exp(v - m) / s));
    p.forEach((v, e) => (P[e] += v / T));
    const idx = p.map((_, e) => e).sort((a, b) => p[b] - p[a] || a - b).slice(0, k);
    idx.forEach((e) => { ids.push(e); ws.push(p[e]); f[e] += 1 / T; });
    f1[idx[0]] += 1 / T;
  }
  let aux = 0;
  let sw = 0;
  for (let e = 0; e < E; e++) { aux += f[e] * P[e]; sw += f1[e] * P[e]; }
  return { ids, ws, P, f, aux: aux * E, sw: sw * E, z: z / T };
}

const opts = (topK: number, capacityFactor: number | null = null, renormalize = false) => ({ topK, renormalize, capacityFactor });

describe('CMOE kernels: routing', () => {
  test('ties go to the lower expert index', () => {
    const x = Float32Array.from([1, 3, 3, 0, 3]);
    expect(Array.from(route(x, 1, 5, opts(2)).expertIds)).toEqual([1, 2]);
    expect(Array.from(route(x, 1, 5, opts(4)).expertIds)).toEqual([1, 2, 4, 0]);
    const flat = new Float32Array(6); // all equal: 0, 1, 2 in order
    expect(Array.from(route(flat, 1, 6, opts(3)).expertIds)).toEqual([0, 1, 2]);
  });

  test.each([
    [1, 128, 64, 0], [8, 128, 64, 0], [4, 16, 50, 5], [16, 16, 7, 3], [2, 3, 40, 2],
  ])('k=%i of E=%i, T=%i (levels %i) matches a full stable sort', (k, E, T, levels) => {
    const x = randomLogits(T, E, 1000 + k * E + T, levels);
    const r = route(x, T, E, opts(k));
    const ref = naive(x, T, E, k);
    expect(Array.from(r.expertIds)).toEqual(ref.ids);
    r.weights.forEach((w, i) => expect(w).toBeCloseTo(ref.ws[i], 7));
    expect(r.aux.auxLoss).toBeCloseTo(ref.aux, 10);
    expect(r.aux.switchLoss).toBeCloseTo(ref.sw, 10);
    expect(r.aux.zLoss).toBeCloseTo(ref.z, 10);
    r.aux.routerProbPerExpert.forEach((p, e) => expect(p).toBeCloseTo(ref.P[e], 10));
    r.aux.tokensPerExpert.forEach((v, e) => expect(v).toBeCloseTo(ref.f[e], 12));
    // the plan: every assignment once, grouped by expert, token order within an expert
    const want = Array.from({ length: T * k }, (_, a) => a).sort((a, b) => ref.ids[a] - ref.ids[b] || a - b);
    expect(Array.from(r.order)).toEqual(want);
    for (let e = 0; e < E; e++) {
      expect(r.counts[e]).toBe(ref.ids.filter((v) => v === e).length);
      expect(r.offsets[e + 1] - r.offsets[e]).toBe(r.counts[e]);
    }
    expect(r.kept.every((v) => v === 1)).toBe(true);
    expect(r.capacity).toBeNull();
  });

  test('renormalize makes each row of weights sum to 1, order unchanged', () => {
    const x = randomLogits(20, 32, 7);
    const a = route(x, 20, 32, opts(8));
    const b = route(x, 20, 32, opts(8, null, true));
    expect(b.expertIds).toEqual(a.expertIds);
    for (let t = 0; t < 20; t++) {
      const row = b.weights.subarray(t * 8, t * 8 + 8);
      expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
      const raw = a.weights.subarray(t * 8, t * 8 + 8);
      const sum = raw.reduce((s, v) => s + v, 0);
      row.forEach((v, j) => expect(v).toBeCloseTo(raw[j] / sum, 7));
    }
    expect(b.aux).toEqual(a.aux); // statistics do not depend on renormalization
  });

  test('-inf logits get probability 0 and lose ties by index', () => {
    const x = Float32Array.from([-Infinity, 2, -Infinity, -Infinity]);
    const r = route(x, 1, 4, opts(3));
    expect(Array.from(r.expertIds)).toEqual([1, 0, 2]);
    expect(Array.from(r.weights)).toEqual([1, 0, 0]);
  });

  test('checkLogits refuses NaN, +inf and all -inf rows', () => {
    expect(checkLogits(Float32Array.from([0, 1, -Infinity, 2]), 2, 2)).toBeNull();
    expect(checkLogits(Float32Array.from([0, NaN]), 1, 2)).toMatch(/NaN/);
    expect(checkLogits(Float32Array.from([0, Infinity]), 1, 2)).toMatch(/Infinity/);
    expect(checkLogits(Float32Array.from([0, 1, -Infinity, -Infinity]), 2, 2)).toMatch(/row 1/);
  });

  test('expNonPositive agrees with Math.exp', () => {
    const r = rng(3);
    for (let i = 0; i < 10000; i++) {
      const v = -r() * 120;
      expect(Math.abs(expNonPositive(v) - Math.exp(v))).toBeLessThanOrEqual(1e-13 * Math.exp(v));
    }
    expect(expNonPositive(0)).toBe(1);
    expect(expNonPositive(-Infinity)).toBe(0);
    expect(expNonPositive(-800)).toBe(0);
  });
});

describe('CMOE kernels: dispatch plan and capacity', () => {
  test('Switch top-1: an expert keeps its first ceil(c·T/E) tokens', () => {
    // 6 tokens all to expert 0 of 2; c = 1 → capacity 3
    const ids = Int32Array.from([0, 0, 0, 0, 0, 0]);
    const p = dispatchPlan(ids, 6, 1, 2, expertCapacity(1, 6, 1, 2));
    expect(p.capacity).toBe(3);
    expect(Array.from(p.kept)).toEqual([1, 1, 1, 0, 0, 0]);
    expect(Array.from(p.order)).toEqual([0, 1, 2]);
    expect(Array.from(p.counts)).toEqual([3, 0]);
    expect(Array.from(p.offsets)).toEqual([0, 3, 3]);
  });

  test('top-2 drops in token order, slot order within a token', () => {
    // T=4, k=2, E=3; expert 1 is picked by every token (slot 0 or 1)
    const ids = Int32Array.from([1, 0, 2, 1, 1, 2, 0, 1]);
    const cap = expertCapacity(0.75, 4, 2, 3); // ceil(2) = 2
    const p = dispatchPlan(ids, 4, 2, 3, cap);
    expect(cap).toBe(2);
    expect(Array.from(p.kept)).toEqual([1, 1, 1, 1, 0, 1, 1, 0]);
    expect(Array.from(p.order)).toEqual([1, 6, 0, 3, 2, 5]);
    expect(Array.from(p.counts)).toEqual([2, 2, 2]);
    expect(Array.from(p.offsets)).toEqual([0, 2, 4, 6]);
  });

  test('capacity is ceil(c·T·k/E), and a large factor drops nothing', () => {
    expect(expertCapacity(1.25, 8, 1, 4)).toBe(3);
    expect(expertCapacity(1, 32768, 8, 128)).toBe(2048);
    const x = randomLogits(64, 8, 11);
    const r = route(x, 64, 8, opts(2, 100));
    expect(r.order.length).toBe(128);
    const tight = route(x, 64, 8, opts(2, 0.5));
    expect(tight.capacity).toBe(8);
    expect(Math.max(...tight.counts)).toBeLessThanOrEqual(8);
    expect(tight.order.length).toBe(tight.kept.reduce((s, v) => s + v, 0));
    expect(tight.aux).toEqual(r.aux); // statistics count assignments before drops
  });

  test('shard counts sum the kept assignments of each shard', () => {
    expect(Array.from(shardCounts(Int32Array.from([3, 1, 4, 1]), Int32Array.from([0, 2, 0, 2])))).toEqual([7, 0, 2]);
  });
});

describe('CMOE kernels: combine', () => {
  const T = 5, k = 2, E = 3, H = 4;
  const x = randomLogits(T, E, 21);
  const r = route(x, T, E, opts(k, 0.7)); // capacity ceil(0.7·10/3) = 3: some drops
  const out = Float32Array.from({ length: r.order.length * H }, (_, i) => Math.sin(i + 1));
  const dy = Float32Array.from({ length: T * H }, (_, i) => Math.cos(i * 0.7));
  const pos = (a: number) => Array.from(r.order).indexOf(a);

  test('y sums the weighted rows of kept assignments', () => {
    expect(r.kept.some((v) => v === 0)).toBe(true);
    const y = combine(out, H, r.order, r.weights, T, k);
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      let want = 0;
      for (let s = 0; s < k; s++) if (r.kept[t * k + s]) want += r.weights[t * k + s] * out[pos(t * k + s) * H + h];
      expect(y[t * H + h]).toBeCloseTo(want, 6);
    }
  });

  test('backward matches finite differences', () => {
    const g = combineBackward(out, H, r.order, r.weights, dy, T, k);
    const loss = (o: Float32Array, w: Float32Array) => combine(o, H, r.order, w, T, k).reduce((s, v, i) => s + v * dy[i], 0);
    const eps = 1e-3;
    for (let i = 0; i < out.length; i += 3) {
      const a = out.slice(); a[i] += eps;
      const b = out.slice(); b[i] -= eps;
      expect(g.dExpertOut[i]).toBeCloseTo((loss(a, r.weights) - loss(b, r.weights)) / (2 * eps), 3);
    }
    for (let a = 0; a < T * k; a++) {
      const p = r.weights.slice(); p[a] += eps;
      const m = r.weights.slice(); m[a] -= eps;
      expect(g.dWeights[a]).toBeCloseTo((loss(out, p) - loss(out, m)) / (2 * eps), 3);
      if (!r.kept[a]) expect(g.dWeights[a]).toBe(0);
    }
  });

  test('checkOrder refuses out-of-range and repeated indices', () => {
    expect(checkOrder(Int32Array.from([2, 0]), 3)).toBeNull();
    expect(checkOrder(Int32Array.from([3]), 3)).toMatch(/outside/);
    expect(checkOrder(Int32Array.from([-1]), 3)).toMatch(/outside/);
    expect(checkOrder(Int32Array.from([1, 1]), 3)).toMatch(/twice/);
  });
});
