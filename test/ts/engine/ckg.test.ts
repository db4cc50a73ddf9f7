import { Engine } from '../../../engine/engine';
import { Kind, OpOutput } from '../../../engine/types';
import { graphOf } from '../../../engine/kg/overlay';
import { code, coordsOf, dec, stringBatch } from './helpers';

const P = 1; // entity type "person"
const FATHER = 1;
const SISTER = 2;
const HUSBAND = 3;
const SPOUSE = 4;

/** Edge row src -rel-> dst, both persons. */
const edge = (src: number, rel: number, dst: number) => [P, src, 0, rel, P, dst, 0, 0, 0];
const name = (id: number) => [P, id, 1, 0, 0, 0, 0, 0, 0];

/** Alice 1001 → father Bob 1002 → sister Carol 1003 → husband David 1004 → spouse Emily 1005. */
function family(): Engine {
  const e = new Engine();
  const rows = [edge(1001, FATHER, 1002), edge(1002, SISTER, 1003), edge(1003, HUSBAND, 1004), edge(1004, SPOUSE, 1005),
    edge(1002, SISTER, 1006), edge(1006, HUSBAND, 1007), edge(1007, SPOUSE, 1008), edge(1001, SISTER, 1009)];
  const names = ['Alice', 'Bob', 'Carol', 'David', 'Emily', 'Fay', 'Gus', 'Hana', 'Ines'];
  const all = [...rows, ...names.map((_, i) => name(1001 + i))];
  e.execute('CPUT', { params: { batch: true }, scrolls: stringBatch(all, [...rows.map(() => ''), ...names], Kind.Text) });
  return e;
}

/** (type, id) pairs of a reply's coords body. */
function ents(out: OpOutput): number[][] {
  const c = (out.coords ?? out.scrolls?.coords) as Uint32Array;
  const r: number[][] = [];
  for (let i = 0; i < c.length; i += 9) r.push([c[i], c[i + 1]]);
  return r;
}

/** BFS rows' depth, parent and relation from the 12-byte row values. */
function meta(out: OpOutput): { depth: number[]; parent: number[]; relation: number[] } {
  const b = out.scrolls!;
  const w = new DataView(b.values.buffer, b.values.byteOffset, b.values.byteLength);
  const r = { depth: [] as number[], parent: [] as number[], relation: [] as number[] };
  for (let i = 0; i < b.n; i++) {
    expect(b.valueOffsets[i + 1] - b.valueOffsets[i]).toBe(12);
    r.depth.push(w.getInt32(b.valueOffsets[i], true));
    r.parent.push(w.getInt32(b.valueOffsets[i] + 4, true));
    r.relation.push(w.getInt32(b.valueOffsets[i] + 8, true));
  }
  return r;
}

const ckg = (e: Engine, params: Record<string, unknown>, coords?: Uint32Array) => e.execute('CKG', { params, coords });

