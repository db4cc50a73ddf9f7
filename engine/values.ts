/**
 * Value kinds and dtypes (names and codes from protocol/protocol.json) and the checks a
 * scroll or a whole batch must pass before the store accepts it.
 */
import schema from '../protocol/protocol.json';
import { DIMS, Kind, DType, ScrollBatch } from './types';
import { VtpuError } from './errors';

/** Most dimensions a tensor shape may have (the store keeps ndim in a byte). */
export const MAX_NDIM = 32;

const KIND_BY_NAME = new Map<string, number>(Object.entries(schema.kinds));
const KIND_NAMES: string[] = [];
for (const [k, v] of KIND_BY_NAME) KIND_NAMES[v] = k;

const DTYPE_BY_NAME = new Map<string, number>();
const DTYPE_NAMES: string[] = [];
/** Element size in bytes per dtype code (0 for `none`). */
export const DTYPE_SIZES: readonly number[] = (() => {
  const sizes: number[] = [];
  for (const [name, d] of Object.entries(schema.dtypes)) {
    DTYPE_BY_NAME.set(name, d.code);
    DTYPE_NAMES[d.code] = name;
    sizes[d.code] = d.size;
  }
  return Object.freeze(sizes);
})();

/** Kind code for a wire name (`text`, `bytes`, `tensor`); E_DTYPE for anything else. */
export function kindCode(name: unknown): Kind {
  const k = typeof name === 'string' ? KIND_BY_NAME.get(name) : undefined;
  if (k === undefined || k === Kind.Missing) {
    throw new VtpuError('E_DTYPE', `unknown kind ${JSON.stringify(name)} (text, bytes or tensor)`);
  }
  return k as Kind;
}

/** Wire name of a kind code (`missing` for 0). */
export function kindName(code: number): string {
  const n = KIND_NAMES[code];
  if (n === undefined) throw new VtpuError('E_DTYPE', `unknown kind code ${code}`);
  return n;
}

/** Dtype code for a wire name; E_DTYPE for an unknown name. */
export function dtypeCode(name: unknown): DType {
  const d = typeof name === 'string' ? DTYPE_BY_NAME.get(name) : undefined;
  if (d === undefined) throw new VtpuError('E_DTYPE', `unknown dtype ${JSON.stringify(name)} (${[...DTYPE_BY_NAME.keys()].join(', ')})`);
  return d as DType;
}

/** Wire name of a dtype code. */
export function dtypeName(code: number): string {
  const n = DTYPE_NAMES[code];
  if (n === undefined) throw new VtpuError('E_DTYPE', `unknown dtype code ${code}`);
  return n;
}

/** Where a failing row sits, for messages. */
function at(row: number): string {
  return row < 0 ? '' : `row ${row}: `;
}

/**
 * Checks one scroll's metadata against its byte length. E_DTYPE: unknown kind/dtype, or a
 * dtype on a non-tensor; E_SHAPE: a shape on a non-tensor, bad dims, or bytes ≠ prod(shape)·size.
 * `row` (≥ 0) is named in the message.
 */
export function validateScroll(kind: number, dtype: number, shape: ArrayLike<number>, byteLength: number, row = -1): void {
  if (kind !== Kind.Text && kind !== Kind.Bytes && kind !== Kind.Tensor) {
    throw new VtpuError('E_DTYPE', `${at(row)}unknown kind code ${kind} (1 text, 2 bytes, 3 tensor)`);
  }
  if (kind !== Kind.Tensor) {
    if (dtype !== DType.None) throw new VtpuError('E_DTYPE', `${at(row)}dtype ${dtype} given on a ${KIND_NAMES[kind]} scroll`);
    if (shape.length !== 0) throw new VtpuError('E_SHAPE', `${at(row)}shape given on a ${KIND_NAMES[kind]} scroll`);
    return;
  }
  const size = dtype === DType.None ? undefined : DTYPE_SIZES[dtype];
  if (size === undefined) throw new VtpuError('E_DTYPE', `${at(row)}unknown tensor dtype code ${dtype}`);
  if (shape.length > MAX_NDIM) throw new VtpuError('E_SHAPE', `${at(row)}${shape.length} dims, at most ${MAX_NDIM}`);
  let elems = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new VtpuError('E_SHAPE', `${at(row)}dim ${i} = ${d} is not a non-negative integer`);
    }
    elems *= d;
  }
  if (elems * size !== byteLength) {
    throw new VtpuError('E_SHAPE', `${at(row)}shape [${Array.from(shape).join(', ')}] × ${size} B = ${elems * size} bytes, value has ${byteLength}`);
  }
}

/** Checks an offsets column: length n+1, starts at 0, never decreases, ends within `limit`. */
function validateOffsets(off: Int32Array, n: number, limit: number, what: string): void {
  if (!(off instanceof Int32Array) || off.length !== n + 1) {
    throw new VtpuError('E_SHAPE', `${what} must be an Int32Array of n+1 = ${n + 1} entries`);
  }
  if (off[0] !== 0) throw new VtpuError('E_SHAPE', `${what}[0] must be 0, got ${off[0]}`);
  for (let i = 0; i < n; i++) {
    if (off[i + 1] < off[i]) throw new VtpuError('E_SHAPE', `${what} decreases at row ${i}`);
  }
  if (off[n] > limit) throw new VtpuError('E_SHAPE', `${what} end ${off[n]} past its data (${limit})`);
}

/**
 * Checks a whole batch (columns, offsets, every row) so a bad batch is rejected before any
 * write. `needCoords` makes a missing coords column an E_PARAM.
 */
export function validateBatch(b: ScrollBatch, needCoords = false): void {
  if (b === null || typeof b !== 'object') throw new VtpuError('E_PARAM', 'scroll batch missing');
  const n = b.n;
  if (!Number.isInteger(n) || n < 0) throw new VtpuError('E_SHAPE', `batch row count ${n} is not a non-negative integer`);
  if (b.coords === undefined) {
    if (needCoords) throw new VtpuError('E_PARAM', 'scroll batch has no coords column');
  } else if (!(b.coords instanceof Uint32Array) || b.coords.length !== n * DIMS) {
    throw new VtpuError('E_SHAPE', `coords column must hold ${n}×${DIMS} uint32`);
  }
  if (!(b.kind instanceof Uint8Array) || b.kind.length < n) throw new VtpuError('E_SHAPE', `kind column must hold ${n} uint8`);
  if (!(b.dtype instanceof Uint8Array) || b.dtype.length < n) throw new VtpuError('E_SHAPE', `dtype column must hold ${n} uint8`);
  if (!(b.values instanceof Uint8Array)) throw new VtpuError('E_SHAPE', 'values column must be a Uint8Array');
  if (!(b.shapeValues instanceof Uint32Array)) throw new VtpuError('E_SHAPE', 'shapeValues column must be a Uint32Array');
  validateOffsets(b.valueOffsets, n, b.values.length, 'valueOffsets');
  validateOffsets(b.shapeOffsets, n, b.shapeValues.length, 'shapeOffsets');
  const { kind, dtype, shapeOffsets: so, shapeValues: sv, valueOffsets: vo } = b;
  for (let i = 0; i < n; i++) {
    const k = kind[i];
    // Fast path for the common text/bytes row; the full check names the problem otherwise.
    if ((k === Kind.Text || k === Kind.Bytes) && dtype[i] === 0 && so[i] === so[i + 1]) continue;
    validateScroll(k, dtype[i], sv.subarray(so[i], so[i + 1]), vo[i + 1] - vo[i], i);
  }
}
