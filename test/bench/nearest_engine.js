// Engine-side CNEAREST: loads the points, then times batched coordinate queries through
// Engine.execute on one thread (the op the sidecar runs, reply tensors built, no sockets), and
// l2 again through the sidecar's read pool (the batch split across worker threads).
// Usage: node test/bench/nearest_engine.js POINTS.u32 QUERIES.u32 K ROUNDS   (prints one JSON object)
const fs = require('fs');
const path = require('path');
const os = require('os');
const { Engine } = require(path.resolve(__dirname, '../../dist/engine'));
const { ReadPool } = require(path.resolve(__dirname, '../../dist/bridge/pool'));

const DIMS = 9;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function u32(file) {
  const b = fs.readFileSync(file);
  return new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

function seconds(fn) {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const [pointsFile, queriesFile, kArg, roundsArg] = process.argv.slice(2);
const points = u32(pointsFile);
const queries = u32(queriesFile);
const k = Number(kArg);
const rounds = Number(roundsArg);
const n = points.length / DIMS;
const nq = queries.length / DIMS;
const e = new Engine();
const loadS = seconds(() => e.store.putBatch({
  n, coords: points, kind: new Uint8Array(n).fill(2), dtype: new Uint8Array(n),
  shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(0), valueOffsets: new Int32Array(n + 1), values: new Uint8Array(0),
}));
const run = (metric, q) => e.execute('CNEAREST', { params: { batch: true, k, metric }, coords: q });
// The first query builds the tree lazily: timed on its own.
const buildS = seconds(() => run('l2', queries.subarray(0, DIMS)));
const out = { n: e.store.size, queries: nq, k, load_s: loadS, first_query_s: buildS, metrics: {} };
for (const metric of ['l2', 'l1', 'hier']) {
  run(metric, queries); // warm-up round, not counted
  const times = [];
  for (let r = 0; r < rounds; r++) times.push(seconds(() => run(metric, queries)));
  out.metrics[metric] = { queries_per_s: nq / median(times), rounds: times };
}
async function pooled() {
  // The sidecar's default pool size.
  const threads = Math.min(4, os.availableParallelism());
  const pool = new ReadPool(e, { threads, threshold: 65536 });
  const input = { params: { batch: true, k, metric: 'l2' }, coords: queries };
  try {
    await pool.run('CNEAREST', input); // warm-up (workers start, JIT)
    const times = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = process.hrtime.bigint();
      await pool.run('CNEAREST', input);
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    return { threads, queries_per_s: nq / median(times), rounds: times };
  } finally {
    await pool.destroy();
  }
}

// The l2 answers, for the exactness check against faiss in the same run.
const ans = run('l2', queries);
const distRow = ans.scrolls.valueOffsets;
const dist = new BigInt64Array(ans.scrolls.values.slice(distRow[1], distRow[2]).buffer);
out.l2_squared = Array.from(dist, Number);
pooled().then((p) => {
  out.pool = p;
  process.stdout.write(JSON.stringify(out));
});