describe('CKG path mode', () => {
  test('father → sister → husband → spouse', () => {
    const e = family();
    const out = ckg(e, { mode: 'path', start: '1.1001.0/0.0.0/0.0.0', path: [FATHER, SISTER, HUSBAND, SPOUSE] });
    expect(ents(out)).toEqual([[P, 1005], [P, 1008]]);
    expect(out.result).toMatchObject({ n: 2, starts: 1, offsets: [0, 2], truncated: [false] });
    expect(typeof out.result.elapsed_us).toBe('number');
  });

  test('batch of starts, hop alternatives and "*", paths, limit', () => {
    const e = family();
    const starts = coordsOf([name(1001), name(1002), [P, 4242, 0, 0, 0, 0, 0, 0, 0]]);
    let out = ckg(e, { mode: 'path', batch: true, path: [[SISTER, FATHER], '*'] }, starts);
    // 1001: father 1002 → sisters 1003, 1006; sister 1009 → nothing. 1002: sisters → husbands. 4242 absent.
    expect(ents(out)).toEqual([[P, 1003], [P, 1006], [P, 1004], [P, 1007]]);
    expect(out.result.offsets).toEqual([0, 2, 4, 4]);
    out = ckg(e, { mode: 'path', start: name(1001), path: [FATHER, SISTER, HUSBAND], paths: true });
    expect(out.result).toMatchObject({ hops: 3, offsets: [0, 2], n: 8 });
    expect(ents(out).map((x) => x[1])).toEqual([1001, 1002, 1003, 1004, 1001, 1002, 1006, 1007]);
    out = ckg(e, { mode: 'path', start: name(1001), path: [FATHER, SISTER, HUSBAND], paths: true, limit: 1 });
    expect(out.result).toMatchObject({ offsets: [0, 1], truncated: [true] });
    out = ckg(e, { mode: 'path', start: name(1002), path: [SISTER], limit: 1, attr: 1 });
    expect(out.result).toMatchObject({ n: 1, truncated: [true] });
    expect(Array.from(out.coords as Uint32Array)).toEqual(name(1003));
  });

  test('an unused relation is empty, bad params are typed errors', () => {
    const e = family();
    expect(ckg(e, { mode: 'path', start: name(1001), path: [99] }).result.n).toBe(0);
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ mode: 'walk', start: name(1001), path: [1] }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001) }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: [] }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: [0] }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: ['father'] }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: [[]] }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: new Array(65).fill(1) }, 'E_PARAM'],
      [{ mode: 'path', start: '1.2.3', path: [1] }, 'E_COORD'],
      [{ mode: 'path', start: [1, 2, 3], path: [1] }, 'E_COORD'],
      [{ mode: 'path', path: [1] }, 'E_PARAM'],
      [{ mode: 'path', batch: true, path: [1] }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001) }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001), depth: -1 }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001), depth: 65536 }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001), depth: 2, relations: [] }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001), depth: 2, limit: 0 }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001), depth: 1.5 }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001), depth: 2, relations: 'x' }, 'E_PARAM'],
      [{ mode: 'bfs', start: name(1001), depth: 2, relations: [{}] }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: 'father' }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: [1], paths: 'yes' }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: [1], attr: -1 }, 'E_PARAM'],
      [{ mode: 'path', start: name(1001), path: [2 ** 32] }, 'E_PARAM'],
      [{ mode: 'path', start: null, path: [1] }, 'E_PARAM'],
      [{ mode: 'path', start: '1.2.3/4.5.6/7.8.x', path: [1] }, 'E_COORD'],
      [{ mode: 'path', start: [1, 2, 3, 4, 5, 6, 7, 8, -1], path: [1] }, 'E_COORD'],
    ];
    for (const [params, want] of bad) expect([params, code(() => ckg(e, params))]).toEqual([params, want]);
  });

  test('a reply over the batch limit is E_LIMIT; one start is cut to it (truncated)', () => {
    const e = new Engine({ maxBatch: 4 });
    const rows = [edge(1, FATHER, 2), edge(2, FATHER, 3), edge(5, FATHER, 6), edge(6, FATHER, 7)];
    e.execute('CPUT', { params: { batch: true }, scrolls: stringBatch(rows, rows.map(() => ''), Kind.Bytes) });
    const two = coordsOf([name(1), name(5)]);
    expect(code(() => ckg(e, { mode: 'bfs', batch: true, depth: 5 }, two))).toBe('E_LIMIT');
    expect(code(() => ckg(e, { mode: 'path', batch: true, path: [FATHER, FATHER], paths: true }, two))).toBe('E_LIMIT');
    expect(ckg(e, { mode: 'bfs', batch: true, depth: 5, limit: 2 }, two).result).toMatchObject({ n: 4, truncated: [true, true] });
    expect(ckg(e, { mode: 'path', batch: true, path: [FATHER] }, two).result).toMatchObject({ n: 2, truncated: [false, false] });
  });
});

