/**
 * The native block-quantised kernels (q4: native/experts_q4.c, q8: native/experts_q8.c): each
 * against ONNX Runtime's MatMulNBits on the same packed weights (the path it replaces), its
 * portable loop against its AVX2 one, and its argument checks. Shapes off the 128- and 32-block
 * grids exercise the padded last block; an expert with more than four rows exercises the
 * prefill tiles.
 */
import { ExpertHost } from '../../../bridge/experts';
import { loadAddon } from '../../../bridge/native';
import type { BlockKernel } from '../../../engine/kernels/experts_native';
import { packExpert } from '../../../engine/kernels/experts_graph';
import { ensureBuilt } from './helpers';
import { seededFloats as rand } from '../engine/helpers';
import { codeWith, expectHeadChecks, expectIsasAndThreadsAgree, input, maxAbs, maxDiff, runWith, y, type LayerCase } from './experts_fixture';

type Addon = BlockKernel & { useIsa(name: string): string };

const E = 4, H = 296, I = 136, T = 9, k = 2; // H = 2·128 + 40 = 9·32 + 8, I = 128 + 8 = 4·32 + 8
const GU = rand(E * 2 * I * H, 21), DOWN = rand(E * H * I, 22), X = rand(16 * H, 23);
// expert 1 gets 7 rows (a tile of 4 and one of 3), expert 3 none
const IDS = Int32Array.from([1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 2, 0, 0, 2]);
const W = rand(T * k, 24).map((v) => 0.5 + v / 4);

