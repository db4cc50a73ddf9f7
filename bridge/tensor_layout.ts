/**
 * The raw form of named tensors (protocol.json → tensors.layout): `params.layout` lists
 * `[dtype, shape, offset]` per name of `params.tensors`, and one raw body frame holds the
 * bytes. No Arrow on either side: a one-token expert call's 8 KB body cost ~0.2 ms to
 * decode and ~0.25 ms to encode as an Arrow stream here, more than the bytes' transfer.
 * A request in this form gets its reply tensors in it too.
 */
import { VtpuError } from '../engine/errors';
import { DType, type OpOutput, type RawTensor } from '../engine/types';
import { DTYPE_SIZES, MAX_NDIM, dtypeCode, dtypeName } from '../engine/values';

/** One entry of `layout`: dtype name, shape, byte offset in the body. */
export type LayoutEntry = [string, number[], number];

/** True when a request asks for the raw form (`params.layout` present). */
export function wantsLayout(params: Record<string, unknown>): boolean {
  return params.layout !== undefined;
}

function frame(reason: string): VtpuError {
  return new VtpuError('E_FRAME', `tensor layout: ${reason}`);
}

/**
 * The named tensors of a raw-form request, as views of `body`. E_PARAM for names that are
 * not distinct non-empty strings; E_DTYPE for an unknown dtype; E_FRAME for a layout that
 * does not match the names, a misaligned or overlapping tensor, or one past the body's end.
 */
export function decodeLayout(op: string, params: Record<string, unknown>, body: Uint8Array | undefined): Map<string, RawTensor> {
  const names = params.tensors;
  const layout = params.layout;
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n === '')) {
    throw new VtpuError('E_PARAM', `${op}: tensors must be a list of tensor names`);
  }
  if (!Array.isArray(layout) || layout.length !== names.length) {
    throw frame(`${op}: layout must list [dtype, shape, offset] for each of the ${names.length} tensor(s)`);
  }
  const bytes = body ?? new Uint8Array(0);
  const out = new Map<string, RawTensor>();
  const spans: [number, number][] = [];
  layout.forEach((e: unknown, i) => {
    const name = names[i] as string;
    if (!Array.isArray(e) || e.length !== 3 || !Array.isArray(e[1])) throw frame(`${op}: entry ${i} (${name}) must be [dtype, shape, offset]`);
    const [dt, shape, offset] = e as [unknown, unknown[], unknown];
    const code = dtypeCode(dt);
    if (code === DType.None) throw new VtpuError('E_DTYPE', `${op}: ${name} needs a tensor dtype`);
    if (shape.length > MAX_NDIM || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0 || d > 0xffffffff)) {
      throw new VtpuError('E_SHAPE', `${op}: ${name} has a bad shape ${JSON.stringify(shape).slice(0, 80)}`);
    }
    const size = DTYPE_SIZES[code];
    const n = (shape as number[]).reduce((a, d) => a * d, size);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0 || offset % size !== 0) {
      throw frame(`${op}: ${name} offset ${JSON.stringify(offset)} must be a non-negative multiple of ${size}`);
    }
    if (offset + n > bytes.length) throw frame(`${op}: ${name} needs bytes [${offset}, ${offset + n}) but the body has ${bytes.length}`);
    if (out.has(name)) throw new VtpuError('E_PARAM', `${op}: tensor ${name} named twice`);
    spans.push([offset, offset + n]);
    out.set(name, { dtype: code, shape: shape as number[], bytes: bytes.subarray(offset, offset + n) });
  });
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) if (spans[i][0] < spans[i - 1][1]) throw frame(`${op}: tensors overlap at byte ${spans[i][0]}`);
  return out;
}

/** Byte offsets of rows of `sizes` bytes laid back to back, each aligned to its `align`. */
export function packOffsets(sizes: readonly number[], aligns: readonly number[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let at = 0;
  sizes.forEach((s, i) => {
    at = Math.ceil(at / aligns[i]) * aligns[i];
    offsets.push(at);
    at += s;
  });
  return { offsets, total: at };
}

/**
 * A tensor reply (`result.tensors` with a scrolls body of tensor rows) in the raw form:
 * `result.layout` and one body. Rows already aligned in one buffer are sent as they are.
 * Other replies are returned unchanged.
 */
export function toLayout(out: OpOutput): OpOutput {
  const b = out.scrolls;
  const names = out.result.tensors;
  if (!b || b.coords || !Array.isArray(names) || names.length !== b.n) return out;
  const sizes: number[] = [], aligns: number[] = [];
  for (let i = 0; i < b.n; i++) {
    sizes.push(b.valueOffsets[i + 1] - b.valueOffsets[i]);
    aligns.push(Math.max(1, DTYPE_SIZES[b.dtype[i]] ?? 1));
  }
  const { offsets, total } = packOffsets(sizes, aligns);
  const inPlace = offsets.every((o, i) => o === b.valueOffsets[i]) && total === b.valueOffsets[b.n];
  let body = b.values.subarray(0, total);
  if (!inPlace) {
    body = new Uint8Array(total);
    for (let i = 0; i < b.n; i++) body.set(b.values.subarray(b.valueOffsets[i], b.valueOffsets[i + 1]), offsets[i]);
  }
  const layout: LayoutEntry[] = offsets.map((o, i) => [dtypeName(b.dtype[i]), Array.from(b.shapeValues.subarray(b.shapeOffsets[i], b.shapeOffsets[i + 1])), o]);
  const { scrolls: _s, ...rest } = out;
  return { ...rest, result: { ...out.result, layout }, raw: body };
}