describe('CKG backward hops', () => {
  test('-r follows r from target to source; "-*" any relation backwards', () => {
    const e = family();
    expect(ents(ckg(e, { mode: 'path', start: name(1002), path: [-FATHER] }))).toEqual([[P, 1001]]);
    expect(ents(ckg(e, { mode: 'path', start: name(1005), path: [-SPOUSE, -HUSBAND, -SISTER, -FATHER] }))).toEqual([[P, 1001]]);
    // Bob's sisters' other siblings: forward to a sister, backward to everyone with that sister.
    expect(ents(ckg(e, { mode: 'path', start: name(1002), path: [SISTER, -SISTER] }))).toEqual([[P, 1002]]);
    let out = ckg(e, { mode: 'bfs', start: name(1005), depth: 9, relations: ['-*'] });
    expect(ents(out).map((x) => x[1])).toEqual([1005, 1004, 1003, 1002, 1001]);
    expect(meta(out).relation).toEqual([0, -SPOUSE, -HUSBAND, -SISTER, -FATHER]);
    // Both ways from Carol (1003): forward husband first, then backward sister (Bob).
    out = ckg(e, { mode: 'bfs', start: name(1003), depth: 1, relations: ['*', '-*'] });
    expect(ents(out).map((x) => x[1])).toEqual([1003, 1004, 1002]);
    expect(meta(out).relation).toEqual([0, HUSBAND, -SISTER]);
    out = ckg(e, { mode: 'path', start: name(1003), path: [[HUSBAND, -SISTER], '*'], paths: true });
    expect(ents(out).map((x) => x[1])).toEqual([1003, 1004, 1005, 1003, 1002, 1003, 1003, 1002, 1006]);
  });
});

describe('CKG bfs mode', () => {
  test('levels, parents, relations, depth cut and max nodes', () => {
    const e = family();
    let out = ckg(e, { mode: 'bfs', start: name(1001), depth: 2 });
    expect(ents(out).map((x) => x[1])).toEqual([1001, 1002, 1009, 1003, 1006]);
    expect(meta(out)).toEqual({ depth: [0, 1, 1, 2, 2], parent: [-1, 0, 0, 1, 1], relation: [0, FATHER, SISTER, SISTER, SISTER] });
    out = ckg(e, { mode: 'bfs', start: name(1001), depth: 10, relations: [FATHER] });
    expect(ents(out).map((x) => x[1])).toEqual([1001, 1002]);
    out = ckg(e, { mode: 'bfs', start: name(1001), depth: 10, limit: 3 });
    expect(out.result).toMatchObject({ n: 3, truncated: [true] });
    out = ckg(e, { mode: 'bfs', start: name(1001), depth: 0 });
    expect(out.result).toMatchObject({ n: 1, truncated: [false] });
    expect(meta(out).depth).toEqual([0]);
    // multi_source: one search from both, starts first (each once), nodes shared.
    out = ckg(e, { mode: 'bfs', batch: true, depth: 1, multi_source: true }, coordsOf([name(1002), name(1001), name(1002), name(4242)]));
    expect(out.result).toMatchObject({ offsets: [0, 5], truncated: [false], starts: 4 });
    expect(ents(out).map((x) => x[1])).toEqual([1002, 1001, 1003, 1006, 1009]);
    expect(meta(out)).toEqual({ depth: [0, 0, 1, 1, 1], parent: [-1, -1, 0, 0, 1], relation: [0, 0, SISTER, SISTER, SISTER] });
    // Ines exists (attribute only): just herself. 4242 does not exist: empty.
    out = ckg(e, { mode: 'bfs', batch: true, depth: 3 }, coordsOf([name(1009), name(4242)]));
    expect(out.result).toMatchObject({ n: 1, offsets: [0, 1, 1] });
  });

  test('writes and deletes are seen by the next query (cache rebuilt from the store)', () => {
    const e = family();
    const q = () => ents(ckg(e, { mode: 'path', start: name(1001), path: [FATHER, SISTER, HUSBAND, SPOUSE] })).map((x) => x[1]);
    expect(q()).toEqual([1005, 1008]);
    e.execute('CDEL', { params: { coord: edge(1004, SPOUSE, 1005) } });
    expect(q()).toEqual([1008]);
    e.execute('CPUT', { params: { batch: true }, scrolls: stringBatch([edge(1007, SPOUSE, 1010)], [''], Kind.Bytes) });
    expect(q()).toEqual([1008, 1010]);
    const again = ckg(e, { mode: 'path', start: name(1001), path: [FATHER] });
    expect(again.result.build_us).toBe(0);
    // An entity whose only row is an edge to it stops existing with that edge; one with a name stays.
    const f = new Engine();
    const rows = [edge(1, FATHER, 2), edge(1, FATHER, 3), name(3)];
    f.execute('CPUT', { params: { batch: true }, scrolls: stringBatch(rows, ['', '', 'C'], Kind.Text) });
    const exists = (id: number) => ckg(f, { mode: 'bfs', start: name(id), depth: 0 }).result.n;
    expect([exists(1), exists(2), exists(3)]).toEqual([1, 1, 1]);
    f.execute('CDEL', { params: { batch: true }, coords: coordsOf([edge(1, FATHER, 2), edge(1, FATHER, 3)]) });
    expect([exists(1), exists(2), exists(3)]).toEqual([0, 0, 1]);
  });
});

