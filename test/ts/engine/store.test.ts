import { Store } from '../../../engine/store/store';
import { validateBatch, validateScroll } from '../../../engine/values';
import { parseCoord } from '../../../engine/coords';
import { Kind, ScrollBatch } from '../../../engine/types';
import { code, dec, enc, stringBatch } from './helpers';

/** A bytes batch: row i at coords rows[i] holding text vals[i]. */
const batchOf = (rows: number[][], vals: string[]) => stringBatch(rows, vals, Kind.Bytes);

const c = (i: number, j = 0): number[] => [1, 0, 0, 0, 0, 0, j, 0, i];

describe('values', () => {
  test('validateScroll error codes', () => {
    expect(() => validateScroll(Kind.Tensor, 1, [2, 3], 24)).not.toThrow();
    expect(code(() => validateScroll(9, 0, [], 0))).toBe('E_DTYPE');
    expect(code(() => validateScroll(Kind.Tensor, 9, [1], 4))).toBe('E_DTYPE');
    expect(code(() => validateScroll(Kind.Bytes, 1, [], 4))).toBe('E_DTYPE');
    expect(code(() => validateScroll(Kind.Text, 0, [1], 4))).toBe('E_SHAPE');
    expect(code(() => validateScroll(Kind.Tensor, 1, [2, 3], 20))).toBe('E_SHAPE');
    expect(code(() => validateScroll(Kind.Tensor, 1, [-1], 4))).toBe('E_SHAPE');
    expect(code(() => validateScroll(Kind.Tensor, 1, [1.5], 4))).toBe('E_SHAPE');
  });

  test('validateBatch checks offsets', () => {
    const b = batchOf([c(1), c(2)], ['ab', 'cd']);
    expect(() => validateBatch(b, true)).not.toThrow();
    expect(code(() => validateBatch({ ...b, valueOffsets: new Int32Array([0, 3, 2]) }))).toBe('E_SHAPE');
    expect(code(() => validateBatch({ ...b, valueOffsets: new Int32Array([0, 2, 9]) }))).toBe('E_SHAPE');
    expect(code(() => validateBatch({ ...b, valueOffsets: new Int32Array([0, 2]) }))).toBe('E_SHAPE');
    expect(code(() => validateBatch({ ...b, coords: new Uint32Array(10) }))).toBe('E_SHAPE');
    expect(code(() => validateBatch({ ...b, coords: undefined }, true))).toBe('E_PARAM');
  });
});

