import { decodeLayout, packOffsets, toLayout } from '../../../bridge/tensor_layout';
import { toOpInput, okReply } from '../../../bridge/frames';
import { tensorOutput } from '../../../engine/tensors';

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};

describe('raw tensor layout', () => {
  const body = new Uint8Array(64 + 16);
  new Float32Array(body.buffer, 0, 6).set([1, 2, 3, 4, 5, 6]);
  new Int32Array(body.buffer, 64, 4).set([7, 8, 9, 10]);
  const params = { tensors: ['x', 'ids'], layout: [['float32', [2, 3], 0], ['int32', [4], 64]] };

  it('decodes named views of the body, no copies', () => {
    const m = decodeLayout('CEXPERTS', params, body);
    expect(m.get('x')!.shape).toEqual([2, 3]);
    expect(m.get('x')!.bytes.buffer).toBe(body.buffer);
    expect(Array.from(new Int32Array(m.get('ids')!.bytes.slice().buffer))).toEqual([7, 8, 9, 10]);
  });

  it.each([
    ['past the end', { tensors: ['x'], layout: [['float32', [100], 0]] }, 'E_FRAME'],
    ['misaligned', { tensors: ['x'], layout: [['float32', [2], 2]] }, 'E_FRAME'],
    ['overlapping', { tensors: ['a', 'b'], layout: [['float32', [4], 0], ['float32', [4], 8]] }, 'E_FRAME'],
    ['negative offset', { tensors: ['x'], layout: [['float32', [1], -4]] }, 'E_FRAME'],
    ['count mismatch', { tensors: ['x', 'y'], layout: [['float32', [1], 0]] }, 'E_FRAME'],
    ['malformed entry', { tensors: ['x'], layout: [{ dtype: 'float32' }] }, 'E_FRAME'],
    ['unknown dtype', { tensors: ['x'], layout: [['float64', [1], 0]] }, 'E_DTYPE'],
    ['no dtype', { tensors: ['x'], layout: [['none', [1], 0]] }, 'E_DTYPE'],
    ['bad shape', { tensors: ['x'], layout: [['float32', [-1], 0]] }, 'E_SHAPE'],
    ['names not strings', { tensors: [3], layout: [['float32', [1], 0]] }, 'E_PARAM'],
    ['a name twice', { tensors: ['x', 'x'], layout: [['float32', [1], 0], ['float32', [1], 4]] }, 'E_PARAM'],
  ])('refuses %s', (_why, p, want) => {
    expect(code(() => decodeLayout('CATTEND', p as Record<string, unknown>, body))).toBe(want);
  });

  it('is chosen by params.layout in a request, and answered in kind', () => {
    const input = toOpInput({ id: 1, op: 'CEXPERTS', params: { mode: 'run', ...params }, bodies: [body] });
    expect(input.tensors?.size).toBe(2);
    const out = tensorOutput({ mode: 'run' }, { y: { shape: [3], data: new Float32Array([1, 2, 3]) }, n: { shape: [1], data: new BigInt64Array([5n]) } });
    const [head, reply] = okReply(1, out, true);
    const h = JSON.parse(Buffer.from(head).toString());
    expect(h.result.layout).toEqual([['float32', [3], 0], ['int64', [1], 16]]); // int64 aligned to 8
    expect(Array.from(new Float32Array(reply.slice(0, 12).buffer))).toEqual([1, 2, 3]);
    expect(new BigInt64Array(reply.slice(16, 24).buffer)[0]).toBe(5n);
  });

  it('sends rows already aligned in one buffer as they are', () => {
    const data = new Float32Array(8);
    const out = tensorOutput({}, { a: { shape: [4], data: data.subarray(0, 4) }, b: { shape: [4], data: data.subarray(4) } });
    expect(toLayout(out).raw!.buffer).toBe(data.buffer);
  });

  it('packs offsets to each alignment', () => {
    expect(packOffsets([3, 8, 4], [1, 8, 4])).toEqual({ offsets: [0, 8, 16], total: 20 });
  });
});