/** The same query on a fresh engine loaded with the store's live rows (a graph built from scratch). */
function reference(e: Engine, params: Record<string, unknown>): OpOutput {
  const all = e.execute('CRANGE', { params: { pattern: '*.*.*/*.*.*/*.*.*' } }).scrolls!;
  const f = new Engine();
  if (all.n > 0) f.execute('CPUT', { params: { batch: true }, scrolls: all });
  return ckg(f, params);
}

describe('CKG after random writes and deletes', () => {
  test('every query equals a from-scratch build (updated in place, or rebuilt after compaction)', () => {
    let seed = 7;
    const rnd = (m: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % m;
    };
    const e = new Engine();
    const randomEdge = () => [1 + rnd(2), rnd(30), 0, 1 + rnd(3), 1 + rnd(2), rnd(30), 0, 0, 0];
    const written: number[][] = [];
    const put = (rows: number[][]) => {
      written.push(...rows);
      e.execute('CPUT', { params: { batch: true }, scrolls: stringBatch(rows, rows.map(() => ''), Kind.Bytes) });
    };
    put(Array.from({ length: 60 }, randomEdge));
    let inPlace = 0;
    let deletesInPlace = 0;
    let rebuilds = 0;
    for (let step = 0; step < 80; step++) {
      const before = graphOf(e.store).graph;
      const v0 = before.version;
      const op = rnd(8);
      if (op <= 1) e.execute('CDEL', { params: { coord: written[rnd(written.length)] } });
      else if (op === 2) put([[1 + rnd(2), 40 + rnd(5), 1, 0, 0, 0, 0, 0, 0]]); // an attribute-only entity
      else if (op === 3) e.store.compact(); // renumbers ids: the next write rebuilds
      else put(Array.from({ length: 1 + rnd(4) }, randomEdge));
      const after = graphOf(e.store).graph;
      if (after !== before) rebuilds++;
      else if (after.version !== v0) inPlace++;
      if (after === before && after.dead !== null) deletesInPlace++;
      const start = [1 + rnd(2), rnd(45), 0, 0, 0, 0, 0, 0, 0];
      const queries: Array<Record<string, unknown>> = [
        { mode: 'path', start, path: [1 + rnd(3), '*'] },
        { mode: 'path', start, path: ['*', [1, 2]], paths: true },
        { mode: 'bfs', start, depth: 1 + rnd(4) },
        { mode: 'path', start, path: [-(1 + rnd(3)), ['-*', 2]] },
        { mode: 'path', start, path: ['-*', '*'], paths: true },
        { mode: 'bfs', start, depth: 1 + rnd(3), relations: ['*', '-*'] },
      ];
      for (const q of queries) {
        const got = ckg(e, q);
        const want = reference(e, q);
        expect([q, ents(got), got.scrolls?.values]).toEqual([q, ents(want), want.scrolls?.values]);
        expect(got.result.offsets).toEqual(want.result.offsets);
      }
    }
    expect(inPlace).toBeGreaterThan(30);
    expect(deletesInPlace).toBeGreaterThan(10);
    expect(rebuilds).toBeGreaterThan(3);
  });
});

