import schema from '../../../protocol/protocol.json';
import { DType, Kind } from '../../../engine/types';
import { DTYPE_SIZES, dtypeCode, kindCode } from '../../../engine/values';

// engine/types.ts restates kind and dtype codes as const enums (inlined into hot loops);
// protocol.json is their source. This fails when they drift apart.
test('Kind and DType agree with protocol.json', () => {
  expect({ missing: Kind.Missing, text: Kind.Text, bytes: Kind.Bytes, tensor: Kind.Tensor }).toEqual(schema.kinds);
  const dtypes = { none: DType.None, float32: DType.Float32, float16: DType.Float16, bfloat16: DType.BFloat16, int32: DType.Int32, int64: DType.Int64 };
  expect(dtypes).toEqual(Object.fromEntries(Object.entries(schema.dtypes).map(([k, v]) => [k, v.code])));
  for (const [name, d] of Object.entries(schema.dtypes)) {
    expect([dtypeCode(name), DTYPE_SIZES[d.code]]).toEqual([d.code, d.size]);
  }
  expect(kindCode('tensor')).toBe(Kind.Tensor);
});
