/**
 * The S-pipe for reads: large batched CGETs are split into chunks that Piscina workers
 * look up in a shared view of the store, and the main thread stitches the chunks back
 * into one batch. Large batched CNEARESTs (l1/l2 over the k-d tree) are split the same way:
 * the main thread validates and plans, workers search slices of the spatially ordered queries. The caller (the server's gate) guarantees no write runs meanwhile,
 * because a write may reallocate or overwrite what the view points at.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { VtpuError } from '../engine/errors';
import type { Metrics } from '../engine/metrics/index';
import type { StoreView } from '../engine/store/reader';
import { DIMS, type OpInput, type OpOutput } from '../engine/types';
import { concatScrolls } from './arrow';
import type { NearestTask, ReadResult, ReadTask } from './worker';
import type { Engine } from '../engine/engine';
import type { Offload } from '../engine/instruction';
import { coordQuery, coordReply } from '../engine/ops/cnearest';
import { batchOrder, newAnswer, permuteRows, planCoords, unpermute, type CoordAnswer } from '../engine/index/nearest';

/** What the pool needs from the engine: a shareable view of its store (and where to record busy time). */
export interface ViewSource {
  store: { view(): StoreView };
  metrics?: Pick<Metrics, 'recordWorker' | 'section'>;
}

/** Options of {@link ReadPool}. */
export interface ReadPoolOptions {
  /** Worker threads (≥ 1). */
  threads: number;
  /** Batched CGETs with at least this many rows go to the pool (≥ 1). */
  threshold: number;
  /** Fewest rows per chunk, so small batches are not over-split (default 16384). */
  minChunk?: number;
  /** Batched CNEAREST queries at which the pool takes over (default 2048; each query is ~10-50 µs of work). */
  nearestThreshold?: number;
}

/**
 * The compiled worker. From dist/bridge/*.js it sits beside this file; under ts-jest
 * (this file is .ts) it is the built dist/bridge/worker.js, which tests build first.
 */
export function workerFile(): string {
  return __filename.endsWith('.ts') ? join(__dirname, '..', 'dist', 'bridge', 'worker.js') : join(__dirname, 'worker.js');
}

/** A Piscina pool serving batched CGETs from store views. */
export class ReadPool {
  /** Rows at which a batched CGET goes to the pool. */
  readonly threshold: number;
  /** Worker threads. */
  readonly threads: number;
  private readonly minChunk: number;
  private readonly nearestThreshold: number;
  private readonly piscina: Piscina<ReadTask | NearestTask, ReadResult | CoordAnswer>;
  private destroyed?: Promise<void>;
  /**
   * Shared buffers for requests' coordinates, kept for the next request: a fresh one of a
   * million coordinates (36 MB) costs ~100 ms of first-touch page faults on some VMs.
   */
  private readonly spareShared: SharedArrayBuffer[] = [];

  /** A spare shared buffer of at least `n` bytes (the smallest that fits), or a new one. */
  private takeShared(n: number): SharedArrayBuffer {
    let best = -1;
    this.spareShared.forEach((b, i) => {
      if (b.byteLength >= n && (best < 0 || b.byteLength < this.spareShared[best].byteLength)) best = i;
    });
    if (best >= 0) return this.spareShared.splice(best, 1)[0];
    if (this.spareShared.length >= 4) this.spareShared.shift(); // too small for today's requests
    return new SharedArrayBuffer(n);
  }

