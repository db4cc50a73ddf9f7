/**
 * CATTEND: sparse (sliding-window + global-token, causal or not, GQA) attention over named
 * tensors q, k, v — or q alone with k/v read from the KV cache in the store — and its
 * backward pass. This file validates and gathers the inputs into an {@link AttendJob};
 * the engine's synchronous instruction runs the plain-JS kernels on it, and the bridge's
 * compute pool may run the same job on ONNX Runtime or worker threads instead.
 */
import type { Instruction, EngineContext } from '../instruction';
import type { OpInput, OpOutput } from '../types';
import { VtpuError } from '../errors';
import { boolParam, intParam, tensorsBody } from './params';
import { expectShape, floatInput, namedTensors, tensorOutput } from '../tensors';
import { AttnSpec } from '../kernels/attention_spec';
import { attendForward, attnUnits } from '../kernels/attention';
import { attendBackward } from '../kernels/attention_backward';
import { readKvCache } from './kv_cache';
import { ortShapeOk } from '../kernels/attention_ort';

const OP = 'CATTEND';
/** Most elements in any one input or output tensor (1 GiB of float32). */
export const MAX_ELEMENTS = 1 << 28;

/** Everything a kernel needs, validated: the spec and float32 inputs in (B, H, S, D) layout. */
export interface AttendJob {
  spec: AttnSpec;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  returnLse: boolean;
  /** Position → row of k/v when they were compacted from the KV cache (see kv_cache.ts), else null. */
  keyRow: Int32Array | null;
  /** Present for a backward request. */
  grad?: { o: Float32Array; dO: Float32Array; lse: Float32Array };
  /** The inputs were 3-D (no batch dim): replies drop it too. */
  noBatch: boolean;
}

/** (B, H, S, D) of a 3-D or 4-D tensor; E_SHAPE otherwise or on a zero dim. */
function dims4(name: string, shape: number[]): [number, number, number, number] {
  if (shape.length !== 3 && shape.length !== 4) throw new VtpuError('E_SHAPE', `${OP}: ${name} must be (B, H, S, D) or (H, S, D), got [${shape.join(', ')}]`);
  const d = (shape.length === 3 ? [1, ...shape] : shape) as [number, number, number, number];
  if (d.some((x) => x < 1)) throw new VtpuError('E_SHAPE', `${OP}: ${name} has a zero dimension: [${shape.join(', ')}]`);
  return d;
}

/** window, global, causal, scale from params, checked against Skv and D. */
function maskParams(p: Record<string, unknown>, Skv: number, D: number): Pick<AttnSpec, 'window' | 'globals' | 'causal' | 'scale'> {
  const window = p.window === undefined || p.window === null ? null : intParam(OP, p, 'window', 1, 1, 2 ** 31 - 1);
  const g = p.global ?? [];
  if (!Array.isArray(g) || g.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= Skv)) {
    throw new VtpuError('E_PARAM', `${OP}: global must be a list of positions in [0, ${Skv}), got ${JSON.stringify(g).slice(0, 200)}`);
  }
  const globals = [...new Set(g as number[])].sort((a, b) => a - b);
  const sc = p.scale ?? null;
  if (sc !== null && (typeof sc !== 'number' || !Number.isFinite(sc) || sc === 0)) {
    throw new VtpuError('E_PARAM', `${OP}: scale must be a finite non-zero number, got ${JSON.stringify(sc)}`);
  }
  return { window, globals, causal: boolParam(OP, p, 'causal', true), scale: (sc as number | null) ?? 1 / Math.sqrt(D) };
}

