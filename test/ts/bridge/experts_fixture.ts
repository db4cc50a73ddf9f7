/**
 * What the native experts kernels' tests share: CEXPERTS inputs for an ExpertHost, y out of a
 * run's reply, a layer loaded and run on either kernel, error codes of a direct call.
 */
import { ExpertHost } from '../../../bridge/experts';
import type { ExpertKernel } from '../../../bridge/experts_run';
import { OutTensor, tensorBatch } from '../../../engine/tensors';
import type { OpInput, OpOutput } from '../../../engine/types';
import { seededFloats } from '../engine/helpers';

export const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
export const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** A CEXPERTS input: params and named tensors. */
export const input = (params: Record<string, unknown>, named: Record<string, OutTensor> = {}): OpInput => {
  const names = Object.keys(named);
  return (names.length ? { params: { ...params, tensors: names }, scrolls: tensorBatch(names.map((n) => named[n])) } : { params }) as OpInput;
};

/** The `y` tensor of a run's reply. */
export function y(out: OpOutput): Float32Array {
  const i = (out.result.tensors as string[]).indexOf('y');
  const b = out.scrolls!;
  return new Float32Array(b.values.slice(b.valueOffsets[i], b.valueOffsets[i + 1]).buffer);
}

/** One layer's weights and a run over it: T tokens of x routed to k experts each. */
export interface LayerCase {
  format: 'q4' | 'q8' | 'fp32';
  E: number; H: number; I: number; T: number; k: number;
  GU: Float32Array; DOWN: Float32Array; X: Float32Array; IDS: Int32Array; W: Float32Array;
}

/** Runs the case in a host whose native formats use `kernel`; returns y and what info said ran it. */
export async function runWith(c: LayerCase, kernel: ExpertKernel): Promise<{ y: Float32Array; ran: unknown }> {
  const { E, H, I, T, k } = c;
  const host = new ExpertHost({ threads: 2, kernel });
  try {
    await host.run(input({ mode: 'load', layer: 0, experts: E, hidden: H, intermediate: I, format: c.format }, { gate_up: { shape: [E, 2 * I, H], data: c.GU.slice() }, down: { shape: [E, H, I], data: c.DOWN.slice() } }));
    const out = await host.run(input({ mode: 'run', layer: 0 }, { x: { shape: [T, H], data: c.X.subarray(0, T * H) }, expert_ids: { shape: [T, k], data: c.IDS }, weights: { shape: [T, k], data: c.W } }));
    const info = (await host.run(input({ mode: 'info', layer: 0 }))).result.layers as { kernel: string }[];
    return { y: y(out), ran: info[0].kernel };
  } finally {
    host.destroy();
  }
}

/** The error code `fn(...args)` throws with argument i replaced by v ('ok' when it does not throw). */
export function codeWith(fn: (...a: unknown[]) => unknown, ok: readonly unknown[], i: number, v: unknown): string | undefined {
  const args = [...ok];
  args[i] = v;
  try {
    fn(...args);
    return 'ok';
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

/** The portable loop agrees with the AVX2 one, and any thread count gives the same rows (`run(threads)` calls the kernel). */
export function expectIsasAndThreadsAgree(useIsa: (name: string) => string, run: (threads?: number) => Float32Array): void {
  const first = useIsa('');
  try {
    const fast = run();
    expect(run(1)).toEqual(fast); // work split over threads, each piece computed whole
    expect(run(5)).toEqual(fast);
    useIsa('portable');
    expect(maxDiff(run(), fast)).toBeLessThan(1e-5 * maxAbs(fast));
  } finally {
    useIsa(first);
  }
}

/**
 * The argument checks both kernels' swiglu(H, I, threads, x, y, counts, ...lists) share, on `ok`
 * (one expert, one row of width H); `code(i, v)` calls it with argument i replaced.
 */
export function expectHeadChecks(code: (i: number, v: unknown) => string | undefined, H: number): void {
  expect(code(0, H)).toBe('ok');
  expect(code(2, 0)).toBe('E_PARAM'); // threads
  expect(code(1, 1.5)).toBe('E_PARAM');
  expect(code(5, Int32Array.of(1, 0))).toBe('E_PARAM'); // counts longer than the experts
  expect(code(5, Int32Array.of(-1))).toBe('E_PARAM');
  expect(code(3, seededFloats(H - 1, 1))).toBe('E_SHAPE'); // x
  expect(code(4, new Float32Array(2 * H))).toBe('E_SHAPE'); // y
}
