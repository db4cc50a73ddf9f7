import { Store } from '../../../engine/store/store';
import { parsePattern, matchesPattern, formatPattern, Pattern } from '../../../engine/pattern';
import { compareCoords, formatCoord } from '../../../engine/coords';
import { Kind, ScrollBatch } from '../../../engine/types';

/** Deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Components drawn from small ranges so patterns hit; component 4 sometimes huge. */
function randomCoords(n: number, rand: () => number): Uint32Array {
  const out = new Uint32Array(n * 9);
  const span = [3, 4, 5, 6, 50, 2, 10, 7, 1000];
  for (let i = 0; i < n * 9; i++) {
    const d = i % 9;
    out[i] = d === 4 && rand() < 0.1 ? 0xffffffff - Math.floor(rand() * 3) : Math.floor(rand() * span[d]);
  }
  return out;
}

function batchFor(coords: Uint32Array, tag: number): ScrollBatch {
  const n = coords.length / 9;
  const valueOffsets = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) valueOffsets[i + 1] = valueOffsets[i] + 4;
  const values = new Uint8Array(n * 4);
  const dv = new DataView(values.buffer);
  for (let i = 0; i < n; i++) dv.setUint32(i * 4, tag * 1e6 + i, true);
  return {
    n, coords, kind: new Uint8Array(n).fill(Kind.Bytes), dtype: new Uint8Array(n),
    shapeOffsets: new Int32Array(n + 1), shapeValues: new Uint32Array(0), valueOffsets, values,
  };
}

function randomPattern(rand: () => number): Pattern {
  const span = [3, 4, 5, 6, 50, 2, 10, 7, 1000];
  const parts: string[] = [];
  for (let d = 0; d < 9; d++) {
    const r = rand();
    if (r < 0.6) parts.push('*');
    else if (r < 0.8) parts.push(String(Math.floor(rand() * span[d])));
    else {
      const a = Math.floor(rand() * span[d]);
      parts.push(`[${a}:${a + 1 + Math.floor(rand() * span[d])}]`);
    }
  }
  return parsePattern(`${parts[0]}.${parts[1]}.${parts[2]}/${parts[3]}.${parts[4]}.${parts[5]}/${parts[6]}.${parts[7]}.${parts[8]}`);
}

/** Reference model: coordinate string → coords row, kept in sync with the store. */
class Model {
  rows = new Map<string, number[]>();
  put(c: Uint32Array): void {
    for (let i = 0; i < c.length / 9; i++) this.rows.set(formatCoord(c, i), Array.from(c.subarray(i * 9, i * 9 + 9)));
  }
  del(c: Uint32Array): void {
    for (let i = 0; i < c.length / 9; i++) this.rows.delete(formatCoord(c, i));
  }
  match(p: Pattern): string[] {
    const hits = [...this.rows.values()].filter((r) => matchesPattern(p, r, 0));
    hits.sort((a, b) => compareCoords(a, 0, b, 0));
    return hits.map((r) => formatCoord(r));
  }
}

function rangeStrings(s: Store, p: Pattern, limit = 1e9): { got: string[]; truncated: boolean } {
  const { batch, truncated } = s.range(p, limit);
  const got: string[] = [];
  for (let i = 0; i < batch.n; i++) got.push(formatCoord(batch.coords!, i));
  return { got, truncated };
}

