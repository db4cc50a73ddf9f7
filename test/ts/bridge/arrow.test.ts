import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Field, FixedSizeList, Int32, RecordBatch, RecordBatchReader, Schema, Struct, Table, Uint32, Utf8, makeData, tableToIPC, vectorFromArray } from 'apache-arrow';
import {
  decodeBody, decodeCoords, decodeScrolls, decodeShards, encodeCoords, encodeScrolls, encodeShards,
} from '../../../bridge/arrow';
import { VtpuError } from '../../../engine/errors';
import type { ScrollBatch } from '../../../engine/types';
import { bytesBatch, coordsFor, row } from './helpers';

const PY = join(__dirname, '../../../.venv/bin/python');

function frameError(f: () => unknown): string {
  try { f(); } catch (e) {
    expect(e).toBeInstanceOf(VtpuError);
    expect((e as VtpuError).code).toBe('E_FRAME');
    return (e as Error).message;
  }
  throw new Error('expected E_FRAME');
}

function mixed(): ScrollBatch {
  const vals = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('héllo'), Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer)];
  const valueOffsets = new Int32Array([0, 3, 3, 9, 33]);
  return {
    n: 4, coords: coordsFor(4), kind: new Uint8Array([2, 0, 1, 3]), dtype: new Uint8Array([0, 0, 0, 1]),
    shapeOffsets: new Int32Array([0, 0, 0, 0, 2]), shapeValues: new Uint32Array([2, 3]),
    valueOffsets, values: Buffer.concat(vals),
  };
}

