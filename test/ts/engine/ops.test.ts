import * as fs from 'fs';
import * as path from 'path';
import { Engine } from '../../../engine/engine';
import { ENGINE_VERSION } from '../../../engine/ops/ping';
import { formatCoord } from '../../../engine/coords';
import { Kind, OpInput, ScrollBatch } from '../../../engine/types';
import schema from '../../../protocol/protocol.json';
import { code, coordsOf, dec, enc, stringBatch } from './helpers';

const textBatch = (rows: number[][], vals: string[]) => stringBatch(rows, vals, Kind.Text);

function texts(b: ScrollBatch): string[] {
  const out: string[] = [];
  for (let i = 0; i < b.n; i++) out.push(dec.decode(b.values.subarray(b.valueOffsets[i], b.valueOffsets[i + 1])));
  return out;
}

/** Engine with a 4×4 grid at a.b.0/0.0.0/0.0.c holding "a,c". */
function grid(): Engine {
  const e = new Engine();
  const rows: number[][] = [];
  const vals: string[] = [];
  for (let a = 1; a <= 4; a++) for (let c = 1; c <= 4; c++) {
    rows.push([a, 2, 0, 0, 0, 0, 0, 0, c]);
    vals.push(`${a},${c}`);
  }
  e.execute('CPUT', { params: { batch: true }, scrolls: textBatch(rows, vals) });
  return e;
}

const run = (e: Engine, op: string, input: Partial<OpInput> & { params: Record<string, unknown> }) => e.execute(op, input);

describe('engine dispatch', () => {
  test('unknown op, bad params, internal errors', () => {
    const e = new Engine();
    expect(code(() => e.execute('NOPE', { params: {} }))).toBe('E_OP');
    expect(code(() => e.execute('PING', { params: [] as unknown as Record<string, unknown> }))).toBe('E_PARAM');
    expect(code(() => e.execute('PING', { params: null as unknown as Record<string, unknown> }))).toBe('E_PARAM');
    e.register({ name: 'BOOM', run: () => { throw new TypeError('kaboom'); } });
    expect(code(() => e.execute('BOOM', { params: {} }))).toBe('E_INTERNAL');
    expect(() => e.execute('BOOM', { params: {} })).toThrow(/kaboom/);
    expect(code(() => e.register({ name: 'CGET', run: () => ({ result: {} }) }))).toBe('E_PARAM');
  });

  test('PING reports versions, ops, limits and the store size', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '../../../package.json'), 'utf8'));
    expect(ENGINE_VERSION).toBe(pkg.version);
    const r = new Engine({ maxBatch: 1000 }).execute('PING', { params: {} }).result;
    expect(r.version).toBe(schema.version);
    expect(r.ops).toEqual(expect.arrayContaining(['CGET', 'CPUT', 'CDEL', 'CRANGE', 'CDELTA', 'CHIER', 'CROUTE', 'PROGRAM', 'PING']));
    expect(r.limits).toEqual({ max_request_bytes: schema.defaults.max_request_bytes, max_batch: 1000, max_loop_ms: schema.defaults.max_loop_ms });
    const e = new Engine();
    const before = e.execute('PING', { params: {} }).result.store as Record<string, number>;
    e.execute('CPUT', { params: { coord: '1.2.3/4.5.6/7.8.9', kind: 'bytes' }, raw: new Uint8Array(100) });
    const after = e.execute('PING', { params: {} }).result.store as Record<string, number>;
    expect([before.entries, after.entries, after.heap_bytes]).toEqual([0, 1, 100]);
    expect(after.allocated_bytes).toBeGreaterThanOrEqual(100 + 9 * 4);
  });
});