describe('range index', () => {
  test('random patterns equal a brute-force filter, without scans', () => {
    const rand = rng(7);
    const s = new Store();
    const m = new Model();
    const data = randomCoords(20000, rand);
    s.putBatch(batchFor(data, 1));
    m.put(data);
    for (let q = 0; q < 150; q++) {
      const p = randomPattern(rand);
      const want = m.match(p);
      const before = s.stats();
      const { got, truncated } = rangeStrings(s, p);
      expect({ p: formatPattern(p), got }).toEqual({ p: formatPattern(p), got: want });
      expect(truncated).toBe(false);
      const after = s.stats();
      const allStar = formatPattern(p) === '*.*.*/*.*.*/*.*.*';
      expect(after.rangeScans - before.rangeScans).toBe(allStar ? 1 : 0);
      expect(after.rangeIndexHits - before.rangeIndexHits).toBe(allStar ? 0 : 1);
    }
  });

  test('leading wildcards and ranges use the index', () => {
    const s = new Store();
    const m = new Model();
    const data = randomCoords(10000, rng(3));
    s.putBatch(batchFor(data, 1));
    m.put(data);
    for (const t of ['*.*.*/3.*.*/*.*.*', '*.*.*/*.*.*/*.*.[10:20]', '*.*.[1:3]/*.[4294967293:].*/*.*.*', '*.*.*/*.*.*/[2:4].*.5']) {
      const p = parsePattern(t);
      const scans = s.stats().rangeScans;
      expect(rangeStrings(s, p).got).toEqual(m.match(p));
      expect(s.stats().rangeScans).toBe(scans);
    }
    expect(s.stats().rangeScans).toBe(0);
  });

  test('limit truncates in coordinate order', () => {
    const s = new Store();
    const m = new Model();
    const data = randomCoords(5000, rng(11));
    s.putBatch(batchFor(data, 1));
    m.put(data);
    for (const t of ['*.*.*/*.*.*/*.*.*', '1.*.*/*.*.*/*.*.*', '*.*.*/[1:4].*.*/*.*.*', '*.*.*/*.*.*/*.*.*']) {
      const p = parsePattern(t);
      const want = m.match(p);
      const { got, truncated } = rangeStrings(s, p, 17);
      expect(got).toEqual(want.slice(0, 17));
      expect(truncated).toBe(want.length > 17);
      expect(rangeStrings(s, p, 0)).toEqual({ got: [], truncated: want.length > 0 });
    }
  });

  test('interleaved writes, deletes and ranges (delta path and rebuilds)', () => {
    const rand = rng(99);
    const s = new Store({ compactMinBytes: 0 });
    const m = new Model();
    for (let round = 0; round < 30; round++) {
      const add = randomCoords(round % 5 === 0 ? 6000 : 300, rand);
      s.putBatch(batchFor(add, round));
      m.put(add);
      if (round % 3 === 2) {
        const keys = [...m.rows.values()];
        const del = new Uint32Array(keys.filter(() => rand() < 0.3).flat());
        s.deleteBatch(del);
        m.del(del);
      }
      for (let q = 0; q < 5; q++) {
        const p = randomPattern(rand);
        expect(rangeStrings(s, p).got).toEqual(m.match(p));
      }
      expect(s.size).toBe(m.rows.size);
    }
  });

  test('range values come back with their coordinates', () => {
    const s = new Store();
    const data = randomCoords(2000, rng(5));
    s.putBatch(batchFor(data, 2));
    const { batch } = s.range(parsePattern('*.*.*/*.*.*/*.*.[0:50]'), 1e9);
    const { batch: direct } = s.getBatch(batch.coords!);
    expect(Buffer.from(batch.values).equals(Buffer.from(direct.values))).toBe(true);
    const bare = s.range(parsePattern('*.*.*/*.*.*/*.*.[0:50]'), 1e9, false).batch;
    expect(bare.n).toBe(batch.n);
    expect(bare.values.length).toBe(0);
  });

  test('countPrefix and children match brute force', () => {
    const rand = rng(1234);
    const s = new Store({ compactMinBytes: 0 });
    const m = new Model();
    const data = randomCoords(8000, rand);
    s.putBatch(batchFor(data, 1));
    m.put(data);
    s.range(parsePattern('1.*.*/*.*.*/*.*.*'), 1); // build ordering 0 so later writes land in the delta
    const more = randomCoords(500, rand);
    s.putBatch(batchFor(more, 2));
    m.put(more);
    const del = new Uint32Array([...m.rows.values()].filter(() => rand() < 0.1).flat());
    s.deleteBatch(del);
    m.del(del);
    const rows = [...m.rows.values()];
    for (let level = 1; level <= 9; level++) {
      const probe = rows[level * 7];
      const want = rows.filter((r) => r.slice(0, level).every((x, d) => x === probe[d])).length;
      expect(s.countPrefix(probe, level)).toBe(want);
    }
    expect(s.countPrefix(rows[0], 0)).toBe(rows.length);
    const parent = rows[3];
    for (const [level, child] of [[0, 1], [1, 2], [2, 4], [8, 9]]) {
      const under = rows.filter((r) => r.slice(0, level).every((x, d) => x === parent[d]));
      const counts = new Map<string, number>();
      for (const r of under) {
        const k = [...r.slice(0, child), ...new Array(9 - child).fill(0)];
        counts.set(k.join(','), (counts.get(k.join(',')) ?? 0) + 1);
      }
      const want = [...counts.entries()].map(([k, n]) => ({ k: k.split(',').map(Number), n }));
      want.sort((a, b) => compareCoords(a.k, 0, b.k, 0));
      const got = s.children(parent, level, child).map((x) => ({ k: Array.from(x.prefix), n: x.count }));
      expect(got).toEqual(want);
    }
  });
});