describe('store', () => {
  test('put, get, overwrite (shorter in place, longer appended), delete', () => {
    const s = new Store();
    const k = new Uint32Array(c(5));
    s.put(k, 0, { kind: Kind.Text, dtype: 0, shape: [], bytes: enc.encode('hello world') });
    expect(dec.decode(s.get(k)!.bytes)).toBe('hello world');
    s.put(k, 0, { kind: Kind.Text, dtype: 0, shape: [], bytes: enc.encode('hi') });
    expect(dec.decode(s.get(k)!.bytes)).toBe('hi');
    expect(s.stats().garbageBytes).toBe(9);
    s.put(k, 0, { kind: Kind.Tensor, dtype: 1, shape: [2, 2], bytes: new Uint8Array(16).fill(7) });
    const t = s.get(k)!;
    expect([t.kind, t.dtype, t.shape, t.bytes.length]).toEqual([Kind.Tensor, 1, [2, 2], 16]);
    expect(s.size).toBe(1);
    expect(s.delete(k)).toBe(true);
    expect(s.delete(k)).toBe(false);
    expect(s.get(k)).toBeUndefined();
    expect(s.size).toBe(0);
  });

  test('getBatch aligns rows and marks missing with kind 0', () => {
    const s = new Store();
    s.putBatch(batchOf([c(1), c(2), c(3)], ['a', 'bb', 'ccc']));
    const q = new Uint32Array([...c(3), ...c(9), ...c(1)]);
    const { batch, found } = s.getBatch(q);
    expect(found).toBe(2);
    expect(Array.from(batch.kind)).toEqual([Kind.Bytes, 0, Kind.Bytes]);
    expect(Array.from(batch.valueOffsets)).toEqual([0, 3, 3, 4]);
    expect(dec.decode(batch.values)).toBe('ccca');
    expect(batch.coords).toBeUndefined();
  });

  test('a batch with one bad row writes nothing', () => {
    const s = new Store();
    s.putBatch(batchOf([c(1)], ['keep']));
    const bad = batchOf([c(1), c(2), c(3)], ['x', 'y', 'z']);
    bad.dtype[2] = 3;
    expect(code(() => s.putBatch(bad))).toBe('E_DTYPE');
    expect(s.size).toBe(1);
    expect(dec.decode(s.get(new Uint32Array(c(1)))!.bytes)).toBe('keep');
    expect(code(() => s.putBatch({ ...batchOf([c(1)], ['q']), coords: undefined }))).toBe('E_PARAM');
  });

  test('limits are E_LIMIT', () => {
    const s = new Store({ maxBatch: 2, maxValueBytes: 4 });
    expect(code(() => s.putBatch(batchOf([c(1), c(2), c(3)], ['a', 'b', 'c'])))).toBe('E_LIMIT');
    expect(code(() => s.putBatch(batchOf([c(1)], ['12345'])))).toBe('E_LIMIT');
    expect(code(() => s.getBatch(new Uint32Array(27)))).toBe('E_LIMIT');
    expect(s.size).toBe(0);
  });

  test('duplicates in one batch: last wins', () => {
    const s = new Store();
    s.putBatch(batchOf([c(1), c(1)], ['first', 'second']));
    expect(s.size).toBe(1);
    expect(dec.decode(s.get(new Uint32Array(c(1)))!.bytes)).toBe('second');
  });

  test('many inserts, deletes and re-inserts survive rehash and compaction', () => {
    const s = new Store({ compactMinBytes: 0 });
    const N = 5000;
    const rows = Array.from({ length: N }, (_, i) => c(i, i % 3));
    s.putBatch(batchOf(rows, rows.map((_, i) => `value-${i}`)));
    const del = new Uint32Array(rows.filter((_, i) => i % 4 !== 0).flat());
    expect(s.deleteBatch(del)).toBe(N - N / 4);
    // Three quarters deleted: garbage passed half the heap, so it compacted.
    expect(s.stats().garbageBytes).toBe(0);
    expect(s.stats().heapBytes).toBeLessThan(N * 10 / 2);
    expect(s.size).toBe(N / 4);
    s.putBatch(batchOf([c(1, 1)], ['back']));
    for (let i = 0; i < N; i++) {
      const got = s.get(new Uint32Array(rows[i]));
      if (i === 1) expect(dec.decode(got!.bytes)).toBe('back');
      else if (i % 4 === 0) expect(dec.decode(got!.bytes)).toBe(`value-${i}`);
      else expect(got).toBeUndefined();
    }
    s.clear();
    expect(s.size).toBe(0);
    expect(s.get(new Uint32Array(rows[0]))).toBeUndefined();
  });

  test('coordinates that differ in one word only are distinct', () => {
    const s = new Store();
    const rows = [];
    for (let d = 0; d < 9; d++) {
      const r = [0, 0, 0, 0, 0, 0, 0, 0, 0];
      r[d] = 0xffffffff;
      rows.push(r);
    }
    s.putBatch(batchOf(rows, rows.map((_, d) => `d${d}`)));
    expect(s.size).toBe(9);
    rows.forEach((r, d) => expect(dec.decode(s.get(new Uint32Array(r))!.bytes)).toBe(`d${d}`));
    expect(s.get(parseCoord('0.0.0/0.0.0/0.0.0'))).toBeUndefined();
  });
});
