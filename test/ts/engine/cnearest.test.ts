/** CNEAREST against brute force: tree, scan and delta paths, ties, patterns, staleness, errors. */
import { Engine } from '../../../engine/engine';
import { DType, Kind, OpOutput, ScrollBatch } from '../../../engine/types';
import { tensorBatch } from '../../../engine/tensors';
import { formatCoord } from '../../../engine/coords';
import { parsePattern, matchesPattern } from '../../../engine/pattern';
import { treeBuilds } from '../../../engine/index/coordindex';
import { Store } from '../../../engine/store/store';
import { code, coordsOf, stringBatch } from './helpers';

/** Deterministic generator. */
function rng(seed: number): (m: number) => number {
  let s = seed >>> 0;
  return (m) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) % m;
  };
}

/** Rows with components in small ranges, so many distances tie. */
function rows(n: number, r: (m: number) => number, spans = [3, 2, 4, 3, 5, 4, 6, 5, 9]): number[][] {
  return Array.from({ length: n }, () => spans.map((m) => r(m)));
}

function put(e: Engine, rs: number[][]): void {
  e.store.putBatch(stringBatch(rs, rs.map(() => 'x'), Kind.Bytes));
}

/** Rows of one reply tensor. */
function tensor(out: OpOutput, name: string): { shape: number[]; bytes: Uint8Array; dtype: number } {
  const b = out.scrolls as ScrollBatch;
  const i = (out.result.tensors as string[]).indexOf(name);
  const bytes = b.values.slice(b.valueOffsets[i], b.valueOffsets[i + 1]);
  return { shape: Array.from(b.shapeValues.subarray(b.shapeOffsets[i], b.shapeOffsets[i + 1])), bytes, dtype: b.dtype[i] };
}

/** Answer per query: [coord string, distance as bigint or float]. */
function answers(out: OpOutput): [string, bigint | number][][] {
  const c = tensor(out, 'coords');
  const d = tensor(out, 'dist');
  const [nq, k] = c.shape;
  const cw = new BigInt64Array(c.bytes.buffer);
  const dist = d.dtype === DType.Int64 ? Array.from(new BigInt64Array(d.bytes.buffer)) : Array.from(new Float32Array(d.bytes.buffer));
  return Array.from({ length: nq }, (_, i) => Array.from({ length: k }, (_, j) => {
    const o = (i * k + j) * 9;
    return [formatCoord(Array.from(cw.subarray(o, o + 9), Number)), dist[i * k + j]] as [string, bigint | number];
  }));
}

/** Brute-force reference: exact keys (bigint squares only past 2^53), ties by coordinate order. */
function brute(stored: number[][], q: number[], k: number, metric: string, pattern?: string): [string, bigint][] {
  const pat = pattern === undefined ? null : parsePattern(pattern);
  const wide = q.some((x) => x > 2 ** 20) || stored.some((s) => s.some((x) => x > 2 ** 20));
  const keyed = stored.filter((s) => pat === null || matchesPattern(pat, s, 0)).map((s) => {
    let l1 = 0;
    let sq = 0;
    for (let d = 0; d < 9; d++) { l1 += Math.abs(s[d] - q[d]); sq += (s[d] - q[d]) ** 2; }
    let a: number | bigint = l1;
    if (metric === 'l2') a = wide ? s.reduce((acc, x, d) => acc + BigInt(x - q[d]) ** 2n, 0n) : sq;
    else if (metric === 'hier') {
      let p = 0;
      while (p < 9 && s[p] === q[p]) p++;
      a = 9 - p;
    }
    return { s, a, b: metric === 'hier' ? l1 : 0 };
  });
  keyed.sort((x, y) => (x.a !== y.a ? (x.a < y.a ? -1 : 1) : x.b - y.b || cmpRow(x.s, y.s)));
  return keyed.slice(0, k).map((x) => [formatCoord(x.s), BigInt(x.a)]);
}

function cmpRow(a: number[], b: number[]): number {
  for (let d = 0; d < 9; d++) if (a[d] !== b[d]) return a[d] - b[d];
  return 0;
}

/** Distinct live rows as the store holds them. */
function live(e: Engine): number[][] {
  const { batch } = e.store.range(parsePattern('*.*.*/*.*.*/*.*.*'), e.maxBatch, false);
  return Array.from({ length: batch.n }, (_, i) => Array.from((batch.coords as Uint32Array).subarray(i * 9, i * 9 + 9)));
}

