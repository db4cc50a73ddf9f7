/**
 * The sidecar's expert host: CEXPERTS requests are validated on the event loop and run
 * in one worker thread that owns the expert runtime (started on first use). If that
 * thread dies (e.g. out of memory), pending requests fail with E_INTERNAL, its layers
 * are gone and the next request starts a fresh one (runs then answer "no experts
 * uploaded" until the client uploads again).
 *
 * Decode-sized runs of layers on a native kernel (q4, q8, fp32) skip the thread: when a layer is
 * complete the thread hands its packed experts over (shared memory), and a run of at most
 * INLINE_ROWS tokens with nothing queued in the thread is answered here, on the event loop (~1.5
 * ms for a 30B-A3B layer's token in q4). The two hops to the thread and back cost ~0.5 ms a call on a 2-core
 * VM, a quarter of a decode call. Larger runs, and every load, info and drop, go to the thread.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { VtpuError, type ErrorCode } from '../engine/errors';
import type { OpInput, OpOutput } from '../engine/types';
import { expertsOutput, expertsTask, OP, runReplyBytes, taskBuffers, type ExpertsAnswer, type ExpertsTask } from '../engine/ops/cexperts';
import type { LinkHandle } from './shm/links';
import { wantsLayout } from './tensor_layout';
import { ExpertRuntime } from '../engine/kernels/experts_runtime';
import { nativeKernels, runAnswer, type ExpertKernel } from './experts_run';
import { bellAddon, BellLayers, type BellStats } from './experts_bell';
import { denseLoadOutput, denseRunOutput, denseTask, isDenseMode, type DenseTask } from '../engine/ops/cexperts_dense';
import { DenseLayers } from './dense';

/** Options of {@link ExpertHost}. */
export interface ExpertHostOptions {
  /** ONNX Runtime intra-op threads per session, and the native kernels' threads (0 = one per core). */
  threads?: number;
  /**
   * What runs `q4`, `q8` and `fp32` layers: the native kernels (default; ONNX Runtime where an addon
   * did not build), or ONNX Runtime's MatMulNBits and Gemm (kept for comparing the two).
   */
  kernel?: ExpertKernel;
}

/** Most tokens a run answered on the event loop may have (a decode step's batch). */
export const INLINE_ROWS = 8;

type Pending = { resolve: (a: ExpertsAnswer) => void; reject: (e: Error) => void };

/** Tokens routed to each expert, per layer, since the layer was loaded (layers ascending). */
export interface ExpertLoad {
  layers: number[];
  /** `counts[i][e]`: token-slots layer `layers[i]` sent to expert e. */
  counts: number[][];
}

/** The compiled worker (dist/ under ts-jest, as for the other pools). */
function workerFile(): string {
  return __filename.endsWith('.ts') ? join(__dirname, '..', 'dist', 'bridge', 'experts_worker.js') : join(__dirname, 'experts_worker.js');
}

/** The answer with its arrays as views of this realm's typed-array classes (the reply encoder checks them with instanceof). */
function local(a: ExpertsAnswer): ExpertsAnswer {
  if (a.mode !== 'run' || !a.y || !a.counts) return a;
  return { ...a, y: new Float32Array(a.y.buffer as ArrayBuffer), counts: new Int32Array(a.counts.buffer as ArrayBuffer) };
}

