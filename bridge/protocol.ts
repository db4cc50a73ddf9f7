/**
 * The wire protocol, loaded from pyclient/vtpu/protocol.json — the one schema both the
 * sidecar and the Python client read. Nothing here restates it; names, codes and
 * defaults are derived from the JSON so the two languages cannot drift.
 *
 * The import compiles to dist/pyclient/vtpu/protocol.json (tsconfig includes the file),
 * so the relative path holds from bridge/*.ts under ts-jest and from dist/bridge/*.js.
 */
import schema from '../pyclient/vtpu/protocol.json';
import type { ErrorCode } from '../engine/errors';

/** The parsed protocol.json, typed as it is written. */
export const PROTOCOL = schema;

/** Protocol version carried in every header as `v`. */
export const VERSION: number = schema.version;

/** Every op name the protocol defines, in protocol.json order. */
export const OPS: readonly string[] = Object.freeze(Object.keys(schema.ops));

/** Every error code the protocol defines (client-side ones included). */
export const ERROR_CODES: readonly string[] = Object.freeze(Object.keys(schema.errors));

/** Kind name → wire code (`missing` is 0). */
export const KINDS: Readonly<Record<string, number>> = Object.freeze({ ...schema.kinds });

/** Wire code → kind name. */
export const KIND_NAMES: readonly string[] = invert(KINDS);

/** Dtype name → {code, size}. */
export const DTYPES: Readonly<Record<string, { code: number; size: number }>> = Object.freeze(
  Object.fromEntries(Object.entries(schema.dtypes).map(([k, v]) => [k, Object.freeze({ ...v })])),
);

/** Wire code → dtype name. */
export const DTYPE_NAMES: readonly string[] = invert(
  Object.fromEntries(Object.entries(DTYPES).map(([k, v]) => [k, v.code])),
);

/** Server-side defaults from protocol.json, with the address template resolved by the caller. */
export const DEFAULTS = Object.freeze({
  maxRequestBytes: schema.defaults.max_request_bytes,
  maxBatch: schema.defaults.max_batch,
  timeoutMs: schema.defaults.timeout_ms,
});

/** Field names of each Arrow body schema, in order (`optional` fields may be absent). */
export const ARROW_FIELDS = Object.freeze({
  coords: schema.arrow.coords.fields.map((f) => f.name),
  scrolls: schema.arrow.scrolls.fields.map((f) => f.name),
  shards: schema.arrow.shards.fields.map((f) => f.name),
});

/** True when `code` is an error code the sidecar may put on the wire. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && ERROR_CODES.includes(code) && code !== 'E_TIMEOUT' && code !== 'E_CLOSED';
}

/** The body an op's request carries, decided from its params as protocol.json describes. */
export type BodyKind = 'none' | 'raw' | 'coords' | 'scrolls' | 'layout' | 'many';

/**
 * Which body a request for `op` with `params` carries. Batch forms (`params.batch`) take
 * an Arrow body; single CPUT and PHEXT_IMPORT take one raw frame; PROGRAM takes one body
 * per step whose params hold `{"body": true}`; compute ops naming `params.tensors` take
 * one raw body described by `params.layout` (bridge/tensor_layout.ts) or one scrolls body
 * of tensor rows (engine/tensors.ts).
 */
export function requestBody(op: string, params: Record<string, unknown>): BodyKind {
  const batch = params.batch === true;
  switch (op) {
    case 'CGET':
    case 'CDEL':
    case 'CDELTA':
    case 'CROUTE':
      return batch ? 'coords' : 'none';
    case 'CPUT':
      return batch ? 'scrolls' : 'raw';
    case 'PHEXT_IMPORT':
      return 'raw';
    case 'CATTEND':
    case 'CMOE':
    case 'CNEAREST':
    case 'CKG':
    case 'CEXPERTS':
      // Compute ops: named tensors travel as one raw body described by params.layout, or
      // as one scrolls body; coordinate batches as coords.
      if (params.tensors !== undefined) return params.layout !== undefined ? 'layout' : 'scrolls';
      return batch ? 'coords' : 'none';
    case 'PROGRAM':
      return 'many';
    case 'CSYNC':
      return params.step === 'apply' ? 'scrolls' : params.step === 'delete' ? 'coords' : 'none';
    default:
      return 'none';
  }
}

function invert(m: Readonly<Record<string, number>>): string[] {
  const out: string[] = [];
  for (const [name, code] of Object.entries(m)) out[code] = name;
  return out;
}
