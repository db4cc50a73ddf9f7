/**
 * Prometheus text exposition (format 0.0.4) of a {@link Metrics} registry: counters and
 * latency histograms per op, pool busy seconds per worker, HTTP responses by status,
 * named timers, and every numeric gauge of the snapshot's sections.
 */
import { PER_OCTAVE, OCTAVES } from './histogram';
import type { Metrics, MetricsSnapshot } from './registry';

/** Content-Type of the exposition. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Sections of a snapshot rendered as gauges `vtpu_<section>_<key>`; counters end in `_total`. */
const GAUGE_SECTIONS = ['store', 'memory', 'server', 'pool'];

/** Renders the registry; `snap` defaults to a fresh snapshot. */
export function renderPrometheus(m: Metrics, snap: MetricsSnapshot = m.snapshot()): string {
  const out: string[] = [];
  const family = (name: string, type: string, help: string) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };
  const ops = [...m.opCounters()];
  family('vtpu_requests_total', 'counter', 'Requests handled, by op.');
  for (const [op, c] of ops) out.push(`vtpu_requests_total{op="${label(op)}"} ${c.count}`);
  family('vtpu_request_errors_total', 'counter', 'Requests answered with an error, by op.');
  for (const [op, c] of ops) out.push(`vtpu_request_errors_total{op="${label(op)}"} ${c.errors}`);
  family('vtpu_received_bytes_total', 'counter', 'Request bytes received, by op.');
  for (const [op, c] of ops) out.push(`vtpu_received_bytes_total{op="${label(op)}"} ${c.bytesIn}`);
  family('vtpu_sent_bytes_total', 'counter', 'Reply bytes sent, by op.');
  for (const [op, c] of ops) out.push(`vtpu_sent_bytes_total{op="${label(op)}"} ${c.bytesOut}`);
  family('vtpu_request_duration_seconds', 'histogram', 'Time from a request decoded to its reply built, by op.');
  for (const [op, c] of ops) {
    const l = label(op);
    let cum = 0;
    // Exported edges are the powers of two in µs: every PER_OCTAVE-th internal edge.
    for (let k = 1; k <= OCTAVES; k++) {
      for (let i = (k - 1) * PER_OCTAVE; i < k * PER_OCTAVE; i++) cum += c.latency.counts[i];
      out.push(`vtpu_request_duration_seconds_bucket{op="${l}",le="${num(2 ** k / 1e6)}"} ${cum}`);
    }
    out.push(`vtpu_request_duration_seconds_bucket{op="${l}",le="+Inf"} ${c.latency.count}`);
    out.push(`vtpu_request_duration_seconds_sum{op="${l}"} ${num(c.latency.sumMs / 1000)}`);
    out.push(`vtpu_request_duration_seconds_count{op="${l}"} ${c.latency.count}`);
  }
  family('vtpu_pool_worker_busy_seconds_total', 'counter', 'Time each pool worker spent running tasks.');
  for (const [id, ms] of m.workerBusy()) out.push(`vtpu_pool_worker_busy_seconds_total{worker="${id}"} ${num(ms / 1000)}`);
  family('vtpu_http_responses_total', 'counter', 'HTTP responses, by status.');
  for (const [status, n] of Object.entries(snap.http.by_status)) out.push(`vtpu_http_responses_total{status="${status}"} ${n}`);
  family('vtpu_timer_seconds_total', 'counter', 'Time spent in named parts (e.g. an expert runtime).');
  for (const [name, t] of Object.entries(snap.timers)) out.push(`vtpu_timer_seconds_total{name="${label(name)}"} ${num(t.total_ms / 1000)}`);
  family('vtpu_uptime_seconds', 'gauge', 'Seconds since the metrics registry was created.');
  out.push(`vtpu_uptime_seconds ${num(snap.uptime_s)}`);
  for (const section of GAUGE_SECTIONS) {
    const values = snap[section];
    if (typeof values !== 'object' || values === null) continue;
    for (const [key, v] of Object.entries(values as Record<string, unknown>)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const name = `vtpu_${section}_${key.replace(/[^a-zA-Z0-9_]/g, '_')}`;
      family(name, name.endsWith('_total') ? 'counter' : 'gauge', `${section} ${key.replace(/_/g, ' ')}.`);
      out.push(`${name} ${num(v)}`);
    }
  }
  return out.join('\n') + '\n';
}

/** Escapes a label value (backslash, quote, newline). */
function label(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(x: number): string {
  return Number.isFinite(x) ? String(x) : x > 0 ? '+Inf' : x < 0 ? '-Inf' : 'NaN';
}
