/**
 * Named tensors in and out of compute instructions (CATTEND, CMOE, CNEAREST …). A request
 * names its tensors in `params.tensors` (a list of names) and sends one Arrow "scrolls"
 * body (no coords) with one tensor row per name, in that order; a reply does the same
 * with `result.tensors`. Inputs may be float32/float16/bfloat16 (read as float32) or
 * int32/int64 (read as int32 where the op wants indices); replies are float32, int32 or
 * int64 (coordinates and exact integer values, e.g. CNEAREST).
 */
import { DType, Kind, OpInput, OpOutput, RawTensor, ScrollBatch } from './types';
import { VtpuError } from './errors';
import { dtypeName, validateScroll } from './values';

/** E_SHAPE / E_DTYPE unless the shape matches the bytes: a forged shape must not size a typed array (found by fuzzing). */
function elements(op: string, name: string, t: RawTensor): number {
  try {
    validateScroll(Kind.Tensor, t.dtype, t.shape, t.bytes.length);
  } catch (e) {
    throw new VtpuError((e as VtpuError).code ?? 'E_SHAPE', `${op}: ${name}: ${(e as Error).message}`);
  }
  return t.shape.reduce((a, d) => a * d, 1);
}

/** A dense tensor in engine memory, C order. */
export interface Tensor<A extends Float32Array | Int32Array = Float32Array | Int32Array> {
  shape: number[];
  data: A;
}

export type { RawTensor };

/**
 * The named tensor rows of a request, by name. E_PARAM when `params.tensors` is not a
 * list of distinct non-empty strings or the body's row count differs; E_DTYPE for a
 * non-tensor row.
 */
export function namedTensors(op: string, input: OpInput): Map<string, RawTensor> {
  const names = input.params.tensors;
  if (input.tensors) return input.tensors; // the raw form, checked by the bridge as it decoded it
  const out = new Map<string, RawTensor>();
  if (names === undefined) return out;
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n === '')) {
    throw new VtpuError('E_PARAM', `${op}: tensors must be a list of tensor names`);
  }
  const b = input.scrolls;
  if (b === undefined) throw new VtpuError('E_PARAM', `${op}: tensors [${names.join(', ')}] named but no scrolls body sent`);
  if (b.n !== names.length) throw new VtpuError('E_PARAM', `${op}: ${names.length} tensor name(s) but ${b.n} body row(s)`);
  for (let i = 0; i < b.n; i++) {
    const name = names[i] as string;
    if (out.has(name)) throw new VtpuError('E_PARAM', `${op}: tensor ${name} named twice`);
    if (b.kind[i] !== Kind.Tensor) throw new VtpuError('E_DTYPE', `${op}: ${name} must be a tensor row`);
    const shape = Array.from(b.shapeValues.subarray(b.shapeOffsets[i], b.shapeOffsets[i + 1]));
    out.set(name, { dtype: b.dtype[i] as DType, shape, bytes: b.values.subarray(b.valueOffsets[i], b.valueOffsets[i + 1]) });
  }
  return out;
}

/** Float32 value of an IEEE half. */
function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** An aligned copy when `bytes` cannot be viewed in place as `width`-byte elements. */
function aligned(bytes: Uint8Array, width: number): Uint8Array {
  return bytes.byteOffset % width === 0 ? bytes : bytes.slice();
}

/** A float row as Float32Array: float32 viewed in place, float16/bfloat16 widened. */
export function toFloat32(op: string, name: string, t: RawTensor): Tensor<Float32Array> {
  const n = elements(op, name, t);
  if (t.dtype === DType.Float32) {
    const b = aligned(t.bytes, 4);
    return { shape: t.shape, data: new Float32Array(b.buffer, b.byteOffset, n) };
  }
  if (t.dtype === DType.Float16 || t.dtype === DType.BFloat16) {
    const b = aligned(t.bytes, 2);
    const h = new Uint16Array(b.buffer, b.byteOffset, n);
    const out = new Float32Array(n);
    if (t.dtype === DType.BFloat16) {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = h[i] << 16;
    } else {
      for (let i = 0; i < n; i++) out[i] = halfToFloat(h[i]);
    }
    return { shape: t.shape, data: out };
  }
  throw new VtpuError('E_DTYPE', `${op}: ${name} must be float32, float16 or bfloat16, got ${dtypeName(t.dtype)}`);
}

