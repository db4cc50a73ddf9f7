// Engine-side benchmarks on one thread, each beside a peer in the same process and run:
//   - batched CGET: Store.getBatch vs a JS Map keyed by the coordinate string, and vs a Map keyed
//     by a 32-bit hash of the nine components (no string per lookup; each bucket's keys compared);
//   - CRANGE with a leading-wildcard pattern: the range index vs a linear scan of the same store.
// Usage: node test/bench/engine_bench.js CRANGE_DATA.u32 [rounds] [cget rows]   (prints one JSON object)
const fs = require('fs');
const path = require('path');
const dist = path.resolve(__dirname, '../../dist/engine');
const { Store, parsePattern, matchesPattern, compareCoords } = require(dist);
const { gatherEntries } = require(path.join(dist, 'store/reader'));

const DIMS = 9;
const VALUE_BYTES = 16;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timeIt(fn) {
  const t0 = process.hrtime.bigint();
  const out = fn();
  return [Number(process.hrtime.bigint() - t0) / 1e9, out];
}

/** A ScrollBatch of n bytes scrolls with 16-byte values derived from the row id. */
function bytesBatch(coords) {
  const n = coords.length / DIMS;
  const values = new Uint8Array(n * VALUE_BYTES);
  const dv = new DataView(values.buffer);
  for (let i = 0; i < n; i++) dv.setUint32(i * VALUE_BYTES, i, true);
  const valueOffsets = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) valueOffsets[i] = i * VALUE_BYTES;
  return {
    n, coords, kind: new Uint8Array(n).fill(2), dtype: new Uint8Array(n),
    shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(0), valueOffsets, values,
  };
}

function randomCoords(n, seed) {
  let s = seed >>> 0;
  const rnd = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s; };
  const c = new Uint32Array(n * DIMS);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < DIMS - 1; d++) c[i * DIMS + d] = rnd() & 0xfffff;
    c[i * DIMS + 8] = i;
  }
  return c;
}

function shuffledRows(coords, seed) {
  const n = coords.length / DIMS;
  const order = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const out = new Uint32Array(coords.length);
  order.forEach((r, i) => out.set(coords.subarray(r * DIMS, r * DIMS + DIMS), i * DIMS));
  return out;
}

const keyOf = (c, r) => {
  const b = r * DIMS;
  return `${c[b]}.${c[b + 1]}.${c[b + 2]}/${c[b + 3]}.${c[b + 4]}.${c[b + 5]}/${c[b + 6]}.${c[b + 7]}.${c[b + 8]}`;
};

/** The Map peer does the same work as getBatch: look up each row and gather its bytes. */
function mapGetBatch(map, q) {
  const n = q.length / DIMS;
  const found = [];
  for (let i = 0; i < n; i++) found.push(map.get(keyOf(q, i)));
  return gathered(found);
}

/** Both Map peers' last step, as getBatch's: the found values' bytes back to back, with offsets. */
function gathered(found) {
  const offsets = new Int32Array(found.length + 1);
  let total = 0;
  for (let i = 0; i < found.length; i++) {
    if (found[i]) total += found[i].length;
    offsets[i + 1] = total;
  }
  const out = new Uint8Array(total);
  for (let i = 0; i < found.length; i++) if (found[i]) out.set(found[i], offsets[i]);
  return { offsets, out };
}

/** FNV-1a over the nine uint32 components of row r: the number key of the hashed Map peer. */
function hashOf(c, r) {
  let h = 0x811c9dc5;
  for (let d = r * DIMS, e = d + DIMS; d < e; d++) h = Math.imul(h ^ c[d], 0x01000193);
  return h >>> 0;
}

/** The hashed Map peer: number keys, buckets of [row, value] checked component by component. */
function buildHashedMap(coords, values) {
  const map = new Map();
  const n = coords.length / DIMS;
  for (let i = 0; i < n; i++) {
    const h = hashOf(coords, i);
    const entry = [i, values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES)];
    const bucket = map.get(h);
    if (bucket) bucket.push(entry); else map.set(h, [entry]);
  }
  return map;
}

function hashedGetBatch(map, keys, q) {
  const n = q.length / DIMS;
  const found = [];
  for (let i = 0; i < n; i++) {
    let v;
    const bucket = map.get(hashOf(q, i));
    if (bucket) {
      for (const [row, val] of bucket) {
        let same = true;
        for (let d = 0; d < DIMS && same; d++) same = keys[row * DIMS + d] === q[i * DIMS + d];
        if (same) { v = val; break; }
      }
    }
    found.push(v);
  }
  return gathered(found);
}

