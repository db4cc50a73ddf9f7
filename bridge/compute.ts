/**
 * The compute path for CATTEND requests big enough to be worth leaving the main thread.
 * Inputs are gathered under the store's read gate (k/v may come from the KV cache), then
 * the gate is released and the work runs off the event loop, so other clients keep being
 * served: the forward pass on ONNX Runtime in a worker thread of its own (inputs moved there) (its intra-op
 * threads use every core; its node binding runs synchronously, so never on the event
 * loop), the backward pass (and forwards ORT cannot take) on Piscina workers that split
 * the (batch, kv head) units over SharedArrayBuffer copies of the inputs.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { VtpuError } from '../engine/errors';
import type { Engine } from '../engine/engine';
import type { OpInput, OpOutput } from '../engine/types';
import type { Offload } from '../engine/instruction';
import { AttendJob, attendKernel, backwardOutput, forwardOutput, forwardTensors, prepareAttend } from '../engine/ops/cattend';
import { layOutRaw, layOutTensorFrame } from './tensor_frame';
import { wantsLayout } from './tensor_layout';
import type { LinkHandle } from './shm/links';
import type { ArenaSpan } from './shm/span';
import { attnUnits } from '../engine/kernels/attention';
import type { AttendTask, OrtResult, OrtTask } from './compute_worker';

/** Options of {@link ComputePool}. */
export interface ComputePoolOptions {
  /** Worker threads for the JS kernels (≥ 1). */
  threads: number;
  /** Requests with at least this many estimated flops leave the main thread (≥ 1). */
  minFlops: number;
  /** Use ONNX Runtime for forward passes when it loads (default true). */
  ort?: boolean;
}

/** Runs `fn` holding the store's read gate. */
export type ReadGate = <T>(fn: () => T) => Promise<T>;

/** The compiled worker (see workerFile in pool.ts for why dist/ under ts-jest). */
function computeWorkerFile(): string {
  return __filename.endsWith('.ts') ? join(__dirname, '..', 'dist', 'bridge', 'compute_worker.js') : join(__dirname, 'compute_worker.js');
}