/** An integer row as Int32Array: int32 in place, int64 narrowed (E_PARAM when a value does not fit). */
export function toInt32(op: string, name: string, t: RawTensor): Tensor<Int32Array> {
  const n = elements(op, name, t);
  if (t.dtype === DType.Int32) {
    const b = aligned(t.bytes, 4);
    return { shape: t.shape, data: new Int32Array(b.buffer, b.byteOffset, n) };
  }
  if (t.dtype === DType.Int64) {
    const b = aligned(t.bytes, 8);
    const w = new BigInt64Array(b.buffer, b.byteOffset, n);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = w[i];
      if (v > 2147483647n || v < -2147483648n) throw new VtpuError('E_PARAM', `${op}: ${name}[${i}] = ${v} does not fit in int32`);
      out[i] = Number(v);
    }
    return { shape: t.shape, data: out };
  }
  throw new VtpuError('E_DTYPE', `${op}: ${name} must be int32 or int64, got ${dtypeName(t.dtype)}`);
}

/**
 * Checks a tensor's rank and any fixed dims; `dims` holds a number per fixed dim and
 * `null` for a free one. E_SHAPE names the op, tensor and expected shape.
 */
export function expectShape(op: string, name: string, t: { shape: number[] }, dims: (number | null)[]): void {
  const ok = t.shape.length === dims.length && dims.every((d, i) => d === null || t.shape[i] === d);
  if (!ok) {
    const want = dims.map((d) => (d === null ? '?' : String(d))).join(', ');
    throw new VtpuError('E_SHAPE', `${op}: ${name} has shape [${t.shape.join(', ')}], expected [${want}]`);
  }
}

/** A required named float input: E_PARAM when it was not sent. */
export function floatInput(op: string, named: Map<string, RawTensor>, name: string): Tensor<Float32Array> {
  const t = named.get(name);
  if (t === undefined) throw new VtpuError('E_PARAM', `${op}: tensor ${name} is required`);
  return toFloat32(op, name, t);
}

/** A required named integer input: E_PARAM when it was not sent. */
export function intInput(op: string, named: Map<string, RawTensor>, name: string): Tensor<Int32Array> {
  const t = named.get(name);
  if (t === undefined) throw new VtpuError('E_PARAM', `${op}: tensor ${name} is required`);
  return toInt32(op, name, t);
}

/** A reply tensor: float32, int32, or int64 (e.g. coordinates, exact integer distances). */
export interface OutTensor {
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

/** Wire dtype of an output tensor's array. */
function outDType(t: OutTensor): DType {
  if (t.data instanceof Float32Array) return DType.Float32;
  if (t.data instanceof Int32Array) return DType.Int32;
  if (t.data instanceof BigInt64Array) return DType.Int64;
  throw new VtpuError('E_INTERNAL', 'reply tensors must be Float32Array, Int32Array or BigInt64Array');
}

/** A scrolls batch of tensor rows (float32, int32 or int64), no coords. */
export function tensorBatch(tensors: OutTensor[]): ScrollBatch {
  const n = tensors.length;
  const kind = new Uint8Array(n).fill(Kind.Tensor);
  const dtype = new Uint8Array(n);
  const shapeOffsets = new Int32Array(n + 1);
  const valueOffsets = new Int32Array(n + 1);
  let dims = 0;
  let bytes = 0;
  tensors.forEach((t, i) => {
    dtype[i] = outDType(t);
    dims += t.shape.length;
    bytes += t.data.byteLength;
    shapeOffsets[i + 1] = dims;
    valueOffsets[i + 1] = bytes;
  });
  const shapeValues = new Uint32Array(dims);
  const bytesOf = (t: OutTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  // Tensors already back to back in one buffer (one tensor, or views a kernel wrote into
  // one block): that span is the values as it is (a big reply is not copied twice).
  const span = n > 0 && tensors.every((t, i) => t.data.buffer === tensors[0].data.buffer && t.data.byteOffset === tensors[0].data.byteOffset + valueOffsets[i]);
  const values = span ? new Uint8Array(tensors[0].data.buffer, tensors[0].data.byteOffset, bytes) : new Uint8Array(bytes);
  tensors.forEach((t, i) => {
    shapeValues.set(t.shape, shapeOffsets[i]);
    if (!span) values.set(bytesOf(t), valueOffsets[i]);
  });
  return { n, kind, dtype, shapeOffsets, shapeValues, valueOffsets, values };
}

/** An op reply carrying named tensors: `result.tensors` lists the names, the body holds the rows. */
export function tensorOutput(result: Record<string, unknown>, named: Record<string, OutTensor>): OpOutput {
  const names = Object.keys(named);
  return { result: { ...result, tensors: names }, scrolls: tensorBatch(names.map((k) => named[k])) };
}