  /** Throws TypeError on bad options and Error (code E_INTERNAL) when the worker is not built. */
  constructor(private readonly engine: ViewSource, opts: ReadPoolOptions) {
    const int = (name: string, v: unknown, min: number) => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new TypeError(`pool option '${name}' must be an integer >= ${min}, got ${String(v)}`);
      return v;
    };
    this.threads = int('threads', opts.threads, 1);
    this.threshold = int('threshold', opts.threshold, 1);
    this.minChunk = int('minChunk', opts.minChunk ?? 16_384, 1);
    this.nearestThreshold = int('nearestThreshold', opts.nearestThreshold ?? 2048, 1);
    const filename = workerFile();
    if (!existsSync(filename)) throw new VtpuError('E_INTERNAL', `pool worker ${filename} is missing; run \`npm run build\` first`);
    this.piscina = new Piscina({ filename, minThreads: this.threads, maxThreads: this.threads, idleTimeout: 60_000 });
    engine.metrics?.section('pool', () => ({ threads: this.threads, queue_depth: this.piscina.queueSize, tasks_completed_total: this.piscina.completed }));
  }

  /** Takes a request its op sends to the pool (engine/ops: batched CGET, CNEAREST) with at least the op's threshold of rows. */
  accepts(op: string, hint: Offload): boolean {
    if (hint.to !== 'pool' || this.destroyed) return false;
    if (op === 'CNEAREST') return 'execute' in this.engine && hint.rows >= this.nearestThreshold;
    return op === 'CGET' && hint.rows >= this.threshold;
  }

  /**
   * Runs a batched CGET across the workers. Must be called holding the store's read
   * gate. Resolves with the same output the engine's CGET would give.
   */
  async run(op: string, input: OpInput): Promise<OpOutput> {
    if (op === 'CNEAREST') return this.runNearest(input);
    if (op !== 'CGET' || !input.coords) throw new VtpuError('E_INTERNAL', `the pool serves batched CGET, not ${op}`);
    const n = input.coords.length / DIMS;
    // One shared copy of the request, so each task posts a view instead of cloning the
    // whole received frame.
    const sab = this.takeShared(input.coords.byteLength);
    const coords = new Uint32Array(sab, 0, input.coords.length);
    coords.set(input.coords);
    const view = this.engine.store.view();
    const chunks = Math.max(1, Math.min(this.threads * 2, Math.ceil(n / this.minChunk)));
    const per = Math.ceil(n / chunks);
    const tasks: Promise<ReadResult>[] = [];
    for (let at = 0; at < n || tasks.length === 0; at += per) {
      tasks.push(this.piscina.run({ view, coords: coords.subarray(at * DIMS, Math.min(n, at + per) * DIMS) }) as Promise<ReadResult>);
    }
    let parts: ReadResult[];
    try {
      parts = await Promise.all(tasks);
    } finally {
      this.spareShared.push(sab);
    }
    for (const p of parts) this.engine.metrics?.recordWorker(p.thread, p.busyMs);
    const batch = parts.length === 1 ? parts[0].batch : concatScrolls(parts.map((p) => p.batch), false);
    delete batch.coords;
    return { result: { n, found: parts.reduce((s, p) => s + p.found, 0) }, scrolls: batch };
  }

  /**
   * Validates and plans on this thread (typed errors surface here, as from the engine), then
   * searches slices of the spatially ordered queries in the workers. Small candidate sets
   * (no tree) run on this thread. Must be called holding the store's read gate.
   */
  private async runNearest(input: OpInput): Promise<OpOutput> {
    const engine = this.engine as unknown as Engine;
    const { q, k, metric, pattern } = coordQuery(engine, input);
    const plan = planCoords('CNEAREST', engine.store, q, k, metric, pattern);
    const order = batchOrder(plan, q);
    if (order === null) return engine.serve('CNEAREST', input);
    const qs = permuteRows(q, order);
    const n = order.length;
    const per = Math.ceil(n / (this.threads * 4));
    const tasks: Promise<CoordAnswer>[] = [];
    for (let at = 0; at < n; at += per) {
      const task: NearestTask = { plan, q: qs.subarray(at * DIMS, Math.min(n, at + per) * DIMS) };
      tasks.push(this.piscina.run(task, { name: 'nearest' }) as Promise<unknown> as Promise<CoordAnswer>);
    }
    const parts = await Promise.all(tasks);
    const all = newAnswer(n, k);
    let row = 0;
    for (const part of parts) {
      all.coords.set(part.coords, row * k * DIMS);
      all.hi.set(part.hi, row * k);
      all.lo.set(part.lo, row * k);
      row += part.hi.length / k;
    }
    return coordReply(k, metric, unpermute(all, order, k));
  }

  /** Stops the workers; idempotent. */
  destroy(): Promise<void> {
    return (this.destroyed ??= this.piscina.destroy());
  }
}