describe('arrow codecs', () => {
  test('coords round trip, zero rows and max components', () => {
    const c = coordsFor(1000);
    c[5] = 0xffffffff;
    expect(Array.from(decodeCoords(encodeCoords(c)))).toEqual(Array.from(c));
    expect(decodeCoords(encodeCoords(new Uint32Array(0))).length).toBe(0);
  });

  test('scrolls round trip with and without coords', () => {
    const b = mixed();
    const d = decodeScrolls(encodeScrolls(b));
    expect(d.n).toBe(4);
    for (let i = 0; i < 4; i++) expect(row(d, i)).toEqual(row(b, i));
    const nc = decodeScrolls(encodeScrolls({ ...b, coords: undefined }));
    expect(nc.coords).toBeUndefined();
    expect(row(nc, 3)).toEqual({ ...row(b, 3), coords: undefined });
  });

  test('shards round trip and schema detection', () => {
    const s = new Uint32Array([0, 7, 0xffffffff]);
    expect(Array.from(decodeShards(encodeShards(s)))).toEqual([0, 7, 0xffffffff]);
    expect(decodeBody(encodeShards(s)).schema).toBe('shards');
    expect(decodeBody(encodeCoords(coordsFor(2))).schema).toBe('coords');
    expect(decodeBody(encodeScrolls(mixed())).schema).toBe('scrolls');
  });

  test('decoding is zero-copy and works from an unaligned frame', () => {
    const bytes = encodeCoords(coordsFor(10));
    const c = decodeCoords(bytes);
    expect(c.buffer).toBe(bytes.buffer);
    const odd = new Uint8Array(bytes.length + 1);
    odd.set(bytes, 1);
    expect(Array.from(decodeCoords(odd.subarray(1)))).toEqual(Array.from(coordsFor(10)));
  });

  test('multiple record batches are concatenated', () => {
    const a = mixed();
    const t1 = encodeScrolls(a);
    // Build a two-batch stream by hand through arrow-js.
    const rb = [...RecordBatchReader.from(t1)][0];
    const two = tableToIPC(new Table([rb, rb]), 'stream');
    const d = decodeScrolls(two);
    expect(d.n).toBe(8);
    for (let i = 0; i < 8; i++) expect(row(d, i)).toEqual(row(a, i % 4));
  });

  test('rejects garbage, truncation, wrong schema, wrong types, nulls', () => {
    const good = encodeScrolls(mixed());
    expect(frameError(() => decodeBody(new Uint8Array(0)))).toMatch(/truncated|end-of-stream/);
    expect(frameError(() => decodeBody(Buffer.from('not arrow at all, not at all')))).toMatch(/end-of-stream/);
    for (const cut of [8, 100, good.length - 30, good.length - 1]) frameError(() => decodeBody(good.subarray(0, cut)));
    // garbage that happens to end with the EOS marker
    frameError(() => decodeBody(Buffer.concat([Buffer.from('garbage!garbage!'), Buffer.from([255, 255, 255, 255, 0, 0, 0, 0])])));
    // wrong field name / extra field
    const other = tableToIPC(new Table({ x: vectorFromArray([1, 2, 3], new Int32()) }), 'stream');
    expect(frameError(() => decodeBody(other))).toMatch(/match no body schema/);
    // right name, wrong type: coords as int32 list of 9
    const i32 = new FixedSizeList(9, new Field('item', new Int32()));
    const bad = makeData({ type: i32, length: 1, child: makeData({ type: new Int32(), length: 9, data: new Int32Array(9) }) });
    const sch = new Schema([new Field('coords', i32)]);
    const badIpc = tableToIPC(new Table([new RecordBatch(sch, makeData({ type: new Struct(sch.fields), length: 1, children: [bad] }))]), 'stream');
    expect(frameError(() => decodeCoords(badIpc))).toMatch(/type/);
    // value as utf8 instead of binary
    const utf = tableToIPC(new Table({ kind: vectorFromArray([1]), dtype: vectorFromArray([0]), shape: vectorFromArray([[1]]), value: vectorFromArray(['a'], new Utf8()) }), 'stream');
    frameError(() => decodeScrolls(utf));
    // nulls in a shard column
    const withNull = tableToIPC(new Table({ shard: vectorFromArray([1, null, 3], new Uint32()) }), 'stream');
    expect(frameError(() => decodeShards(withNull))).toMatch(/null/);
    // asking for one schema and getting another
    expect(frameError(() => decodeCoords(good))).toMatch(/expected an Arrow coords body/);
  });

  test('rejects offsets that point outside the data', () => {
    const b = bytesBatch(coordsFor(3), 3, 4);
    const bytes = Buffer.from(encodeScrolls(b));
    // Corrupt the value offsets in place: find the [0,4,8,12] int32 run and make it decrease.
    const pat = Buffer.from(new Int32Array([0, 4, 8, 12]).buffer);
    const at = bytes.indexOf(pat);
    expect(at).toBeGreaterThan(0);
    bytes.writeInt32LE(2, at + 8);
    expect(frameError(() => decodeScrolls(bytes))).toMatch(/offsets decrease/);
    bytes.writeInt32LE(8, at + 8);
    bytes.writeInt32LE(1 << 20, at + 12);
    expect(frameError(() => decodeScrolls(bytes))).toMatch(/outside/);
  });

  // Size, not speed, is under test here (timing lives in test/bench): 1M rows round-trip intact.
  test('1M rows of 16-byte values round-trip', () => {
    const n = 1_000_000;
    const b = bytesBatch(coordsFor(n), n, 16);
    const d = decodeScrolls(encodeScrolls(b));
    expect(d.n).toBe(n);
    expect(Buffer.compare(Buffer.from(d.values.buffer, d.values.byteOffset, d.values.byteLength), Buffer.from(b.values.buffer))).toBe(0);
    expect(row(d, n - 1)).toEqual(row(b, n - 1));
    const c = decodeCoords(encodeCoords(b.coords!));
    expect(c.length).toBe(9 * n);
    expect(Buffer.compare(Buffer.from(c.buffer, c.byteOffset, c.byteLength),
      Buffer.from(b.coords!.buffer, b.coords!.byteOffset, b.coords!.byteLength))).toBe(0);
  });
});

const pyIt = existsSync(PY) ? test : test.skip;
if (!existsSync(PY)) console.warn(`skipping pyarrow interop: ${PY} not found`);

