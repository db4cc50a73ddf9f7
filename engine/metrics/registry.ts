/**
 * What the sidecar measures about itself: per-op counts, errors, bytes and latency
 * histograms, pool busy time per worker, HTTP statuses, named timers (e.g. an expert
 * runtime), plus gauges read when a snapshot is taken (store, memory, queue depths). Only
 * what Node can measure is reported; nothing is estimated or invented.
 *
 * A sampler ticks every 100 ms and keeps about one second of cumulative samples, so a
 * snapshot can report rates and latency percentiles over the last second.
 */
import { BUCKETS, Histogram, quantileMs } from './histogram';

/** Cumulative counters of one op. */
export interface OpCounters {
  count: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  latency: Histogram;
}

/** A gauge section: read when a snapshot is taken; numbers only. */
export type SectionReader = () => Record<string, number>;

/** Latency and rate figures over the last window. */
export interface WindowFigures {
  ops_per_s: number | null;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
}

/** One op in a snapshot. */
export interface OpSnapshot extends WindowFigures {
  count: number;
  errors: number;
  bytes_in: number;
  bytes_out: number;
  mean_ms: number | null;
}

/** Everything in one JSON object: what the JSON-lines file, METRICS and the dashboard carry. */
export interface MetricsSnapshot {
  /** Wall clock, ms since the epoch. */
  t: number;
  uptime_s: number;
  /** Length of the window the rates and percentiles cover (null before the first tick). */
  window_s: number | null;
  enabled: boolean;
  total: OpSnapshot & { bytes_in_per_s: number | null; bytes_out_per_s: number | null };
  ops: Record<string, OpSnapshot>;
  /** Per pool worker: cumulative busy ms and the busy fraction over the window. */
  workers: { id: number; busy_ms: number; utilisation: number | null }[];
  http: { requests: number; by_status: Record<string, number> };
  timers: Record<string, { count: number; total_ms: number }>;
  memory: Record<string, number>;
  [section: string]: unknown;
}

/** One op's cumulative counters at a sampler tick. */
interface OpSample {
  count: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  counts: Float64Array;
}

interface Sample {
  t: number;
  ops: Map<string, OpSample>;
  busy: Map<number, number>;
}

/** Samples kept: 11 ticks of 100 ms span a one-second window. */
const RING = 11;

/** The metrics registry of one engine. */
export class Metrics {
  /** False turns {@link record} into a no-op (for measuring the collection's own cost). */
  enabled = true;
  private readonly ops = new Map<string, OpCounters>();
  private readonly busy = new Map<number, number>();
  private readonly timers = new Map<string, { count: number; totalMs: number }>();
  private readonly statuses = new Map<number, number>();
  private readonly sections = new Map<string, SectionReader>();
  private readonly details = new Map<string, () => unknown>();
  private readonly ring: Sample[] = [];
  private readonly listeners = new Set<(s: MetricsSnapshot) => void>();
  private readonly started: number;
  private timer?: NodeJS.Timeout;

  /** `clock`: milliseconds for windows and uptime (default performance.now; tests pass their own). */
  constructor(private readonly clock: () => number = () => performance.now()) {
    this.started = clock();
  }

  /** Records one finished request: its op, latency, bytes received and sent, and outcome. */
  record(op: string, ms: number, bytesIn: number, bytesOut: number, ok: boolean): void {
    if (!this.enabled) return;
    let c = this.ops.get(op);
    if (c === undefined) {
      c = { count: 0, errors: 0, bytesIn: 0, bytesOut: 0, latency: new Histogram() };
      this.ops.set(op, c);
    }
    c.count++;
    if (!ok) c.errors++;
    c.bytesIn += bytesIn;
    c.bytesOut += bytesOut;
    c.latency.record(ms);
  }

  /** Adds `ms` of busy time to pool worker `id` (its thread id). */
  recordWorker(id: number, ms: number): void {
    if (!this.enabled) return;
    this.busy.set(id, (this.busy.get(id) ?? 0) + ms);
  }

  /** Counts one HTTP response by status. */
  recordHttp(status: number): void {
    if (!this.enabled) return;
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
  }

  /** Adds `ms` to the named timer (e.g. `experts` for an expert runtime); reported once used. */
  recordTimer(name: string, ms: number): void {
    if (!this.enabled) return;
    const t = this.timers.get(name) ?? { count: 0, totalMs: 0 };
    t.count++;
    t.totalMs += ms;
    this.timers.set(name, t);
  }

  /** Registers gauges read at snapshot time under `name` (replaces one of that name). */
  section(name: string, read: SectionReader): void {
    this.sections.set(name, read);
  }

  /** Removes a gauge section. */
  dropSection(name: string): void {
    this.sections.delete(name);
  }

  /**
   * Registers a detail: a larger view (e.g. the expert-load matrix) read only when asked
   * for by {@link readDetails}, not carried in every 100 ms snapshot.
   */
  detail(name: string, read: () => unknown): void {
    this.details.set(name, read);
  }