function query(e: Engine, qs: number[][], k: number, metric: string, pattern?: string): OpOutput {
  return e.execute('CNEAREST', { params: { batch: true, k, metric, ...(pattern ? { pattern } : {}) }, coords: coordsOf(qs) });
}

function expectExact(e: Engine, qs: number[][], k: number, metric: string, pattern?: string): void {
  const stored = live(e);
  const got = answers(query(e, qs, k, metric, pattern));
  qs.forEach((q, i) => expect(got[i]).toEqual(brute(stored, q, k, metric, pattern)));
}

describe('CNEAREST coordinate form', () => {
  const r = rng(7);
  const e = new Engine();
  put(e, rows(9000, r)); // > 4096 distinct rows: the tree path
  const qs = rows(20, r);

  test.each(['l1', 'l2', 'hier'])('%s matches brute force on a tie-heavy store (tree path)', (metric) => {
    expectExact(e, qs, 10, metric);
    expectExact(e, qs.slice(0, 5), 1, metric);
  });

  test.each(['l1', 'l2', 'hier'])('%s with a pattern, wide (tree) and narrow (scan)', (metric) => {
    expectExact(e, qs.slice(0, 15), 7, metric, '*.*.*/*.*.*/*.*.[0:7]');
    expectExact(e, qs.slice(0, 15), 5, metric, '1.*.*/[1:3].*.*/*.*.*');
  });

  test('hier when the deciding prefix run is large: tree search over prefix boxes', () => {
    const w = new Engine();
    const g = rng(17);
    put(w, rows(6000, g, [3000, 2, 3, 2, 3, 2, 3, 2, 50])); // first components mostly distinct
    const stored = live(w);
    const q = [...stored.slice(0, 6), ...rows(6, g, [3000, 2, 3, 2, 3, 2, 3, 2, 50])];
    expectExact(w, q, 10, 'hier');
    expectExact(w, q, 10, 'hier', '[0:2000].*.*/*.*.*/*.*.*');
  });

  test('the query coordinate itself comes first at distance 0; single coord form', () => {
    const s = live(e)[123];
    const out = e.execute('CNEAREST', { params: { coord: formatCoord(s), k: 3, metric: 'l1' } });
    const got = answers(out)[0];
    expect(got[0]).toEqual([formatCoord(s), 0n]);
    expect(out.result).toMatchObject({ n: 1, k: 3, metric: 'l1', dist: 'l1' });
  });

  test('k = stored count returns everything in order (scan path)', () => {
    const small = new Engine();
    put(small, rows(300, rng(3)));
    const n = small.store.size;
    for (const metric of ['l1', 'l2', 'hier']) expectExact(small, rows(3, rng(4)), n, metric);
    expect(code(() => query(small, [[0, 0, 0, 0, 0, 0, 0, 0, 0]], n + 1, 'l2'))).toBe('E_PARAM');
    expect(() => query(small, [[0, 0, 0, 0, 0, 0, 0, 0, 0]], n + 1, 'l2')).toThrow(`only ${n} coordinates are stored`);
  });

  test('writes and deletes after the build: delta path, then rebuilds', () => {
    const w = new Engine({});
    const g = rng(11);
    put(w, rows(8000, g));
    expectExact(w, qs.slice(0, 10), 10, 'l2');
    const built = treeBuilds();
    put(w, rows(300, g, [3, 2, 4, 3, 5, 4, 6, 5, 12]));
    w.store.deleteBatch(coordsOf(live(w).filter((_, i) => i % 17 === 0)));
    for (const metric of ['l1', 'l2', 'hier']) expectExact(w, qs.slice(0, 10), 10, metric);
    expect(treeBuilds()).toBe(built); // served from the tree plus the delta, deleted ids skipped
    put(w, rows(3000, g, [4, 3, 4, 3, 5, 4, 6, 5, 12]));
    expectExact(w, qs.slice(0, 10), 10, 'l1');
    expect(treeBuilds()).toBe(built + 1);
  });

  test('rent-or-buy: a mid-sized delta is scanned until the scans add up to a build', () => {
    const w = new Engine();
    const g = rng(23);
    put(w, rows(30_000, g, [5, 4, 6, 5, 7, 6, 8, 7, 9]));
    query(w, rows(1, g), 5, 'l2');
    const built = treeBuilds();
    put(w, rows(1_300, g, [5, 4, 6, 5, 7, 6, 8, 7, 12])); // past MIN_DELTA, below n/16
    expectExact(w, rows(4, g), 5, 'l2');
    expect(treeBuilds()).toBe(built);
    query(w, rows(1_700, g), 5, 'l1'); // 1,700 queries × the delta pass 64 scans per tree point
    expect(treeBuilds()).toBe(built + 1);
    expectExact(w, rows(4, g), 5, 'l1');
  });

  test('compaction renumbers ids: the tree is rebuilt, results stay exact', () => {
    const w = new Engine();
    (w as unknown as { store: unknown }).store = new Store({ compactMinBytes: 1 });
    const g = rng(5);
    put(w, rows(7000, g));
    expectExact(w, qs.slice(0, 5), 10, 'l2');
    const gen = w.store.generation;
    w.store.deleteBatch(coordsOf(live(w).filter((_, i) => i % 3 !== 0)));
    put(w, rows(5000, g, [4, 3, 4, 3, 5, 4, 6, 5, 30]));
    expect(w.store.generation).toBeGreaterThan(gen);
    for (const metric of ['l1', 'l2', 'hier']) expectExact(w, qs.slice(0, 5), 10, metric);
  });

  test('huge components: exact L2 ranking beyond float64, Euclidean float32 when squares pass int64', () => {
    const w = new Engine();
    const big = 0xffffffff;
    const g = rng(9);
    const rs = Array.from({ length: 6000 }, () => Array.from({ length: 9 }, () => (g(2) ? big - g(1 << 20) : g(1 << 20))));
    put(w, rs);
    const mid = 2 ** 31;
    const q = [[mid, mid, mid, mid, mid, mid, mid, mid, mid], [big, 0, big, 0, big, 0, big, 0, 5], [123, 456, 789, big, big, 1, 2, 3, 4]];
    const out = query(w, q, 6, 'l2');
    expect(out.result.dist).toBe('l2');
    const stored = live(w);
    answers(out).forEach((got, i) => {
      const want = brute(stored, q[i], 6, 'l2');
      expect(got.map((x) => x[0])).toEqual(want.map((x) => x[0]));
      got.forEach((x, j) => expect(Math.abs((x[1] as number) - Math.sqrt(Number(want[j][1])))).toBeLessThan(Math.sqrt(Number(want[j][1])) * 1e-6));
    });
    expectExact(w, q, 6, 'l1');
    expectExact(w, q, 6, 'hier');
  });

  test('typed errors', () => {
    const q = coordsOf([[0, 0, 0, 0, 0, 0, 0, 0, 0]]);
    const run = (params: Record<string, unknown>) => () => e.execute('CNEAREST', { params: { batch: true, k: 3, ...params }, coords: q });
    expect(code(run({ k: 0 }))).toBe('E_PARAM');
    expect(code(run({ k: 2.5 }))).toBe('E_PARAM');
    expect(code(run({ metric: 'cosine' }))).toBe('E_PARAM');
    expect(code(run({ pattern: '1.2.3' }))).toBe('E_PATTERN');
    expect(code(run({ pattern: '999.*.*/*.*.*/*.*.*' }))).toBe('E_PARAM');
    expect(code(() => e.execute('CNEAREST', { params: { coord: '1.2.3', k: 1 } }))).toBe('E_COORD');
    expect(code(() => e.execute('CNEAREST', { params: { k: 1 } }))).toBe('E_PARAM');
    expect(code(() => e.execute('CNEAREST', { params: { batch: true, k: 1 }, coords: new Uint32Array(5) }))).toBe('E_SHAPE');
    expect(code(() => e.execute('CNEAREST', { params: { batch: true, k: e.maxBatch }, coords: coordsOf([[0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1]]) }))).toBe('E_LIMIT');
  });
});

