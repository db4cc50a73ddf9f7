/**
 * The native fp32 kernel (native/experts_f32.c): against ONNX Runtime's Gemm on the same weights
 * (the path it replaces) and against plain float64 arithmetic, decode rows inline on the event
 * loop, its portable loop against its AVX2 one, and its argument checks. Widths off the 16-row
 * panel grid exercise the zero rows of the last panel; an expert with seven rows a tile of six
 * and one of one.
 */
import { ExpertHost } from '../../../bridge/experts';
import { loadAddon } from '../../../bridge/native';
import { panelFloats, type F32Kernel } from '../../../engine/kernels/experts_native';
import { ensureBuilt } from './helpers';
import { seededFloats as rand } from '../engine/helpers';
import { codeWith, expectHeadChecks, expectIsasAndThreadsAgree, input, maxAbs, maxDiff, runWith, y, type LayerCase } from './experts_fixture';

type Addon = F32Kernel & { useIsa(name: string): string };
const addon = loadAddon<Addon>('vtpu_experts_f32');

const E = 4, H = 300, I = 140, T = 9, k = 2; // H = 18·16 + 12, 2I = 17·16 + 8
const GU = rand(E * 2 * I * H, 31), DOWN = rand(E * H * I, 32), X = rand(16 * H, 33);
// expert 1 gets 7 rows (a tile of 6 and one of 1), expert 3 none
const IDS = Int32Array.from([1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 2, 0, 0, 2]);
const W = rand(T * k, 34).map((v) => 0.5 + v / 4);
const CASE: LayerCase = { format: 'fp32', E, H, I, T, k, GU, DOWN, X, IDS, W };

/** Expert e's panels. */
function packed(e: number): { gu: Float32Array; dn: Float32Array } {
  const a = addon as Addon;
  const gu = new Float32Array(panelFloats(2 * I, H)), dn = new Float32Array(panelFloats(H, I));
  a.pack(2 * I, H, GU.subarray(e * 2 * I * H, (e + 1) * 2 * I * H), gu);
  a.pack(H, I, DOWN.subarray(e * H * I, (e + 1) * H * I), dn);
  return { gu, dn };
}

/** The kernel called directly on experts 0..n-1 with `rows` rows each (x rows grouped by expert). */
function direct(rows: number[], threads = 2): Float32Array {
  const ps = rows.map((_, e) => packed(e));
  const N = rows.reduce((a, b) => a + b, 0);
  const out = new Float32Array(N * H);
  (addon as Addon).swiglu(H, I, threads, X.subarray(0, N * H), out, Int32Array.from(rows), ps.map((p) => p.gu), ps.map((p) => p.dn));
  return out;
}

