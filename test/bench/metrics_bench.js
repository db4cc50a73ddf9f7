// Engine-side cost of metrics collection: ns per Metrics.record call beside ns per single
// CGET executed by the engine (what the server does per request, minus the sockets).
// Usage: node test/bench/metrics_bench.js [rounds]  → one JSON line.
'use strict';
const { Engine } = require('../../dist/engine/engine');
const { Metrics } = require('../../dist/engine/metrics/index');

const rounds = Number(process.argv[2] || 5);
const N = 500_000;
const engine = new Engine();
const coord = '1.2.3/4.5.6/7.8.9';
engine.execute('CPUT', { params: { coord, kind: 'bytes' }, raw: Buffer.alloc(16, 7) });
const input = { params: { coord } };

function time(fn) {
  for (let i = 0; i < 50_000; i++) fn(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / N;
}

const m = new Metrics();
const rec = [];
const cget = [];
let sink = 0;
for (let r = 0; r < rounds; r++) {
  rec.push(time((i) => m.record('CGET', 0.02 + (i & 7) * 0.001, 80, 120, true)));
  cget.push(time(() => { sink += engine.execute('CGET', input).raw.length; }));
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
process.stdout.write(JSON.stringify({ record_ns: med(rec), cget_engine_ns: med(cget), rounds, calls: N, sink: sink > 0 }) + '\n');
