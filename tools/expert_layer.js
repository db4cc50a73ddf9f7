// One Qwen3-30B-A3B expert layer (128 experts, hidden 2048, intermediate 768, seeded random
// weights) built the way the sidecar builds it, in this process: what its ONNX Runtime session
// holds, and how long a decode-sized and a prefill-sized call take. README's full-size section
// quotes it. Needs `make build`.
//
//   node --expose-gc tools/expert_layer.js [format=q4] [rounds=200] [prefillRows=176]
'use strict';
const { join } = require('node:path');
const dist = join(__dirname, '..', 'dist');
const { packExpert, expertGroupModel } = require(join(dist, 'engine/kernels/experts_graph.js'));
const { trimHeap } = require(join(dist, 'bridge/heap.js'));
const ort = require('onnxruntime-node');

const [fmt = 'q4', rounds = '200', prefill = '176'] = process.argv.slice(2);
const E = 128, H = 2048, I = 768, TOP = 8, THREADS = 2;
const MIB = 2 ** 20;

/** xorshift32 floats in ±0.02 (the config's initializer range): reproducible without torch. */
function seeded(n, seed) {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    a[i] = (s / 2 ** 32 - 0.5) * 0.04;
  }
  return a;
}

function quantiles(ms) {
  const t = ms.slice(ms.length >> 3).sort((a, b) => a - b); // the first eighth is warm-up
  const q = (f) => t[Math.min(t.length - 1, Math.floor(f * t.length))].toFixed(2);
  return `median ${q(0.5)} ms (p10 ${q(0.1)}, p90 ${q(0.9)})`;
}

async function timeCalls(session, rows) {
  const split = new BigInt64Array(E);
  for (let r = 0; r < rows; r++) split[(r * 37) % E] += 1n; // spread over the layer, 8 experts for 8 rows
  const x = seeded(rows * H, 7), y = new Float32Array(rows * H);
  const ms = [];
  for (let i = 0; i < Number(rounds); i++) {
    const t0 = performance.now();
    await session.run({ x: new ort.Tensor('float32', x, [rows, H]), split: new ort.Tensor('int64', split, [E]) },
      { y: new ort.Tensor('float32', y, [rows, H]) });
    ms.push(performance.now() - t0);
  }
  return quantiles(ms);
}

(async () => {
  if (!global.gc) throw new Error('run with node --expose-gc (the RSS figure would count garbage)');
  trimHeap();
  const before = process.memoryUsage().rss;
  const experts = [];
  for (let e = 0; e < E; e++) experts.push(packExpert(fmt, H, I, { gateUp: seeded(2 * I * H, 2 * e + 1), down: seeded(H * I, 2 * e + 2) }));
  const bytes = experts.reduce((a, p) => a + [p.gateUp, p.down].reduce((b, l) => b + l.w.byteLength + (l.scale?.byteLength ?? 0), 0), 0);
  let model = expertGroupModel(fmt, H, I, experts);
  experts.length = 0;
  global.gc(); // the float32 weights are garbage: freed before ORT allocates, as in the sidecar
  trimHeap();
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', executionMode: 'sequential', intraOpNumThreads: THREADS,
    extra: { session: { intra_op: { allow_spinning: '0' } } }, // as the sidecar's expert runtime
  });
  model = null; // the packed weights and the model bytes are garbage now: count only what ORT keeps
  await new Promise((r) => setImmediate(r));
  global.gc();
  trimHeap();
  const held = process.memoryUsage().rss - before;
  console.log(`${fmt}: ${(bytes / MIB).toFixed(0)} MiB of weights, the session holds ${(held / MIB).toFixed(0)} MiB of RSS`);
  console.log(`  ${TOP}-row call (a decode token, top-${TOP}): ${await timeCalls(session, TOP)}`);
  console.log(`  ${prefill}-row call (a ${Number(prefill) / TOP}-token prefill): ${await timeCalls(session, Number(prefill))}`);
  console.log(`  (${THREADS} intra-op threads, no spinning, ${rounds} calls each)`);
})();