describe.each(['q4', 'q8'] as const)('the native %s kernel', (format) => {
  const addon = loadAddon<Addon>(`vtpu_experts_${format}`);
  const CASE: LayerCase = { format, E, H, I, T, k, GU, DOWN, X, IDS, W };
  const maybe = addon ? test : test.skip;

  /** The kernel called directly on experts 0..n-1 with `rows` rows each (x rows grouped by expert). */
  function direct(rows: number[], threads = 2): Float32Array {
    const packed = rows.map((_, e) => packExpert(format, H, I, { gateUp: GU.subarray(e * 2 * I * H, (e + 1) * 2 * I * H), down: DOWN.subarray(e * H * I, (e + 1) * H * I) }));
    const N = rows.reduce((a, b) => a + b, 0);
    const out = new Float32Array(N * H);
    const f32 = (b: Uint8Array) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    (addon as Addon).swiglu(H, I, threads, X.subarray(0, N * H), out, Int32Array.from(rows),
      packed.map((p) => p.gateUp.w), packed.map((p) => f32(p.gateUp.scale!)), packed.map((p) => p.down.w), packed.map((p) => f32(p.down.scale!)));
    return out;
  }

  beforeAll(() => ensureBuilt('dist/bridge/experts_worker.js'));

  maybe('matches ONNX Runtime MatMulNBits (level 4) on the same weights, decode and prefill rows, padded blocks', async () => {
    const native = await runWith(CASE, 'native'), ort = await runWith(CASE, 'onnxruntime');
    expect(native.ran).toBe('native');
    expect(ort.ran).toBe('onnxruntime');
    // Same codes, same int8 activations: only float summation order differs (and an activation
    // that lands on a rounding tie either way), far below the format's own error (q4: ~1e-2 of the scale).
    expect(maxDiff(native.y, ort.y)).toBeLessThan(1e-5 * maxAbs(ort.y)); // 3e-7 here
    expect(maxAbs(native.y)).toBeGreaterThan(0.1);
  });

  maybe('decode-sized runs are answered on the event loop with the same result; loads and drops never leave a stale copy there', async () => {
    const host = new ExpertHost({ threads: 2 });
    const load = (gu: Float32Array, first: number, n: number, replace: boolean) => host.run(input(
      { mode: 'load', layer: 0, experts: E, hidden: H, intermediate: I, format, first, replace },
      { gate_up: { shape: [n, 2 * I, H], data: gu.slice(first * 2 * I * H, (first + n) * 2 * I * H) }, down: { shape: [n, H, I], data: DOWN.slice(first * H * I, (first + n) * H * I) } }));
    const run = (rows: number) => host.run(input({ mode: 'run', layer: 0 }, {
      x: { shape: [rows, H], data: X.subarray(0, rows * H) }, expert_ids: { shape: [rows, k], data: IDS.subarray(0, rows * k) }, weights: { shape: [rows, k], data: W.subarray(0, rows * k) } }));
    try {
      await load(GU, 0, E, true);
      const before = host.inlineRuns;
      const threaded = y(await run(T)); // T = 9 tokens: the thread
      expect(host.inlineRuns).toBe(before);
      const small = y(await run(2)); // 2 tokens: inline
      expect(host.inlineRuns).toBe(before + 1);
      expect(maxDiff(small, threaded.subarray(0, 2 * H))).toBeLessThan(1e-6 * maxAbs(threaded));
      // replacing the layer: the first chunk drops the inline copy, so a run sees the half-built layer
      const GU2 = GU.map((v) => -v);
      await load(GU2, 0, 2, true);
      await expect(run(2)).rejects.toMatchObject({ code: 'E_PARAM', message: expect.stringMatching(/missing experts 2-3/) });
      await load(GU2, 2, 2, false);
      const replaced = y(await run(2));
      expect(host.inlineRuns).toBe(before + 2);
      expect(maxDiff(replaced, small)).toBeGreaterThan(0.01 * maxAbs(small)); // the new weights, not the old copy
      // errors inline are the thread's errors
      await expect(host.run(input({ mode: 'run', layer: 0 }, { x: { shape: [1, H], data: X.subarray(0, H) }, expert_ids: { shape: [1, k], data: Int32Array.of(0, E) }, weights: { shape: [1, k], data: W.subarray(0, k) } })))
        .rejects.toMatchObject({ code: 'E_PARAM', message: expect.stringMatching(/outside 0..3/) });
      await expect(host.run(input({ mode: 'run', layer: 0 }, { x: { shape: [1, H - 8], data: X.subarray(0, H - 8) }, expert_ids: { shape: [1, k], data: IDS.subarray(0, k) }, weights: { shape: [1, k], data: W.subarray(0, k) } })))
        .rejects.toMatchObject({ code: 'E_SHAPE' });
      expect(host.inlineRuns).toBe(before + 4);
      await host.run(input({ mode: 'drop', layer: 0 }));
      await expect(run(2)).rejects.toMatchObject({ code: 'E_PARAM', message: expect.stringMatching(/no experts uploaded/) });
    } finally {
      host.destroy();
    }
  });

  maybe('the portable loop and the AVX2 one agree; any thread count gives the same rows', () => {
    expectIsasAndThreadsAgree((name) => (addon as Addon).useIsa(name), (threads) => direct([7, 1, 0, 3], threads));
  });

  maybe('bad arguments are typed errors, never a crash', () => {
    const a = addon as Addon;
    const p = packExpert(format, H, I, { gateUp: GU.subarray(0, 2 * I * H), down: DOWN.subarray(0, H * I) });
    const f32 = (b: Uint8Array) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    const ok = [H, I, 1, X.subarray(0, H), new Float32Array(H), Int32Array.of(1), [p.gateUp.w], [f32(p.gateUp.scale!)], [p.down.w], [f32(p.down.scale!)]] as const;
    const call = (i: number, v: unknown) => codeWith(a.swiglu as (...x: unknown[]) => number, ok, i, v);
    expectHeadChecks(call, H);
    expect(call(6, p.gateUp.w)).toBe('E_PARAM'); // not an array
    expect(call(6, [p.gateUp.w.subarray(1)])).toBe('E_SHAPE'); // codes of the wrong size
    expect(call(7, [new Float64Array(f32(p.gateUp.scale!).length)])).toBe('E_SHAPE');
    expect(a.swiglu(H, I, 1, new Float32Array(0), new Float32Array(0), Int32Array.of(0), [p.gateUp.w], [f32(p.gateUp.scale!)], [p.down.w], [f32(p.down.scale!)])).toBe(0);
    expect(() => a.useIsa('avx9')).toThrow(expect.objectContaining({ code: 'E_PARAM' }));
  });
});