describe('CPUT / CGET / CDEL', () => {
  test('single form', () => {
    const e = new Engine();
    expect(run(e, 'CPUT', { params: { coord: '1.1.1/1.1.1/1.1.1', kind: 'text' }, raw: enc.encode('hi') }).result).toEqual({ written: 1 });
    const t = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
    run(e, 'CPUT', { params: { coord: [0, 0, 0, 0, 0, 0, 0, 0, 2], kind: 'tensor', dtype: 'float32', shape: [2, 3] }, raw: t });
    const g = run(e, 'CGET', { params: { coord: '1.1.1/1.1.1/1.1.1' } });
    expect(g.result).toEqual({ found: true, kind: 'text', dtype: 'none', shape: [] });
    expect(dec.decode(g.raw)).toBe('hi');
    const g2 = run(e, 'CGET', { params: { coord: '0.0.0/0.0.0/0.0.2' } });
    expect(g2.result).toEqual({ found: true, kind: 'tensor', dtype: 'float32', shape: [2, 3] });
    expect(Array.from(new Float32Array(g2.raw!.slice().buffer))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run(e, 'CGET', { params: { coord: '9.9.9/9.9.9/9.9.9' } }).result).toEqual({ found: false });
    expect(run(e, 'CDEL', { params: { coord: '1.1.1/1.1.1/1.1.1' } }).result).toEqual({ deleted: 1 });
    expect(run(e, 'CDEL', { params: { coord: '1.1.1/1.1.1/1.1.1' } }).result).toEqual({ deleted: 0 });
  });

  test('single form errors', () => {
    const e = new Engine();
    const at = '1.1.1/1.1.1/1.1.1';
    expect(code(() => run(e, 'CPUT', { params: { coord: at, kind: 'text' } }))).toBe('E_PARAM');
    expect(code(() => run(e, 'CPUT', { params: { coord: at, kind: 'blob' }, raw: new Uint8Array(1) }))).toBe('E_DTYPE');
    expect(code(() => run(e, 'CPUT', { params: { coord: at, kind: 'tensor', dtype: 'float99', shape: [1] }, raw: new Uint8Array(4) }))).toBe('E_DTYPE');
    expect(code(() => run(e, 'CPUT', { params: { coord: at, kind: 'tensor', dtype: 'float32', shape: [2] }, raw: new Uint8Array(4) }))).toBe('E_SHAPE');
    expect(code(() => run(e, 'CPUT', { params: { coord: at, kind: 'bytes', dtype: 'float32' }, raw: new Uint8Array(4) }))).toBe('E_DTYPE');
    expect(code(() => run(e, 'CGET', { params: { coord: '1.2' } }))).toBe('E_COORD');
    expect(code(() => run(e, 'CGET', { params: {} }))).toBe('E_PARAM');
    expect(code(() => run(e, 'CGET', { params: { batch: true } }))).toBe('E_PARAM');
    expect(code(() => run(e, 'CGET', { params: { batch: true }, coords: new Uint32Array(10) }))).toBe('E_SHAPE');
    expect(code(() => run(e, 'CGET', { params: { batch: 'yes' } }))).toBe('E_PARAM');
  });

  test('batch form', () => {
    const e = grid();
    const q = coordsOf([[1, 2, 0, 0, 0, 0, 0, 0, 3], [9, 9, 9, 9, 9, 9, 9, 9, 9], [4, 2, 0, 0, 0, 0, 0, 0, 4]]);
    const g = run(e, 'CGET', { params: { batch: true }, coords: q });
    expect(g.result).toEqual({ n: 3, found: 2 });
    expect(texts(g.scrolls!)).toEqual(['1,3', '', '4,4']);
    expect(Array.from(g.scrolls!.kind)).toEqual([Kind.Text, 0, Kind.Text]);
    expect(run(e, 'CDEL', { params: { batch: true }, coords: q }).result).toEqual({ deleted: 2 });
    expect(run(e, 'CGET', { params: { batch: true }, coords: q }).result).toEqual({ n: 3, found: 0 });
    expect(code(() => run(e, 'CPUT', { params: { batch: true } }))).toBe('E_PARAM');
  });
});