describe('CNEAREST vector form', () => {
  const e = new Engine();
  const g = rng(21);
  const D = 12;
  const vecs: number[][] = [];
  const coords: number[][] = [];
  for (let i = 0; i < 700; i++) {
    coords.push([7, 0, 0, 0, 0, 0, (i / 100) | 0, i % 100, 1]);
    vecs.push(Array.from({ length: D }, () => g(2001) / 1000 - 1));
  }
  vecs[5] = new Array(D).fill(0); // zero vector: cosine similarity 0
  vecs[9] = vecs[8].slice(); // an exact tie, broken by coordinate order
  const n = vecs.length;
  const values = new Float32Array(vecs.flat());
  const batch: ScrollBatch = {
    n, coords: coordsOf(coords), kind: new Uint8Array(n).fill(Kind.Tensor), dtype: new Uint8Array(n).fill(DType.Float32),
    shapeOffsets: Int32Array.from({ length: n + 1 }, (_, i) => i), shapeValues: new Uint32Array(n).fill(D),
    valueOffsets: Int32Array.from({ length: n + 1 }, (_, i) => i * D * 4), values: new Uint8Array(values.buffer),
  };
  e.store.putBatch(batch);
  e.store.putBatch(stringBatch([[7, 0, 0, 0, 0, 0, 3, 99, 0]], ['not a tensor'], Kind.Text));
  const qs = Array.from({ length: 9 }, () => Array.from({ length: D }, () => g(2001) / 1000 - 1));
  qs[0] = vecs[8].slice();

  const run = (q: number[][], k: number, params: Record<string, unknown>) => e.execute('CNEAREST', {
    params: { tensors: ['queries'], k, pattern: '7.*.*/*.*.*/[0:7].*.*', ...params },
    scrolls: tensorBatch([{ shape: [q.length, q[0]?.length ?? D], data: new Float32Array(q.flat()) }]),
  });

  function reference(q: number[], k: number, metric: string): [string, number][] {
    const norm = (x: number[]) => Math.sqrt(x.reduce((a, y) => a + y * y, 0));
    const qf = q.map(Math.fround);
    const scored = vecs.map((v, i) => {
      const vf = v.map(Math.fround);
      const dot = vf.reduce((a, x, j) => a + qf[j] * x, 0);
      const l2 = Math.sqrt(vf.reduce((a, x, j) => a + (qf[j] - x) ** 2, 0));
      const den = norm(vf) * norm(qf);
      const s = metric === 'l2' ? l2 : metric === 'ip' ? dot : den === 0 ? 0 : dot / den;
      return { c: coords[i], s };
    });
    scored.sort((a, b) => (metric === 'l2' ? a.s - b.s : b.s - a.s) || cmpRow(a.c, b.c));
    return scored.slice(0, k).map((x) => [formatCoord(x.c), x.s]);
  }

  test.each(['cosine', 'l2', 'ip'])('%s matches brute force', (metric) => {
    const out = run(qs, 8, { metric, skip_mismatched: true });
    const c = tensor(out, 'coords');
    const s = new Float32Array(tensor(out, 'score').bytes.buffer);
    expect(c.shape).toEqual([qs.length, 8, 9]);
    const cw = new BigInt64Array(c.bytes.buffer);
    qs.forEach((q, i) => {
      const want = reference(q, 8, metric);
      want.forEach(([coord, score], j) => {
        expect(formatCoord(Array.from(cw.subarray((i * 8 + j) * 9, (i * 8 + j + 1) * 9), Number))).toBe(coord);
        expect(s[i * 8 + j]).toBeCloseTo(score, 4);
      });
    });
  });

  test('typed errors: dims, non-tensors, empty range, k, metric', () => {
    expect(code(() => run(qs, 3, {}))).toBe('E_DTYPE'); // the text value is in the range
    expect(code(() => run([[1, 2, 3]], 3, { skip_mismatched: false, pattern: '7.*.*/*.*.*/[0:7].*.[1:2]' }))).toBe('E_SHAPE');
    expect(code(() => run(qs, 3, { pattern: '8.*.*/*.*.*/*.*.*' }))).toBe('E_PARAM');
    expect(() => run(qs, 3, { pattern: '8.*.*/*.*.*/*.*.*' })).toThrow('no stored values');
    expect(code(() => run(qs, 701, { skip_mismatched: true }))).toBe('E_PARAM');
    expect(code(() => run(qs, 3, { metric: 'hier', skip_mismatched: true }))).toBe('E_PARAM');
    expect(code(() => run(qs, 3, { pattern: undefined }))).toBe('E_PARAM');
    expect(code(() => run(qs, 3, { pattern: 'x' }))).toBe('E_PATTERN');
    expect(code(() => run(qs, 3, { batch: true }))).toBe('E_PARAM');
  });
});

describe('tensorBatch', () => {
  test('int64 rows carry dtype int64', () => {
    const b = tensorBatch([{ shape: [2], data: BigInt64Array.from([1n, -2n]) }, { shape: [1], data: Int32Array.from([3]) }]);
    expect(Array.from(b.dtype)).toEqual([DType.Int64, DType.Int32]);
    expect(Array.from(new BigInt64Array(b.values.slice(0, 16).buffer))).toEqual([1n, -2n]);
  });
});