function benchCget(n, rounds) {
  const coords = randomCoords(n, 1);
  const batch = bytesBatch(coords);
  const store = new Store();
  store.putBatch(batch);
  const map = new Map();
  for (let i = 0; i < n; i++) map.set(keyOf(coords, i), batch.values.subarray(i * 16, i * 16 + 16));
  const hashed = buildHashedMap(coords, batch.values);
  const q = shuffledRows(coords, 2);
  const ours = [];
  const peer = [];
  const peerHashed = [];
  for (let r = 0; r < rounds; r++) {
    const [t1, res] = timeIt(() => store.getBatch(q));
    if (res.found !== n) throw new Error('store lost rows');
    ours.push(t1);
    const [t2, m] = timeIt(() => mapGetBatch(map, q));
    if (m.out.length !== n * 16) throw new Error('map lost rows');
    peer.push(t2);
    const [t3, h] = timeIt(() => hashedGetBatch(hashed, coords, q));
    if (h.out.length !== n * 16) throw new Error('hashed map lost rows');
    peerHashed.push(t3);
  }
  const perS = (ts) => ts.map((t) => n / t);
  return {
    n, store_lookups_per_s: n / median(ours), map_lookups_per_s: n / median(peer), hashed_map_lookups_per_s: n / median(peerHashed),
    store_rounds_per_s: perS(ours), map_rounds_per_s: perS(peer), hashed_map_rounds_per_s: perS(peerHashed),
  };
}

/** The scan peer: test every stored key, then sort and gather exactly as a range reply. */
function linearScan(store, p) {
  const v = store.view();
  const ids = [];
  for (let e = 0; e < v.count; e++) if (v.kind[e] !== 0 && matchesPattern(p, v.keys, e)) ids.push(e);
  ids.sort((a, b) => compareCoords(v.keys, a, v.keys, b));
  const idArr = Int32Array.from(ids);
  const coords = new Uint32Array(ids.length * DIMS);
  ids.forEach((e, i) => coords.set(v.keys.subarray(e * DIMS, e * DIMS + DIMS), i * DIMS));
  return gatherEntries(v, idArr, ids.length, coords);
}

function benchCrange(file, rounds) {
  const raw = fs.readFileSync(file);
  const coords = new Uint32Array(raw.buffer, raw.byteOffset, raw.length / 4);
  const store = new Store();
  const [loadS] = timeIt(() => store.putBatch(bytesBatch(coords)));
  const stats0 = store.stats();
  const out = { n: coords.length / DIMS, load_s: loadS, store_bytes_per_coord: null, patterns: {} };
  for (const [marker, count] of [[7, 10], [8, 100], [9, 1000]]) {
    const p = parsePattern(`*.*.*/${marker}.*.*/*.*.*`);
    const [first] = timeIt(() => store.range(p, 1 << 24));
    const check = (res, scan) => {
      if (res.batch.n !== count || scan.n !== count) throw new Error(`expected ${count} rows`);
      const a = Buffer.from(res.batch.coords.buffer, res.batch.coords.byteOffset, res.batch.coords.byteLength);
      if (Buffer.compare(a, Buffer.from(scan.coords.buffer)) !== 0) throw new Error('index and scan disagree');
    };
    // Cold: each query right after a scan has walked the whole store through the caches.
    const cold = [];
    const scans = [];
    for (let r = 0; r < rounds; r++) {
      const [t2, scan] = timeIt(() => linearScan(store, p));
      const [t1, res] = timeIt(() => store.range(p, 1 << 24));
      check(res, scan);
      scans.push(t2);
      cold.push(t1);
    }
    // Warm: the same query repeated, as a loop over one range would run it.
    const warm = [];
    for (let r = 0; r < rounds; r++) warm.push(timeIt(() => store.range(p, 1 << 24))[0]);
    out.patterns[count] = {
      first_query_us: first * 1e6, warm_us: median(warm) * 1e6, cold_us: median(cold) * 1e6, scan_us: median(scans) * 1e6,
      warm_rounds_us: warm.map((t) => t * 1e6), cold_rounds_us: cold.map((t) => t * 1e6), scan_rounds_us: scans.map((t) => t * 1e6),
    };
  }
  const stats = store.stats();
  out.index_hits = stats.rangeIndexHits - stats0.rangeIndexHits;
  out.scans = stats.rangeScans - stats0.rangeScans;
  out.store_bytes_per_coord = stats.allocatedBytes / out.n;
  return out;
}

const [file, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 5);
const n = Number(process.argv[4] || 1_000_000);
const result = { cget: benchCget(n, rounds) };
if (file) result.crange = benchCrange(file, Math.max(rounds * 4, 20));
process.stdout.write(JSON.stringify(result, null, 1) + '\n');