/** Validates a CATTEND request and gathers its inputs (from the body, or q from the body and k/v from the store). */
export function prepareAttend(engine: EngineContext, input: OpInput): AttendJob {
  const p = input.params;
  const named = namedTensors(OP, input);
  for (const [name, t] of named) {
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (n > MAX_ELEMENTS) throw new VtpuError('E_LIMIT', `${OP}: ${name} has ${n} elements, over the limit of ${MAX_ELEMENTS}`);
  }
  const qt = floatInput(OP, named, 'q');
  const [B, Hq, Sq, D] = dims4('q', qt.shape);
  const backward = boolParam(OP, p, 'backward', false);
  const returnLse = boolParam(OP, p, 'return_lse', false);
  let k: Float32Array;
  let v: Float32Array;
  let spec: AttnSpec;
  let keyRow: Int32Array | null = null;
  if (p.kv !== undefined) {
    if (backward) throw new VtpuError('E_PARAM', `${OP}: backward takes k and v as tensors, not kv`);
    if (named.has('k') || named.has('v')) throw new VtpuError('E_PARAM', `${OP}: give either kv or tensors k and v, not both`);
    const kv = p.kv as Record<string, unknown>;
    if (kv === null || typeof kv !== 'object' || Array.isArray(kv)) throw new VtpuError('E_PARAM', `${OP}: kv must be {layer, length, heads?}`);
    if (kv.length === undefined) throw new VtpuError('E_PARAM', `${OP}: kv.length is required`);
    const Skv = intParam(OP, kv, 'length', 1, 1, MAX_ELEMENTS);
    const cache = readKvCache(engine.store, { layer: intParam(OP, kv, 'layer', 0, 0, 2 ** 32 - 1), length: Skv, heads: kv.heads, B, Hq, D },
      (kvHeads) => ({ B, Hq, Hkv: kvHeads, Sq, Skv, D, ...maskParams(p, Skv, D) }));
    ({ k, v, spec, keyRow } = cache);
  } else {
    const kt = floatInput(OP, named, 'k');
    const vt = floatInput(OP, named, 'v');
    if (kt.shape.length !== qt.shape.length) throw new VtpuError('E_SHAPE', `${OP}: q and k must both be 3-D or both 4-D`);
    const [, Hkv, Skv] = dims4('k', kt.shape);
    expectShape(OP, 'k', kt, qt.shape.length === 4 ? [B, null, null, D] : [null, null, D]);
    expectShape(OP, 'v', vt, kt.shape);
    if (Hq % Hkv !== 0) throw new VtpuError('E_SHAPE', `${OP}: q heads ${Hq} must be a multiple of kv heads ${Hkv}`);
    k = kt.data;
    v = vt.data;
    spec = { B, Hq, Hkv, Sq, Skv, D, ...maskParams(p, Skv, D) };
  }
  const job: AttendJob = { spec, q: qt.data, k, v, returnLse, keyRow, noBatch: qt.shape.length === 3 };
  if (backward) {
    const o = floatInput(OP, named, 'o');
    const dO = floatInput(OP, named, 'do');
    const lse = floatInput(OP, named, 'lse');
    expectShape(OP, 'o', o, qt.shape);
    expectShape(OP, 'do', dO, qt.shape);
    expectShape(OP, 'lse', lse, qt.shape.slice(0, -1));
    job.grad = { o: o.data, dO: dO.data, lse: lse.data };
  }
  return job;
}

/** Shape of a (B, H, S, D)-layout result as the caller sent it. */
function shapeOut(job: AttendJob, h: number, s: number, d?: number): number[] {
  const sh = d === undefined ? [job.spec.B, h, s] : [job.spec.B, h, s, d];
  return job.noBatch ? sh.slice(1) : sh;
}

/** Names and shapes of the forward reply's tensors, in reply order: o, then lse when asked for. */
export function forwardTensors(job: AttendJob): { name: string; shape: number[] }[] {
  const s = job.spec;
  const out = [{ name: 'o', shape: shapeOut(job, s.Hq, s.Sq, s.D) }];
  if (job.returnLse) out.push({ name: 'lse', shape: shapeOut(job, s.Hq, s.Sq) });
  return out;
}

