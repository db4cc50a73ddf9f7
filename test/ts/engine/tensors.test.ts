import { DType } from '../../../engine/types';
import { floatInput, intInput, namedTensors, tensorBatch, tensorOutput, expectShape } from '../../../engine/tensors';
import { code } from './helpers';

const input = (names: unknown, rows: { dtype: DType; shape: number[]; bytes: Uint8Array }[]) => {
  const b = tensorBatch([]);
  const shapeOffsets = new Int32Array(rows.length + 1);
  const valueOffsets = new Int32Array(rows.length + 1);
  rows.forEach((r, i) => {
    shapeOffsets[i + 1] = shapeOffsets[i] + r.shape.length;
    valueOffsets[i + 1] = valueOffsets[i] + r.bytes.length;
  });
  const shapeValues = new Uint32Array(shapeOffsets[rows.length]);
  const values = new Uint8Array(valueOffsets[rows.length]);
  rows.forEach((r, i) => {
    shapeValues.set(r.shape, shapeOffsets[i]);
    values.set(r.bytes, valueOffsets[i]);
  });
  return {
    params: { tensors: names },
    scrolls: { ...b, n: rows.length, kind: new Uint8Array(rows.length).fill(3), dtype: Uint8Array.from(rows.map((r) => r.dtype)), shapeOffsets, shapeValues, valueOffsets, values },
  };
};
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('named tensors', () => {
  test('float16, bfloat16 and unaligned float32 rows read as float32', () => {
    const half = Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x0001]); // 1, -2, ~0.3333, smallest subnormal
    const bf = Uint16Array.from([0x3f80, 0xc040]); // 1, -3
    const f = Float32Array.from([0.5, 7]);
    const odd = { dtype: DType.BFloat16, shape: [1], bytes: bytesOf(Uint16Array.from([0x4000])) }; // shifts f by 2 bytes
    const named = namedTensors('T', input(['h', 'b', 'x', 'f'], [
      { dtype: DType.Float16, shape: [4], bytes: bytesOf(half) },
      { dtype: DType.BFloat16, shape: [2], bytes: bytesOf(bf) },
      odd,
      { dtype: DType.Float32, shape: [2], bytes: bytesOf(f) },
    ]));
    const h = floatInput('T', named, 'h').data;
    expect(Array.from(h.slice(0, 2))).toEqual([1, -2]);
    expect(h[2]).toBeCloseTo(1 / 3, 3);
    expect(h[3]).toBeCloseTo(2 ** -24, 30);
    expect(Array.from(floatInput('T', named, 'b').data)).toEqual([1, -3]);
    expect(Array.from(floatInput('T', named, 'x').data)).toEqual([2]);
    expect(Array.from(floatInput('T', named, 'f').data)).toEqual([0.5, 7]);
  });

  test('int64 narrows to int32, out of range is E_PARAM', () => {
    const ok = namedTensors('T', input(['i'], [{ dtype: DType.Int64, shape: [2], bytes: bytesOf(BigInt64Array.from([5n, -7n])) }]));
    expect(Array.from(intInput('T', ok, 'i').data)).toEqual([5, -7]);
    const big = namedTensors('T', input(['i'], [{ dtype: DType.Int64, shape: [1], bytes: bytesOf(BigInt64Array.from([1n << 40n])) }]));
    expect(code(() => intInput('T', big, 'i'))).toBe('E_PARAM');
  });

  test('bad names, counts, kinds and dtypes are typed errors', () => {
    const row = { dtype: DType.Float32, shape: [1], bytes: bytesOf(Float32Array.from([1])) };
    expect(code(() => namedTensors('T', input('q', [row])))).toBe('E_PARAM');
    expect(code(() => namedTensors('T', input(['q', 'k'], [row])))).toBe('E_PARAM');
    expect(code(() => namedTensors('T', input(['q', 'q'], [row, row])))).toBe('E_PARAM');
    expect(code(() => namedTensors('T', { params: { tensors: ['q'] } }))).toBe('E_PARAM');
    const named = namedTensors('T', input(['q'], [row]));
    expect(code(() => floatInput('T', named, 'k'))).toBe('E_PARAM');
    expect(code(() => intInput('T', named, 'q'))).toBe('E_DTYPE');
    expect(code(() => expectShape('T', 'q', { shape: [1] }, [1, null]))).toBe('E_SHAPE');
    expect(() => expectShape('T', 'q', { shape: [1, 5] }, [1, null])).not.toThrow();
  });

  test('tensorOutput names its rows and round-trips through namedTensors', () => {
    const out = tensorOutput({ n: 1 }, { o: { shape: [2, 1], data: Float32Array.from([1, 2]) }, idx: { shape: [1], data: Int32Array.from([9]) } });
    expect(out.result).toEqual({ n: 1, tensors: ['o', 'idx'] });
    const back = namedTensors('T', { params: { tensors: out.result.tensors }, scrolls: out.scrolls });
    expect(Array.from(floatInput('T', back, 'o').data)).toEqual([1, 2]);
    expect(Array.from(intInput('T', back, 'idx').data)).toEqual([9]);
  });
});