  /** Every detail that has something to show, read now (`null`/`undefined` ones left out). */
  readDetails(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, read] of this.details) {
      try {
        const v = read();
        if (v !== null && v !== undefined) out[name] = v;
      } catch {
        // like a gauge section: unreadable right now, left out
      }
    }
    return out;
  }

  /** Cumulative counters per op, in first-seen order. */
  opCounters(): ReadonlyMap<string, OpCounters> {
    return this.ops;
  }

  /** Cumulative busy ms per pool worker. */
  workerBusy(): ReadonlyMap<number, number> {
    return this.busy;
  }

  /** Starts the 100 ms sampler (idempotent); it never keeps the process alive. */
  start(intervalMs = 100): void {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  /** Stops the sampler. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Calls `fn` with a fresh snapshot after every tick; returns the unsubscribe function. */
  subscribe(fn: (s: MetricsSnapshot) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Takes one sample now (the sampler calls this; tests may too). */
  tick(): void {
    const ops = new Map<string, OpSample>();
    for (const [op, c] of this.ops) {
      ops.set(op, { count: c.count, errors: c.errors, bytesIn: c.bytesIn, bytesOut: c.bytesOut, counts: c.latency.snapshot() });
    }
    this.ring.push({ t: this.clock(), ops, busy: new Map(this.busy) });
    if (this.ring.length > RING) this.ring.shift();
    if (this.listeners.size) {
      const snap = this.snapshot();
      for (const fn of this.listeners) {
        try {
          fn(snap);
        } catch {
          // A failing consumer (a closed file, a gone socket) must not stop the others.
        }
      }
    }
  }

  /** Everything measured so far, with rates and percentiles over the last window. */
  snapshot(): MetricsSnapshot {
    const now = this.clock();
    const base = this.ring.length ? this.ring[0] : undefined;
    const span = base && now - base.t > 1 ? (now - base.t) / 1000 : null;
    const ops: Record<string, OpSnapshot> = {};
    const totalCounts = new Float64Array(BUCKETS);
    const tot = { count: 0, errors: 0, bytesIn: 0, bytesOut: 0, sumMs: 0, dCount: 0, dIn: 0, dOut: 0 };
    for (const [op, c] of this.ops) {
      const prev = base?.ops.get(op);
      const win = new Float64Array(BUCKETS);
      for (let i = 0; i < win.length; i++) {
        win[i] = c.latency.counts[i] - (prev ? prev.counts[i] : 0);
        totalCounts[i] += win[i];
      }
      const dCount = c.count - (prev?.count ?? 0);
      ops[op] = {
        count: c.count,
        errors: c.errors,
        bytes_in: c.bytesIn,
        bytes_out: c.bytesOut,
        mean_ms: c.count ? c.latency.sumMs / c.count : null,
        ...windowFigures(span === null ? null : win, dCount, span),
      };
      tot.count += c.count;
      tot.errors += c.errors;
      tot.bytesIn += c.bytesIn;
      tot.bytesOut += c.bytesOut;
      tot.sumMs += c.latency.sumMs;
      tot.dCount += dCount;
      tot.dIn += c.bytesIn - (prev?.bytesIn ?? 0);
      tot.dOut += c.bytesOut - (prev?.bytesOut ?? 0);
    }
    const workers = [...this.busy].map(([id, ms]) => {
      const before = base?.busy.get(id) ?? 0;
      return { id, busy_ms: ms, utilisation: span ? Math.min(1, (ms - before) / (span * 1000)) : null };
    });
    const snap: MetricsSnapshot = {
      t: Date.now(),
      uptime_s: (now - this.started) / 1000,
      window_s: span,
      enabled: this.enabled,
      total: {
        count: tot.count,
        errors: tot.errors,
        bytes_in: tot.bytesIn,
        bytes_out: tot.bytesOut,
        mean_ms: tot.count ? tot.sumMs / tot.count : null,
        ...windowFigures(span === null ? null : totalCounts, tot.dCount, span),
        bytes_in_per_s: span ? tot.dIn / span : null,
        bytes_out_per_s: span ? tot.dOut / span : null,
      },
      ops,
      workers,
      http: { requests: sum(this.statuses.values()), by_status: Object.fromEntries([...this.statuses].map(([k, v]) => [String(k), v])) },
      timers: Object.fromEntries([...this.timers].map(([k, v]) => [k, { count: v.count, total_ms: v.totalMs }])),
      memory: memory(),
    };
    for (const [name, read] of this.sections) {
      try {
        snap[name] = read();
      } catch {
        // A gauge that cannot be read right now (e.g. a pool being destroyed) is left out.
      }
    }
    return snap;
  }
}

function windowFigures(counts: Float64Array | null, dCount: number, span: number | null): WindowFigures {
  if (counts === null || span === null) return { ops_per_s: null, p50_ms: null, p90_ms: null, p99_ms: null };
  return { ops_per_s: dCount / span, p50_ms: quantileMs(counts, 0.5), p90_ms: quantileMs(counts, 0.9), p99_ms: quantileMs(counts, 0.99) };
}

function sum(xs: Iterable<number>): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

function memory(): Record<string, number> {
  const m = process.memoryUsage();
  return { rss_bytes: m.rss, heap_used_bytes: m.heapUsed, heap_total_bytes: m.heapTotal, external_bytes: m.external, array_buffers_bytes: m.arrayBuffers };
}