/** Runs CEXPERTS off the event loop. */
export class ExpertHost {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Experts per layer, as the runtime last answered (sizes a run's reply block). */
  private readonly experts = new Map<number, number>();
  private readonly loads = new Map<number, Float64Array>();
  /** Runs answered on the event loop (see INLINE_ROWS); the tests read it. */
  inlineRuns = 0;
  /** Complete native layers the thread handed over, for inline runs; null without any native kernel. */
  private readonly inline: ExpertRuntime | null;
  /** The same layers as the clients' doorbells see them (bridge/experts_bell.ts); null without the addon. */
  private readonly bell: BellLayers | null;
  /** Dense layers (CEXPERTS dense_load / dense_run), held on this thread. */
  private readonly dense: DenseLayers;

  constructor(private readonly opts: ExpertHostOptions = {}) {
    const k = nativeKernels(opts.kernel);
    this.inline = k.q4 || k.q8 || k.f32 ? new ExpertRuntime({ threads: opts.threads ?? 0, ...k }) : null;
    const addon = this.inline ? bellAddon() : null;
    this.bell = addon ? new BellLayers(addon, k) : null;
    // Dense layers need the fp32 kernel even where ONNX Runtime runs the experts.
    this.dense = new DenseLayers(k.f32 ?? nativeKernels().f32, this.bell, opts.threads ?? 0);
  }

  /** The table a client's doorbell answers from (SHM mode bell), or null: no doorbell here. */
  bellTable(): object | null {
    return this.closed ? null : this.bell?.table ?? null;
  }

  /** Calls answered by doorbells, or null without them. */
  bellStats(): BellStats | null {
    return this.bell?.stats() ?? null;
  }

  /** Stops inline and doorbell runs of `layer` (all when omitted); what the bells routed joins the load matrix. */
  private dropInline(layer?: number): void {
    for (const [l, t] of this.bell?.remove(layer) ?? []) this.tallyRow(l, t);
    this.inline?.drop(layer);
  }

  /** True for the op this host serves. */
  accepts(): boolean {
    return !this.closed;
  }

  private start(): Worker {
    const file = workerFile();
    if (!existsSync(file)) throw new VtpuError('E_INTERNAL', `expert worker ${file} is missing; run \`npm run build\` first`);
    const w = new Worker(file, { workerData: { threads: this.opts.threads ?? 0, kernel: this.opts.kernel ?? 'native' } });
    w.on('message', (m: { id: number; answer?: ExpertsAnswer; error?: { code: ErrorCode; message: string } }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new VtpuError(m.error.code, m.error.message));
      else p.resolve(local(m.answer as ExpertsAnswer));
    });
    const fail = (why: string) => {
      if (this.worker !== w) return;
      this.worker = null;
      this.experts.clear();
      this.dropInline();
      this.loads.clear(); // its layers are gone
      const err = new VtpuError('E_INTERNAL', `${OP}: the expert runtime stopped (${why}); its layers are gone, upload them again`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', (e) => fail(e.message));
    w.on('exit', (code) => fail(`exit code ${code}`));
    return w;
  }

  /**
   * Validates the request here, runs it on the runtime's thread. With a shared-memory
   * `link`, a run's x is read where the client wrote it and y (and counts) written into
   * the reply's block, when the request asked for the raw layout and the layer is known.
   */
  async run(input: OpInput, link?: LinkHandle): Promise<OpOutput> {
    if (this.closed) throw new VtpuError('E_INTERNAL', 'sidecar is closing');
    if (isDenseMode(input.params.mode)) return this.runDense(denseTask(input));
    const task = expertsTask(input, link !== undefined);
    if (task.mode === 'run' && this.dense.has(task.layer)) throw new VtpuError('E_PARAM', `${OP}: layer ${task.layer} is a dense layer; run it with mode dense_run`);
    if (task.mode === 'load' && this.dense.has(task.layer)) {
      if (!task.replace) throw new VtpuError('E_PARAM', `${OP}: layer ${task.layer} is a dense layer; give replace to load experts there`);
      this.dense.drop(task.layer);
    }
    // Nothing queued in the thread, so nothing an inline run could overtake.
    const inline = task.mode === 'run' && task.T <= INLINE_ROWS && this.pending.size === 0 && !!this.inline?.has(task.layer);
    let block: ReturnType<LinkHandle['reserve']> = null;
    if (task.mode === 'run' && task.x instanceof Float32Array && link) {
      const H = task.x.length / task.T;
      if (!inline) task.x = link.span(task.x) ?? task.x.slice(); // a view of the request must not move threads
      const E = this.experts.get(task.layer);
      if (E !== undefined && wantsLayout(input.params)) block = link.reserve(runReplyBytes(task.T, H, E).total);
      if (block) task.out = block.span;
    }
    // A load or drop changes what the thread holds: the inline copy of those layers goes first.
    if (task.mode === 'load' || task.mode === 'drop') this.dropInline(task.layer);
    let a: ExpertsAnswer;
    try {
      if (inline && task.mode === 'run') {
        this.inlineRuns++;
        a = await runAnswer(this.inline as ExpertRuntime, task.layer, task.T, task.routing, task.x as Float32Array, block?.bytes ?? null);
      } else {
        a = await this.post(task);
      }
    } catch (e) {
      if (block) link?.unreserve(block.bytes);
      throw e;
    }
    return this.answered(task, a, block);
  }

  /** A dense layer's load or run, here on the event loop (a layer id holds experts or a dense matrix). */
  private async runDense(task: DenseTask): Promise<OpOutput> {
    if (task.mode === 'dense_run') {
      if (!this.dense.has(task.layer) && this.experts.has(task.layer)) throw new VtpuError('E_PARAM', `${OP}: layer ${task.layer} holds experts; run it with mode run`);
      return denseRunOutput(task, this.dense.run(task));
    }
    if (this.experts.has(task.layer) && !this.dense.has(task.layer)) {
      if (!task.replace) throw new VtpuError('E_PARAM', `${OP}: layer ${task.layer} holds experts; give replace to make it a dense layer`);
      this.dropInline(task.layer);
      this.answered({ mode: 'drop', layer: task.layer }, await this.post({ mode: 'drop', layer: task.layer }), null);
    }
    return denseLoadOutput(this.dense.load(task));
  }

  /** The task answered by the runtime's thread (started on first use). */
  private post(task: ExpertsTask): Promise<ExpertsAnswer> {
    this.worker ??= this.start();
    const id = this.nextId++;
    const answer = new Promise<ExpertsAnswer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.worker.postMessage({ id, task }, taskBuffers(task));
    return answer;
  }

  /** Bookkeeping of an answer (layer sizes, the load matrix, inline layers) and its reply. */
  private answered(task: ExpertsTask, a: ExpertsAnswer, block: ReturnType<LinkHandle['reserve']>): OpOutput {
    if (a.mode === 'load' && a.shared && this.inline) {
      this.inline.adopt(a.info.layer, a.shared);
      this.bell?.add(a.info.layer, a.shared, this.inline.threadsOf(a.shared.spec));
      a = { mode: 'load', info: a.info };
    }
    if (a.mode === 'load') this.experts.set(a.info.layer, a.info.experts);
    else if (a.mode === 'info') {
      for (const l of a.layers) this.experts.set(l.layer, l.experts);
      a = { ...a, dense: this.dense.info(task.mode === 'info' ? task.layer : undefined) };
    } else if (a.mode === 'drop' && task.mode === 'drop') {
      if (task.layer !== undefined) this.experts.delete(task.layer);
      else this.experts.clear();
      a = { ...a, dropped: a.dropped + this.dense.drop(task.layer) }; // drop covers both kinds
    }
    // Counts came back by message, or were written into the reply block after y.
    const counts = a.mode !== 'run' ? null
      : a.counts ?? (block ? new Int32Array(block.bytes.buffer, block.bytes.byteOffset + runReplyBytes(a.T, a.H, a.E).countsAt, a.E) : null);
    this.tally(task.mode === 'run' || task.mode === 'drop' ? task.layer : undefined, a, counts);
    return expertsOutput(a, block?.bytes);
  }

  /** The expert-load matrix (the dashboard's heatmap), or null before any run. */
  load(): ExpertLoad | null {
    const bells = this.bell?.counts() ?? new Map<number, Float64Array>();
    const layers = [...new Set([...this.loads.keys(), ...bells.keys()])].sort((a, b) => a - b);
    if (layers.length === 0) return null;
    const sum = (l: number): number[] => {
      const a = this.loads.get(l), b = bells.get(l);
      return Array.from({ length: Math.max(a?.length ?? 0, b?.length ?? 0) }, (_, e) => (a?.[e] ?? 0) + (b?.[e] ?? 0));
    };
    return { layers, counts: layers.map(sum) };
  }

  /** Adds tokens per expert to a layer's row of the load matrix. */
  private tallyRow(layer: number, counts: ArrayLike<number>): void {
    let row = this.loads.get(layer);
    if (row === undefined || row.length !== counts.length) this.loads.set(layer, (row = new Float64Array(counts.length)));
    for (let e = 0; e < counts.length; e++) row[e] += counts[e];
  }

  private tally(layer: number | undefined, a: ExpertsAnswer, counts: Int32Array | null): void {
    if (a.mode === 'run' && layer !== undefined && counts) this.tallyRow(layer, counts);
    else if (a.mode === 'drop') {
      if (layer === undefined) this.loads.clear();
      else this.loads.delete(layer);
    }
  }

  /** Stops the thread (pending requests fail); idempotent. */
  async destroy(): Promise<void> {
    this.dropInline();
    this.dense.drop();
    this.loads.clear();
    this.closed = true;
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
