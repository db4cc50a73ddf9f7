/** engine/metrics: histogram quantiles, the registry's windows, Prometheus text, the METRICS op. */
import { Engine } from '../../../engine/engine';
import { BUCKETS, Histogram, Metrics, bucketOf, quantileMs, renderPrometheus } from '../../../engine/metrics/index';
import { ReadPool } from '../../../bridge/pool';
import { Kind, DType, DIMS } from '../../../engine/types';
import { code } from '../engine/helpers';

describe('histogram', () => {
  test('buckets grow by a quarter octave and clamp at both ends', () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(-1)).toBe(0);
    expect(bucketOf(NaN)).toBe(0);
    expect(bucketOf(0.002)).toBe(4); // 2 µs = 2^1 → bucket 4
    expect(bucketOf(1e9)).toBe(BUCKETS - 1);
  });

  test('quantiles land within a bucket width of the true value', () => {
    const h = new Histogram();
    for (let i = 1; i <= 1000; i++) h.record(i / 100); // 0.01 .. 10 ms, uniform
    for (const [q, want] of [[0.5, 5], [0.9, 9], [0.99, 9.9]]) {
      const got = quantileMs(h.counts, q)!;
      expect(got / want).toBeGreaterThan(0.84);
      expect(got / want).toBeLessThan(1.19);
    }
    expect(quantileMs(new Float64Array(BUCKETS), 0.5)).toBeNull();
    expect(h.count).toBe(1000);
    expect(h.sumMs).toBeCloseTo(5005, 6);
  });
});

describe('registry', () => {
  test('counts, bytes and errors per op; rates and percentiles cover the last window only', async () => {
    let t = 1_000;
    const m = new Metrics(() => t);
    m.record('CGET', 0.05, 100, 200, true);
    m.tick();
    let s = m.snapshot();
    expect(s.ops.CGET).toMatchObject({ count: 1, errors: 0, bytes_in: 100, bytes_out: 200 });
    t += 20;
    for (let i = 0; i < 10; i++) m.record('CPUT', 2, 10, 5, i % 2 === 0);
    s = m.snapshot();
    expect(s.window_s).toBe(0.02);
    expect(s.ops.CGET.ops_per_s).toBe(0); // its request came before the window
    expect(s.ops.CGET.p50_ms).toBeNull();
    expect(s.ops.CPUT).toMatchObject({ count: 10, errors: 5, bytes_in: 100, bytes_out: 50 });
    expect(s.ops.CPUT.ops_per_s).toBeCloseTo(10 / s.window_s!, 6);
    expect(s.ops.CPUT.p50_ms! / 2).toBeGreaterThan(0.84);
    expect(s.total).toMatchObject({ count: 11, errors: 5, bytes_in: 200, bytes_out: 250 });
    expect(s.total.bytes_in_per_s).toBeCloseTo(100 / s.window_s!, 6);
  });

  test('disabled records nothing; workers, HTTP statuses, timers and sections are reported', () => {
    const m = new Metrics();
    m.enabled = false;
    m.record('CGET', 1, 1, 1, true);
    m.recordHttp(200);
    expect(m.snapshot().total.count).toBe(0);
    m.enabled = true;
    m.recordWorker(7, 30);
    m.recordHttp(404);
    m.recordTimer('experts', 4);
    m.section('thing', () => ({ depth: 3 }));
    m.section('broken', () => { throw new Error('gone'); });
    const s = m.snapshot();
    expect(s.workers).toEqual([{ id: 7, busy_ms: 30, utilisation: null }]);
    expect(s.http).toEqual({ requests: 1, by_status: { 404: 1 } });
    expect(s.timers).toEqual({ experts: { count: 1, total_ms: 4 } });
    expect(s.thing).toEqual({ depth: 3 });
    expect(s.broken).toBeUndefined();
    expect(s.memory.rss_bytes).toBeGreaterThan(0);
  });

  test('subscribers get a snapshot per tick; one that throws does not stop the others', () => {
    const m = new Metrics();
    const seen: number[] = [];
    m.subscribe(() => { throw new Error('bad consumer'); });
    const off = m.subscribe((s) => seen.push(s.total.count));
    m.record('PING', 0.01, 1, 1, true);
    m.tick();
    off();
    m.tick();
    expect(seen).toEqual([1]);
  });
});