/** A shared copy of `a` (workers read it without a clone). */
function shared(a: Float32Array): Float32Array {
  const s = new Float32Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

/** True when `require` can find the module (without loading it). */
function resolvable(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Off-main-thread CATTEND. */
export class ComputePool {
  readonly threads: number;
  readonly minFlops: number;
  /** False once ORT is off by option, not installed, or failed to run (then the JS workers serve). */
  private useOrt: boolean;
  private readonly piscina: Piscina<AttendTask, number>;
  /** One thread: ORT passes queue there (each already uses every core) and its sessions stay cached. */
  private readonly ortThread: Piscina<OrtTask, OrtResult>;
  /** The input buffer of the last ORT pass, kept for the next one (one request's q, k, v). */
  private spare: ArrayBuffer | null = null;
  private destroyed?: Promise<void>;

  /** Throws TypeError on bad options and E_INTERNAL when the worker is not built. */
  constructor(private readonly engine: Engine, opts: ComputePoolOptions) {
    const int = (name: string, v: unknown, min: number) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new TypeError(`compute option '${name}' must be an integer >= ${min}, got ${String(v)}`);
      return v;
    };
    this.threads = int('threads', opts.threads, 1);
    this.minFlops = int('minFlops', opts.minFlops, 1);
    // Resolve only: the binary loads in the ORT worker, never on the event loop's thread.
    this.useOrt = (opts.ort ?? true) && resolvable('onnxruntime-node');
    const filename = computeWorkerFile();
    if (!existsSync(filename)) throw new VtpuError('E_INTERNAL', `compute worker ${filename} is missing; run \`npm run build\` first`);
    this.piscina = new Piscina({ filename, minThreads: 0, maxThreads: this.threads, idleTimeout: 30_000 });
    this.ortThread = new Piscina({ filename, minThreads: 0, maxThreads: 1, idleTimeout: 600_000 });
  }

  /** Takes a request whose op asks for the compute pool (CATTEND) with an estimate at or over minFlops. */
  accepts(hint: Offload): boolean {
    return hint.to === 'compute' && !this.destroyed && hint.flops >= this.minFlops;
  }

  /**
   * Gathers inputs under the read gate, then computes off the event loop. With a
   * shared-memory `link`, the ORT thread reads q, k, v where the client wrote them and
   * writes o (and lse) into the reply's block: no copy either way.
   */
  async run(op: string, input: OpInput, readGate: ReadGate, link?: LinkHandle): Promise<OpOutput> {
    if (op !== 'CATTEND') throw new VtpuError('E_INTERNAL', `the compute pool serves CATTEND, not ${op}`);
    const job = await readGate(() => prepareAttend(this.engine, input));
    if (attendKernel(job, this.useOrt) === 'ort') {
      const spans = link ? [job.q, job.k, job.v].map((a) => link.span(a)) : [];
      const inArena = spans.length === 3 && spans.every((x) => x !== null);
      // Else own, transferred copies (the ORT binding rejects SharedArrayBuffer-backed
      // inputs), in one buffer the worker hands back for the next request: a fresh one
      // would cost page faults and zeroing on every call.
      const copies = inArena ? null : this.ortInputs(job);
      const [q, k, v] = copies ? [copies.q, copies.k, copies.v] : (spans as ArenaSpan[]);
      // The reply is laid out first and the outputs written straight into it.
      const tensors = forwardTensors(job);
      const rows = tensors.map((t) => ({ shape: t.shape }));
      const raw = wantsLayout(input.params);
      const frame = raw ? layOutRaw(rows) : await layOutTensorFrame(rows);
      const block = raw && frame && link ? link.reserve(frame.length) : null;
      try {
        const out = block ? { span: block.span, rows } : frame ? { buffer: frame.buffer, at: frame.valuesAt, rows } : undefined;
        const transferList = [copies?.buffer, block ? undefined : frame?.buffer].filter((b): b is ArrayBuffer => b !== undefined);
        const r = await this.ortThread.run({ ort: true, spec: job.spec, q, k, v, wantLse: job.returnLse, out }, { transferList });
        if (r.inputs) this.spare = r.inputs;
        if (!frame) return forwardOutput(job, r.o as Float32Array, r.lse, 'ort');
        const result: Record<string, unknown> = { kernel: 'ort', tensors: tensors.map((t) => t.name) };
        if (frame.layout) result.layout = frame.layout;
        if (block) return { result, raw: block.bytes }; // o was written into the reply's block (r.o is null)
        const body = new Uint8Array((r.o as Float32Array).buffer as ArrayBuffer, 0, frame.length);
        return raw ? { result, raw: body } : { result, encoded: body };
      } catch (e) {
        if (block) link?.unreserve(block.bytes);
        // A broken ORT install must not fail requests: say so once and use the JS kernels.
        this.useOrt = false;
        process.emitWarning(`vtpu: ONNX Runtime failed (${(e as Error).message}); CATTEND uses the JS kernels from now on`);
      }
    }
    return this.runWorkers(job);
  }

  /** q, k, v copied into one plain buffer: the spare one when it is big enough, else a new one. */
  private ortInputs(job: AttendJob): { buffer: ArrayBuffer; q: Float32Array; k: Float32Array; v: Float32Array } {
    const n = job.q.length + job.k.length + job.v.length;
    const buffer = this.spare && this.spare.byteLength >= n * 4 ? this.spare : new ArrayBuffer(n * 4);
    this.spare = null;
    let at = 0;
    const put = (x: Float32Array) => {
      const view = new Float32Array(buffer, at * 4, x.length);
      view.set(x);
      at += x.length;
      return view;
    };
    return { buffer, q: put(job.q), k: put(job.k), v: put(job.v) };
  }

  /** The job split by (batch, kv head) units over the worker threads. */
  async runWorkers(job: AttendJob): Promise<OpOutput> {
    const s = job.spec;
    const base = { spec: s, q: shared(job.q), k: shared(job.k), v: shared(job.v), keyRow: job.keyRow };
    const units = attnUnits(s);
    const parts = Math.min(units, this.threads * 2);
    const fresh = (n: number) => new Float32Array(new SharedArrayBuffer(n * 4));
    const o = fresh(job.q.length);
    const lse = job.returnLse ? fresh(s.B * s.Hq * s.Sq) : null;
    const grad = job.grad && { o: shared(job.grad.o), dO: shared(job.grad.dO), lse: shared(job.grad.lse), dq: fresh(job.q.length), dk: fresh(job.k.length), dv: fresh(job.v.length) };
    const tasks: Promise<number>[] = [];
    for (let i = 0; i < parts; i++) {
      const u0 = Math.floor((i * units) / parts), u1 = Math.floor(((i + 1) * units) / parts);
      if (u1 > u0) tasks.push(this.piscina.run(grad ? { ...base, u0, u1, grad } : { ...base, u0, u1, o, lse }));
    }
    await Promise.all(tasks);
    return grad ? backwardOutput(job, grad.dq, grad.dk, grad.dv, 'pool') : forwardOutput(job, o, lse, 'pool');
  }

  /** Stops the workers; idempotent. */
  destroy(): Promise<void> {
    this.spare = null;
    return (this.destroyed ??= Promise.all([this.piscina.destroy(), this.ortThread.destroy()]).then(() => undefined));
  }
}