describe('CRANGE', () => {
  test('pattern, order, limit, values', () => {
    const e = grid();
    const r = run(e, 'CRANGE', { params: { pattern: '*.2.0/0.0.0/0.0.[2:4]' } });
    expect(r.result).toEqual({ n: 8, truncated: false });
    expect(texts(r.scrolls!)).toEqual(['1,2', '1,3', '2,2', '2,3', '3,2', '3,3', '4,2', '4,3']);
    const l = run(e, 'CRANGE', { params: { pattern: '*.*.*/*.*.*/*.*.*', limit: 3, values: false } });
    expect(l.result).toEqual({ n: 3, truncated: true });
    expect(formatCoord(l.scrolls!.coords!, 2)).toBe('1.2.0/0.0.0/0.0.3');
    expect(l.scrolls!.values.length).toBe(0);
    expect(code(() => run(e, 'CRANGE', { params: {} }))).toBe('E_PARAM');
    expect(code(() => run(e, 'CRANGE', { params: { pattern: '1.2' } }))).toBe('E_PATTERN');
    expect(code(() => run(e, 'CRANGE', { params: { pattern: '*.*.*/*.*.*/*.*.*', limit: -1 } }))).toBe('E_PARAM');
    expect(code(() => run(e, 'CRANGE', { params: { pattern: '*.*.*/*.*.*/*.*.*', limit: 2 ** 40 } }))).toBe('E_LIMIT');
  });
});

describe('CDELTA', () => {
  test('single and batch, fetch, out of range', () => {
    const e = grid();
    const off = [1, 0, 0, 0, 0, 0, 0, 0, -1];
    const s = run(e, 'CDELTA', { params: { coord: '1.2.0/0.0.0/0.0.3', offset: off, fetch: true } });
    expect(s.result).toEqual({ coord: '2.2.0/0.0.0/0.0.2', found: true, kind: 'text', dtype: 'none', shape: [] });
    expect(dec.decode(s.raw)).toBe('2,2');
    expect(run(e, 'CDELTA', { params: { coord: '1.2.0/0.0.0/0.0.3', offset: off } }).result).toEqual({ coord: '2.2.0/0.0.0/0.0.2' });
    const q = coordsOf([[1, 2, 0, 0, 0, 0, 0, 0, 2], [4, 2, 0, 0, 0, 0, 0, 0, 2]]);
    const b = run(e, 'CDELTA', { params: { batch: true, offset: off, fetch: true }, coords: q });
    expect(b.result).toEqual({ n: 2, found: 1 });
    expect(texts(b.scrolls!)).toEqual(['2,1', '']);
    expect(formatCoord(b.scrolls!.coords!, 1)).toBe('5.2.0/0.0.0/0.0.1');
    const nb = run(e, 'CDELTA', { params: { batch: true, offset: off }, coords: q });
    expect(nb.scrolls!.n).toBe(2);
    expect(code(() => run(e, 'CDELTA', { params: { coord: '0.0.0/0.0.0/0.0.0', offset: off } }))).toBe('E_COORD');
    expect(code(() => run(e, 'CDELTA', { params: { coord: '4294967295.0.0/0.0.0/0.0.1', offset: off } }))).toBe('E_COORD');
    expect(code(() => run(e, 'CDELTA', { params: { coord: '0.0.0/0.0.0/0.0.0', offset: [1, 2] } }))).toBe('E_PARAM');
  });
});