describe('pyarrow interop', () => {
  pyIt('python → node: FixedSizeListArray.from_arrays and BinaryArray.from_buffers', () => {
    const script = `
import sys, numpy as np, pyarrow as pa
n = 5
coords = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(n * 9, dtype=np.uint32)), 9)
vals = [b'abc', b'', b'x' * 16, 'h\\u00e9llo'.encode(), np.arange(6, dtype=np.float32).tobytes()]
offs = np.cumsum([0] + [len(v) for v in vals]).astype(np.int32)
value = pa.BinaryArray.from_buffers(pa.binary(), n, [None, pa.py_buffer(offs.tobytes()), pa.py_buffer(b''.join(vals))])
t = pa.table({'coords': coords, 'kind': pa.array([2, 2, 2, 1, 3], pa.uint8()), 'dtype': pa.array([0, 0, 0, 0, 1], pa.uint8()),
              'shape': pa.array([[], [], [], [], [2, 3]], pa.list_(pa.uint32())), 'value': value})
sink = pa.BufferOutputStream()
with pa.ipc.new_stream(sink, t.schema) as w:
    w.write_table(t)
sys.stdout.buffer.write(sink.getvalue().to_pybytes())`;
    const out = execFileSync(PY, ['-c', script]);
    const d = decodeScrolls(out);
    expect(d.n).toBe(5);
    expect(Array.from(d.coords!.subarray(9, 18))).toEqual([9, 10, 11, 12, 13, 14, 15, 16, 17]);
    expect(row(d, 3).value).toBe(Buffer.from('héllo').toString('hex'));
    expect(row(d, 4).shape).toEqual([2, 3]);
    expect(Buffer.from(d.values.subarray(d.valueOffsets[4], d.valueOffsets[5])))
      .toEqual(Buffer.from(new Float32Array([0, 1, 2, 3, 4, 5]).buffer));
  });

  pyIt('node → python: scrolls, coords and shards read back with the protocol types', () => {
    const script = `
import sys, json, pyarrow as pa
out = []
for blob in sys.stdin.buffer.read().split(b'--SPLIT--'):
    t = pa.ipc.open_stream(blob).read_all()
    out.append({'schema': [f'{f.name}:{f.type}' for f in t.schema], 'rows': t.to_pylist() if t.num_rows < 10 else t.num_rows})
print(json.dumps(out, default=lambda b: b.hex()))`;
    const input = Buffer.concat([encodeScrolls(mixed()), Buffer.from('--SPLIT--'), encodeCoords(coordsFor(2)),
      Buffer.from('--SPLIT--'), encodeShards(new Uint32Array([3, 4]))]);
    const res = JSON.parse(execFileSync(PY, ['-c', script], { input }).toString());
    expect(res[0].schema).toEqual(['coords:fixed_size_list<item: uint32 not null>[9]', 'kind:uint8', 'dtype:uint8',
      'shape:list<item: uint32 not null>', 'value:binary']);
    expect(res[0].rows[2]).toEqual({ coords: [1, 1, 1, 1, 1, 1, 1, 1, 3], kind: 1, dtype: 0, shape: [], value: Buffer.from('héllo').toString('hex') });
    expect(res[0].rows[3].shape).toEqual([2, 3]);
    expect(res[1].rows[1]).toEqual({ coords: [1, 1, 1, 1, 1, 1, 1, 1, 2] });
    expect(res[2]).toEqual({ schema: ['shard:uint32'], rows: [{ shard: 3 }, { shard: 4 }] });
  });
});

describe('Arrow schemas come from protocol.json', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const schema = require('../../../protocol/protocol.json') as { arrow: Record<string, { fields: { name: string; type: string }[] }> };
  it('the encoder writes exactly the fields and types the JSON declares', () => {
    const { RecordBatchReader } = require('apache-arrow') as typeof import('apache-arrow');
    const { encodeCoords: ec, encodeShards: es, encodeScrolls: esc } = require('../../../bridge/arrow') as typeof import('../../../bridge/arrow');
    const { typeSpelling } = require('../../../bridge/arrow_schema') as typeof import('../../../bridge/arrow_schema');
    const batch = { n: 1, coords: new Uint32Array(9), kind: new Uint8Array([1]), dtype: new Uint8Array([0]), shapeOffsets: new Int32Array([0, 0]), shapeValues: new Uint32Array(0), valueOffsets: new Int32Array([0, 1]), values: new Uint8Array([65]) };
    const streams: [string, Uint8Array][] = [['coords', ec(new Uint32Array(9))], ['shards', es(new Uint32Array([3]))], ['scrolls', esc(batch)]];
    for (const [body, bytes] of streams) {
      const fields = RecordBatchReader.from(bytes).open().schema.fields.map((f) => [f.name, typeSpelling(f.type)]);
      expect(fields).toEqual(schema.arrow[body].fields.map((f) => [f.name, f.type]));
    }
  });
});