/** The reply for forward results. */
export function forwardOutput(job: AttendJob, o: Float32Array, lse: Float32Array | null, kernel: string): OpOutput {
  const named: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const t of forwardTensors(job)) named[t.name] = { shape: t.shape, data: t.name === 'o' ? o : (lse as Float32Array) };
  return tensorOutput({ kernel }, named);
}

/** The reply for backward results. */
export function backwardOutput(job: AttendJob, dq: Float32Array, dk: Float32Array, dv: Float32Array, kernel: string): OpOutput {
  const s = job.spec;
  return tensorOutput({ kernel }, {
    dq: { shape: shapeOut(job, s.Hq, s.Sq, s.D), data: dq },
    dk: { shape: shapeOut(job, s.Hkv, s.Skv, s.D), data: dk },
    dv: { shape: shapeOut(job, s.Hkv, s.Skv, s.D), data: dv },
  });
}

/** Shape of a named tensor row of a request, or undefined. */
function rowShape(input: OpInput, name: string): number[] | undefined {
  const t = input.tensors?.get(name);
  if (t) return t.shape;
  const names = input.params.tensors;
  const b = input.scrolls;
  if (!Array.isArray(names) || !b) return undefined;
  const i = names.indexOf(name);
  if (i < 0 || i >= b.n) return undefined;
  return Array.from(b.shapeValues.subarray(b.shapeOffsets[i], b.shapeOffsets[i + 1]));
}

/** Rough flop count of a CATTEND request from its header and shapes (0 when unreadable). */
export function attendFlops(input: OpInput): number {
  const q = rowShape(input, 'q');
  if (!q || q.length < 3) return 0;
  const kv = input.params.kv as { length?: unknown } | undefined;
  const k = rowShape(input, 'k');
  const skv = typeof kv?.length === 'number' ? kv.length : k ? k[k.length - 2] : 0;
  const w = input.params.window;
  const g = Array.isArray(input.params.global) ? input.params.global.length : 0;
  const keys = typeof w === 'number' ? Math.min(skv, w + g) : skv;
  const rows = q.slice(0, -1).reduce((a, d) => a * d, 1);
  return 4 * rows * keys * q[q.length - 1] * (input.params.backward === true ? 2.5 : 1);
}

/**
 * The kernel for a job off the event loop: ONNX Runtime (when it loaded) for the forward
 * passes it takes — no gradient, no per-row key limits, a shape it supports — else the JS
 * kernels split over worker threads. On the event loop itself the op runs the JS kernels.
 */
export function attendKernel(job: AttendJob, ortLoaded: boolean): 'ort' | 'pool' {
  return ortLoaded && !job.grad && !job.keyRow && ortShapeOk(job.spec) ? 'ort' : 'pool';
}

/** Runs a job on the calling thread with the plain-JS kernels. */
export function runAttendJs(job: AttendJob): OpOutput {
  const s = job.spec;
  if (job.grad) {
    const g = { dq: new Float32Array(job.q.length), dk: new Float32Array(job.k.length), dv: new Float32Array(job.v.length) };
    attendBackward(s, { q: job.q, k: job.k, v: job.v, ...job.grad }, g);
    return backwardOutput(job, g.dq, g.dk, g.dv, 'js');
  }
  const out = { o: new Float32Array(job.q.length), lse: job.returnLse ? new Float32Array(s.B * s.Hq * s.Sq) : null };
  attendForward(s, job.q, job.k, job.v, out, 0, attnUnits(s), job.keyRow);
  return forwardOutput(job, out.o, out.lse, 'js');
}

/** The CATTEND instruction (synchronous, plain JS). */
export const CATTEND: Instruction = {
  name: OP,
  body: tensorsBody,
  // Off the event loop when the work is big enough for the bridge's compute pool (its threshold).
  offload: (input) => ({ to: 'compute', flops: attendFlops(input) }),
  run(engine, input) {
    return runAttendJs(prepareAttend(engine, input));
  },
};