describe('CHIER', () => {
  test('up and down with counts', () => {
    const e = grid();
    run(e, 'CPUT', { params: { coord: '1.3.0/0.0.0/0.0.1', kind: 'bytes' }, raw: new Uint8Array(1) });
    const up = run(e, 'CHIER', { params: { coord: '1.2.0/0.0.0/0.0.3', direction: 'up', depth: 9 } }).result.nodes as Array<Record<string, unknown>>;
    expect(up.map((n) => n.level)).toEqual([8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(up.find((n) => n.level === 2)).toEqual({ level: 2, prefix: [1, 2, 0, 0, 0, 0, 0, 0, 0], pattern: '1.2.*/*.*.*/*.*.*', count: 4 });
    expect(up.find((n) => n.level === 1)!.count).toBe(5);
    expect(up.find((n) => n.level === 0)!.count).toBe(17);
    const down = run(e, 'CHIER', { params: { coord: [1, 0, 0, 0, 0, 0, 0, 0, 0], level: 1, direction: 'down', depth: 1 } }).result.nodes;
    expect(down).toEqual([
      { level: 2, prefix: [1, 2, 0, 0, 0, 0, 0, 0, 0], pattern: '1.2.*/*.*.*/*.*.*', count: 4 },
      { level: 2, prefix: [1, 3, 0, 0, 0, 0, 0, 0, 0], pattern: '1.3.*/*.*.*/*.*.*', count: 1 },
    ]);
    const leaves = run(e, 'CHIER', { params: { coord: [2, 2, 0, 0, 0, 0, 0, 0, 0], level: 8, direction: 'down', depth: 3 } }).result.nodes as Array<Record<string, unknown>>;
    expect(leaves.map((n) => n.pattern)).toEqual(['2.2.0/0.0.0/0.0.1', '2.2.0/0.0.0/0.0.2', '2.2.0/0.0.0/0.0.3', '2.2.0/0.0.0/0.0.4']);
    const root = run(e, 'CHIER', { params: { coord: [0, 0, 0, 0, 0, 0, 0, 0, 0], level: 0, direction: 'down' } }).result.nodes as Array<Record<string, unknown>>;
    expect(root.map((n) => [n.pattern, n.count])).toEqual([['1.*.*/*.*.*/*.*.*', 5], ['2.*.*/*.*.*/*.*.*', 4], ['3.*.*/*.*.*/*.*.*', 4], ['4.*.*/*.*.*/*.*.*', 4]]);
    expect(code(() => run(e, 'CHIER', { params: { coord: [0, 0, 0, 0, 0, 0, 0, 0, 0] } }))).toBe('E_PARAM');
    expect(code(() => run(e, 'CHIER', { params: { coord: [0, 0, 0, 0, 0, 0, 0, 0, 0], direction: 'up', level: 10 } }))).toBe('E_PARAM');
  });
});

describe('CROUTE', () => {
  const table = [
    { start: '0.0.0/0.0.0/0.0.0', end: '2.0.0/0.0.0/0.0.0', shard: 0, address: 'tcp://a:1' },
    { start: '2.0.0/0.0.0/0.0.0', end: '3.0.0/0.0.0/0.0.5', shard: 1, address: null },
    { start: '3.0.0/0.0.0/0.0.5', end: null, shard: 2 },
  ];

  test('default, replace, single, batch', () => {
    const e = new Engine();
    expect(run(e, 'CROUTE', { params: {} }).result.table).toEqual([{ start: '0.0.0/0.0.0/0.0.0', end: null, shard: 0, address: null }]);
    expect(run(e, 'CROUTE', { params: { coord: '7.7.7/7.7.7/7.7.7' } }).result).toEqual({ shard: 0, address: null });
    expect((run(e, 'CROUTE', { params: { table } }).result.table as unknown[]).length).toBe(3);
    expect(run(e, 'CROUTE', { params: { coord: '1.9.9/9.9.9/9.9.9' } }).result).toEqual({ shard: 0, address: 'tcp://a:1' });
    expect(run(e, 'CROUTE', { params: { coord: '2.0.0/0.0.0/0.0.0' } }).result).toEqual({ shard: 1, address: null });
    const q = coordsOf([[3, 0, 0, 0, 0, 0, 0, 0, 4], [3, 0, 0, 0, 0, 0, 0, 0, 5], [0, 0, 0, 0, 0, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0, 0, 0, 0]]);
    const b = run(e, 'CROUTE', { params: { batch: true }, coords: q });
    expect(b.result).toEqual({ n: 4 });
    expect(Array.from(b.shards!)).toEqual([1, 2, 0, 2]);
  });

  test('table validation rejects without changing the table', () => {
    const e = new Engine();
    run(e, 'CROUTE', { params: { table } });
    const bad = [
      [],
      'x',
      [{ ...table[0], start: '0.0.0/0.0.0/0.0.1' }, ...table.slice(1)],
      [table[0], { ...table[1], start: '2.0.0/0.0.0/0.0.1' }, table[2]],
      [table[0], table[1], { ...table[2], end: '9.0.0/0.0.0/0.0.0' }],
      [{ ...table[0], end: null }, ...table.slice(1)],
      [{ ...table[0], shard: -1 }, ...table.slice(1)],
      [{ ...table[0], address: 5 }, ...table.slice(1)],
      [{ ...table[0], end: '0.0.0/0.0.0/0.0.0' }, { ...table[1], start: '0.0.0/0.0.0/0.0.0' }, table[2]],
    ];
    for (const t of bad) expect(code(() => run(e, 'CROUTE', { params: { table: t } }))).toBe('E_PARAM');
    expect(code(() => run(e, 'CROUTE', { params: { table: [{ ...table[0], start: 'bad' }] } }))).toBe('E_COORD');
    expect((run(e, 'CROUTE', { params: {} }).result.table as unknown[]).length).toBe(3);
  });
});

describe('PROGRAM', () => {
  test('CRANGE → CDELTA → CGET in one call', () => {
    const e = grid();
    const r = run(e, 'PROGRAM', {
      params: {
        steps: [
          { op: 'CRANGE', params: { pattern: '1.2.0/0.0.0/0.0.[2:4]', values: false } },
          { op: 'CDELTA', params: { offset: [2, 0, 0, 0, 0, 0, 0, 0, 1], body: { $ref: 0 } } },
          { op: 'CGET', params: { body: { $ref: 1 } } },
        ],
      },
    });
    expect(r.result.results).toEqual([{ n: 2, truncated: false }, { n: 2 }, { n: 2, found: 2 }]);
    expect(r.outputs).toHaveLength(1);
    expect(texts(r.outputs![0].scrolls!)).toEqual(['3,3', '3,4']);
  });

  test('bodies, field refs and returned bodies', () => {
    const e = grid();
    const r = run(e, 'PROGRAM', {
      params: {
        steps: [
          { op: 'CRANGE', params: { pattern: '1.2.0/0.0.0/0.0.*', values: false } },
          { op: 'CDELTA', params: { offset: [2, 0, 0, 0, 0, 0, 0, 0, 0], body: { $ref: 0 } } },
          { op: 'CGET', params: { body: { $ref: 1 } } },
          { op: 'CPUT', params: { batch: true, body: true } },
          { op: 'CRANGE', params: { pattern: '7.*.*/*.*.*/*.*.*', limit: { $ref: 0, field: 'n' } } },
        ],
        return: [2, 4, 3],
      },
      bodies: [{ scrolls: textBatch([[7, 0, 0, 0, 0, 0, 0, 0, 1], [7, 0, 0, 0, 0, 0, 0, 0, 2]], ['x', 'y']) }],
    });
    const results = r.result.results as Array<Record<string, unknown>>;
    expect(results[0]).toEqual({ n: 4, truncated: false });
    expect(results[2]).toEqual({ n: 4, found: 4 });
    expect(results[3]).toEqual({ written: 2 });
    expect(results[4]).toEqual({ n: 2, truncated: false });
    expect(r.outputs).toHaveLength(3);
    expect(texts(r.outputs![0].scrolls!)).toEqual(['3,1', '3,2', '3,3', '3,4']);
    expect(texts(r.outputs![1].scrolls!)).toEqual(['x', 'y']);
    expect(r.outputs![2]).toEqual({});
  });

  test('bad programs fail before anything runs', () => {
    const e = grid();
    const put = { op: 'CPUT', params: { coord: '8.8.8/8.8.8/8.8.8' } };
    const bad: Array<[unknown, string]> = [
      [[], 'E_PARAM'],
      [[put, { op: 'CGET', params: { body: { $ref: 1 } } }], 'E_PARAM'],
      [[put, { op: 'CGET', params: { body: { $ref: 5 } } }], 'E_PARAM'],
      [[put, { op: 'CGET', params: { body: { $ref: -1 } } }], 'E_PARAM'],
      [[put, { op: 'CGET', params: { deep: [{ $ref: 0 }] } }], 'E_PARAM'],
      [[put, { op: 'NOPE', params: {} }], 'E_OP'],
      [[put, { op: 'PROGRAM', params: {} }], 'E_PARAM'],
      [[{ ...put, params: { ...put.params, body: { body: true } } }], 'E_PARAM'],
    ];
    for (const [steps, c] of bad) expect(code(() => run(e, 'PROGRAM', { params: { steps } }))).toBe(c);
    expect(code(() => run(e, 'PROGRAM', { params: { steps: [put], return: [3] } }))).toBe('E_PARAM');
    expect(run(e, 'CGET', { params: { coord: '8.8.8/8.8.8/8.8.8' } }).result.found).toBe(false);
    const failing = () => run(e, 'PROGRAM', { params: { steps: [{ op: 'CGET', params: { coord: 'x' } }] } });
    expect(code(failing)).toBe('E_COORD');
    expect(failing).toThrow(/step 0 \(CGET\)/);
  });
});
