import { decodeBody, encodeScrolls } from '../../../bridge/arrow';
import { frameRows, layOutTensorFrame } from '../../../bridge/tensor_frame';
import { tensorBatch } from '../../../engine/tensors';

/** Deterministic float rows (no Math.random: a failure must reproduce). */
function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(seed * 7919 + i) * 1000;
  return a;
}

describe('layOutTensorFrame', () => {
  it.each([
    [[[2, 3, 4]]],
    [[[1, 16, 33, 8], [1, 16, 33]]],
    [[[5], [7, 3], [1]]],
  ])('gives the same bytes as encoding the finished tensors (%j)', async (shapes) => {
    const rows = shapes.map((shape) => ({ shape }));
    const laid = await layOutTensorFrame(rows);
    expect(laid).not.toBeNull();
    const views = frameRows(laid!.buffer, laid!.valuesAt, rows);
    const data = shapes.map((s, i) => filled(s.reduce((a, d) => a * d, 1), i + 1));
    views.forEach((v, i) => v.set(data[i]));
    const frame = new Uint8Array(laid!.buffer, 0, laid!.length);
    const expected = encodeScrolls(tensorBatch(shapes.map((shape, i) => ({ shape, data: data[i] }))));
    expect(Buffer.from(frame).equals(Buffer.from(expected))).toBe(true);
    const body = decodeBody(frame);
    expect(body.schema).toBe('scrolls');
    if (body.schema !== 'scrolls') return;
    const got = new Float32Array(body.scrolls.values.buffer, body.scrolls.values.byteOffset + body.scrolls.valueOffsets[shapes.length - 1], data[shapes.length - 1].length);
    expect(Array.from(got)).toEqual(Array.from(data[shapes.length - 1]));
  });

  it('returns null for nothing to lay out', async () => {
    await expect(layOutTensorFrame([])).resolves.toBeNull();
    await expect(layOutTensorFrame([{ shape: [0, 4] }])).resolves.toBeNull();
  });
});

describe('tensorBatch', () => {
  it('uses tensors lying back to back in one buffer as they are, and copies others', () => {
    const buf = new ArrayBuffer(40);
    const a = new Float32Array(buf, 0, 6);
    const b = new Float32Array(buf, 24, 4);
    a.fill(1);
    b.fill(2);
    const joined = tensorBatch([{ shape: [6], data: a }, { shape: [4], data: b }]);
    expect(joined.values.buffer).toBe(buf);
    const apart = tensorBatch([{ shape: [4], data: b }, { shape: [6], data: a }]);
    expect(apart.values.buffer).not.toBe(buf);
    expect(Array.from(new Float32Array(apart.values.buffer, apart.values.byteOffset, 10))).toEqual([2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
  });
});