describe('CKG on a hub written out of order', () => {
  test('edges come back in (relation, type, id) order whatever the write order', () => {
    const e = new Engine();
    const rows: number[][] = [];
    for (let i = 40; i >= 1; i--) rows.push([P, 1, 0, 1 + (i % 3), 1 + (i % 2), 100 + i, 0, 0, 0]);
    e.execute('CPUT', { params: { batch: true }, scrolls: stringBatch(rows, rows.map(() => ''), Kind.Bytes) });
    const want = rows.filter((r) => r[3] === 2).map((r) => [r[4], r[5]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    expect(ents(ckg(e, { mode: 'path', start: [P, 1, 0, 0, 0, 0, 0, 0, 0], path: [2] }))).toEqual(want);
    const tree = ckg(e, { mode: 'bfs', start: [P, 1, 0, 0, 0, 0, 0, 0, 0], depth: 1 });
    const got = ents(tree).slice(1);
    const all = rows.map((r) => [r[3], r[4], r[5]]).sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    expect(got).toEqual(all.map((x) => [x[1], x[2]]));
    expect(meta(tree).relation).toEqual([0, ...all.map((x) => x[0])]);
    // A short run (insertion-sorted) written in reverse order.
    const few = [5, 4, 3, 2, 1].map((i) => [P, 2, 0, 1 + (i % 2), P, 200 + i, 0, 0, 0]);
    e.execute('CPUT', { params: { batch: true }, scrolls: stringBatch(few, few.map(() => ''), Kind.Bytes) });
    const short = ckg(e, { mode: 'bfs', start: [P, 2, 0, 0, 0, 0, 0, 0, 0], depth: 1 });
    expect(ents(short).map((x) => x[1])).toEqual([2, 202, 204, 201, 203, 205]);
  });
});

describe('CKG in a PROGRAM', () => {
  test('CKG ends feed a CGET of their names', () => {
    const e = family();
    const out = e.execute('PROGRAM', {
      params: {
        steps: [
          { op: 'CKG', params: { mode: 'path', start: name(1001), path: [FATHER, SISTER, HUSBAND, SPOUSE], attr: 1 } },
          { op: 'CGET', params: { body: { $ref: 0 } } },
        ],
      },
    });
    const b = out.outputs?.[0].scrolls;
    expect(b?.n).toBe(2);
    const names = [0, 1].map((i) => dec.decode(b!.values.subarray(b!.valueOffsets[i], b!.valueOffsets[i + 1])));
    expect(names).toEqual(['Emily', 'Hana']);
  });

  test('a CRANGE of attribute rows feeds CKG starts', () => {
    const e = family();
    const out = e.execute('PROGRAM', {
      params: {
        steps: [
          { op: 'CRANGE', params: { pattern: '1.[1001:1003].1/0.0.0/0.0.0', values: false } },
          { op: 'CKG', params: { mode: 'path', path: [SISTER], body: { $ref: 0 } } },
        ],
      },
    });
    expect((out.result.results as Array<Record<string, unknown>>)[1]).toMatchObject({ offsets: [0, 1, 3] });
  });
});

describe('store hooks the CKG graph relies on', () => {
  test('version counts writes, generation counts renumbering, onDelete reports deleted ids', () => {
    const e = new Engine();
    const st = e.store;
    const deleted: number[] = [];
    st.onDelete((id) => deleted.push(id));
    const v0 = st.version;
    st.putBatch(stringBatch([name(1), name(2), name(3)], ['a', 'b', 'c'], Kind.Text));
    st.put(coordsOf([name(4)]), 0, { kind: Kind.Text, dtype: 0, shape: [], bytes: new Uint8Array(1) });
    expect(st.version).toBe(v0 + 2);
    expect(st.delete(name(9))).toBe(false); // a miss is no write
    expect(st.version).toBe(v0 + 2);
    expect(st.delete(name(2))).toBe(true);
    expect(st.deleteBatch(coordsOf([name(3), name(8)]))).toBe(1);
    expect([st.version, deleted]).toEqual([v0 + 4, [1, 2]]);
    const g0 = st.generation;
    st.compact();
    expect([st.version, st.generation]).toEqual([v0 + 4, g0 + 1]);
    st.clear();
    expect([st.version, st.generation, deleted.length]).toEqual([v0 + 5, g0 + 2, 2]);
  });
});