/** The same in float64, row by row from the unpacked weights. */
function reference(rows: number[]): Float64Array {
  const out = new Float64Array(rows.reduce((a, b) => a + b, 0) * H);
  let r = 0;
  rows.forEach((n, e) => {
    for (let m = 0; m < n; m++, r++) {
      const x = X.subarray(r * H, (r + 1) * H), h = new Float64Array(I);
      for (let i = 0; i < I; i++) {
        let g = 0, u = 0;
        for (let j = 0; j < H; j++) {
          g += GU[(e * 2 * I + i) * H + j] * x[j];
          u += GU[(e * 2 * I + I + i) * H + j] * x[j];
        }
        h[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let o = 0; o < H; o++) {
        let s = 0;
        for (let i = 0; i < I; i++) s += DOWN[(e * H + o) * I + i] * h[i];
        out[r * H + o] = s;
      }
    }
  });
  return out;
}

const maybe = addon ? describe : describe.skip;

maybe('the native fp32 kernel', () => {
  beforeAll(() => ensureBuilt('dist/bridge/experts_worker.js'));

  test('matches ONNX Runtime Gemm on the same weights, decode and prefill rows, partial panels', async () => {
    const native = await runWith(CASE, 'native'), ort = await runWith(CASE, 'onnxruntime');
    expect(native.ran).toBe('native');
    expect(ort.ran).toBe('onnxruntime');
    expect(maxDiff(native.y, ort.y)).toBeLessThan(1e-5 * maxAbs(ort.y)); // float summation order only
    expect(maxAbs(native.y)).toBeGreaterThan(0.1);
  });

  test('matches float64 arithmetic on the unpacked weights', () => {
    const rows = [7, 1, 0, 3], want = reference(rows);
    expect(maxDiff(direct(rows), want)).toBeLessThan(1e-5 * maxAbs(want));
  });

  test('decode-sized runs are answered on the event loop with the thread\'s result', async () => {
    const host = new ExpertHost({ threads: 2 });
    const run = (rows: number) => host.run(input({ mode: 'run', layer: 0 }, {
      x: { shape: [rows, H], data: X.subarray(0, rows * H) }, expert_ids: { shape: [rows, k], data: IDS.subarray(0, rows * k) }, weights: { shape: [rows, k], data: W.subarray(0, rows * k) } }));
    try {
      await host.run(input({ mode: 'load', layer: 0, experts: E, hidden: H, intermediate: I, format: 'fp32' }, { gate_up: { shape: [E, 2 * I, H], data: GU.slice() }, down: { shape: [E, H, I], data: DOWN.slice() } }));
      const before = host.inlineRuns;
      const threaded = y(await run(T));
      const small = y(await run(2));
      expect(host.inlineRuns).toBe(before + 1);
      expect(maxDiff(small, threaded.subarray(0, 2 * H))).toBeLessThan(1e-6 * maxAbs(threaded));
    } finally {
      host.destroy();
    }
  });

  test('the portable loop and the AVX2 one agree; any thread count gives the same rows', () => {
    expectIsasAndThreadsAgree((name) => (addon as Addon).useIsa(name), (threads) => direct([7, 1, 0, 3], threads));
  });

  test('linear (a dense layer) matches float64 on partial panels, tiles of 6 and 1, any threads and ISA', () => {
    const a = addon as Addon, N = 2 * I + 5, K = H; // N = 285: the last panel has 13 rows
    const Wd = GU.subarray(0, N * K), p = new Float32Array(panelFloats(N, K));
    a.pack(N, K, Wd, p);
    for (const rows of [1, 7]) {
      const want = new Float64Array(rows * N);
      for (let r = 0; r < rows; r++) for (let n = 0; n < N; n++) {
        let s = 0;
        for (let j = 0; j < K; j++) s += X[r * K + j] * Wd[n * K + j];
        want[r * N + n] = s;
      }
      const run = (threads = 2) => {
        const out = new Float32Array(rows * N);
        expect(a.linear(N, K, threads, X.subarray(0, rows * K), out, p)).toBeGreaterThanOrEqual(1);
        return out;
      };
      expect(maxDiff(run(2), want)).toBeLessThan(1e-5 * maxAbs(want));
      expectIsasAndThreadsAgree((name) => a.useIsa(name), run);
    }
    const lin = (...args: unknown[]) => (a.linear as (...x: unknown[]) => number)(...args);
    const ok = [N, K, 2, X.subarray(0, K), new Float32Array(N), p] as const;
    expect(codeWith(lin, ok, 0, 0)).toBe('E_PARAM');
    expect(codeWith(lin, ok, 2, 65)).toBe('E_PARAM'); // threads
    expect(codeWith(lin, ok, 3, X.subarray(0, K - 1))).toBe('E_SHAPE'); // not whole rows
    expect(codeWith(lin, ok, 3, new Float32Array(0))).toBe('E_SHAPE');
    expect(codeWith(lin, ok, 4, new Float32Array(N - 1))).toBe('E_SHAPE');
    expect(codeWith(lin, ok, 5, p.subarray(16))).toBe('E_SHAPE');
    expect(codeWith(lin, ok, 5, new Float64Array(p.length))).toBe('E_SHAPE');
  });

  test('bfloat16 panels: each weight rounded to nearest (ties to even), products as float32 panels of the rounded weights', () => {
    const a = addon as Addon;
    const one = (w: number) => {
      const p = new Uint16Array(panelFloats(1, 1));
      a.pack(1, 1, Float32Array.of(w), p);
      return p[0];
    };
    expect(one(1)).toBe(0x3f80);
    expect(one(1 + 2 ** -8)).toBe(0x3f80); // halfway: to the even neighbour
    expect(one(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(one(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // past halfway
    expect(one(-2.5)).toBe(0xc020);
    expect(one(NaN) & 0x7fc0).toBe(0x7fc0); // still a NaN, never an infinity
    const N = 2 * I + 5, K = H; // partial last panel
    const bf = new Uint16Array(panelFloats(N, K)), f32 = new Float32Array(panelFloats(N, K));
    a.pack(N, K, GU.subarray(0, N * K), bf);
    // the same rounded weights as float32 panels: widen every element
    const widened = new Float32Array(new Uint32Array(Array.from(bf, (h) => h << 16)).buffer);
    f32.set(widened);
    for (const rows of [1, 7]) {
      const run = (p: Float32Array | Uint16Array, threads = 2) => {
        const out = new Float32Array(rows * N);
        expect(a.linear(N, K, threads, X.subarray(0, rows * K), out, p)).toBeGreaterThanOrEqual(1);
        return out;
      };
      expect(Array.from(run(bf))).toEqual(Array.from(run(f32))); // same sums in the same order
      expectIsasAndThreadsAgree((name) => a.useIsa(name), (threads) => run(bf, threads));
      const exact = run(bf), fp = new Float32Array(panelFloats(N, K));
      a.pack(N, K, GU.subarray(0, N * K), fp);
      const err = maxDiff(exact, run(fp)); // what rounding the weights cost: about 2^-9 of a weight each
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(2e-2 * maxAbs(exact));
    }
    const lin = (...args: unknown[]) => (a.linear as (...x: unknown[]) => number)(...args);
    expect(codeWith(lin, [N, K, 2, X.subarray(0, K), new Float32Array(N), bf] as const, 5, bf.subarray(16))).toBe('E_SHAPE');
    expect(codeWith(lin, [N, K, 2, X.subarray(0, K), new Float32Array(N), bf] as const, 5, new Int16Array(bf.length))).toBe('E_SHAPE');
  });

  test('bad arguments are typed errors, never a crash', () => {
    const a = addon as Addon, p = packed(0);
    const ok = [H, I, 1, X.subarray(0, H), new Float32Array(H), Int32Array.of(1), [p.gu], [p.dn]] as const;
    const call = (i: number, v: unknown) => codeWith(a.swiglu as (...x: unknown[]) => number, ok, i, v);
    expectHeadChecks(call, H);
    expect(call(6, p.gu)).toBe('E_PARAM'); // not an array
    expect(call(6, [p.gu.subarray(1)])).toBe('E_SHAPE'); // panels of the wrong size
    expect(call(7, [new Float64Array(p.dn.length)])).toBe('E_SHAPE');
    expect(a.swiglu(H, I, 1, new Float32Array(0), new Float32Array(0), Int32Array.of(0), [p.gu], [p.dn])).toBe(0);
    const pack = (...args: unknown[]) => (a.pack as (...x: unknown[]) => void)(...args);
    const okPack = [H, I, DOWN.subarray(0, H * I), new Float32Array(panelFloats(H, I))] as const;
    expect(codeWith(pack, okPack, 0, H)).toBe('ok');
    expect(codeWith(pack, okPack, 0, 0)).toBe('E_PARAM');
    expect(codeWith(pack, okPack, 3, new Float32Array(H * I))).toBe('E_SHAPE'); // no room for the padded panel
    expect(codeWith(pack, okPack, 2, DOWN.subarray(0, H * I - 1))).toBe('E_SHAPE');
    expect(() => a.useIsa('avx9')).toThrow(expect.objectContaining({ code: 'E_PARAM' }));
  });
});