describe('prometheus text', () => {
  test('families, labels and cumulative buckets', () => {
    const m = new Metrics();
    m.record('CGET', 0.003, 10, 20, true); // 3 µs
    m.record('CGET', 5, 10, 20, false); // 5 ms
    m.record('we"ird\\op', 1, 0, 0, true);
    m.section('store', () => ({ entries: 4, range_scans_total: 2 }));
    const text = renderPrometheus(m);
    const lines = text.trimEnd().split('\n');
    expect(lines.every((l) => /^(# (HELP|TYPE) \w+ .+|[a-z_]+(\{[^}]*\})? [-+0-9.eInfNa]+)$/.test(l))).toBe(true);
    expect(text).toMatch(/^vtpu_requests_total\{op="CGET"\} 2$/m);
    expect(text).toMatch(/^vtpu_request_errors_total\{op="CGET"\} 1$/m);
    expect(text).toContain('vtpu_requests_total{op="we\\"ird\\\\op"} 1');
    expect(text).toMatch(/^vtpu_request_duration_seconds_bucket\{op="CGET",le="0\.000002"\} 0$/m);
    expect(text).toMatch(/^vtpu_request_duration_seconds_bucket\{op="CGET",le="0\.000004"\} 1$/m);
    expect(text).toMatch(/^vtpu_request_duration_seconds_bucket\{op="CGET",le="\+Inf"\} 2$/m);
    expect(text).toMatch(/^vtpu_request_duration_seconds_count\{op="CGET"\} 2$/m);
    expect(text).toMatch(/^# TYPE vtpu_store_range_scans_total counter$/m);
    expect(text).toMatch(/^vtpu_store_entries 4$/m);
    // Buckets never decrease.
    const counts = lines.filter((l) => l.startsWith('vtpu_request_duration_seconds_bucket{op="CGET"')).map((l) => Number(l.split(' ')[1]));
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
  });
});

describe('METRICS op and the engine', () => {
  test('json snapshot with the store section; prometheus as a raw body; bad format is E_PARAM', () => {
    const e = new Engine();
    e.store.put(new Uint32Array(DIMS).fill(1), 0, { kind: Kind.Text, dtype: DType.None, shape: [], bytes: Buffer.from('x') });
    const j = e.execute('METRICS', { params: {} }).result as { store: { entries: number } };
    expect(j.store.entries).toBe(1);
    const p = e.execute('METRICS', { params: { format: 'prometheus' } });
    expect(Buffer.from(p.raw!).toString()).toMatch(/^vtpu_store_entries 1$/m);
    expect(code(() => e.execute('METRICS', { params: { format: 'xml' } }))).toBe('E_PARAM');
    expect(e.opNames()).toContain('METRICS');
  });

  test('pool workers report their busy time per thread', async () => {
    const e = new Engine();
    const n = 2000;
    const coords = new Uint32Array(n * DIMS);
    for (let i = 0; i < n; i++) coords[i * DIMS] = i;
    const pool = new ReadPool(e, { threads: 2, threshold: 1, minChunk: 100 });
    try {
      await pool.run('CGET', { params: { batch: true }, coords });
      const s = e.metrics.snapshot();
      expect(s.workers.length).toBeGreaterThanOrEqual(1);
      for (const w of s.workers) expect(w.busy_ms).toBeGreaterThan(0);
      expect((s.pool as { threads: number }).threads).toBe(2);
    } finally {
      await pool.destroy();
    }
  });
});
