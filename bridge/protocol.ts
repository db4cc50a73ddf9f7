/**
 * The wire protocol, loaded from protocol/protocol.json — the one schema both the
 * sidecar and the Python client read. Nothing here restates it; names, codes and
 * defaults are derived from the JSON so the two languages cannot drift. Kinds and dtypes
 * are read in engine/values.ts; which body each op takes, in the op's own file.
 *
 * The import compiles to dist/protocol/protocol.json (tsconfig includes the file),
 * so the relative path holds from bridge/*.ts under ts-jest and from dist/bridge/*.js.
 */
import schema from '../protocol/protocol.json';
import type { ErrorCode } from '../engine/errors';

/** The parsed protocol.json, typed as it is written. */
export const PROTOCOL = schema;

/** Protocol version carried in every header as `v`. */
export const VERSION: number = schema.version;

/** Every op name the protocol defines, in protocol.json order. */
export const OPS: readonly string[] = Object.freeze(Object.keys(schema.ops));

/** Every error code the protocol defines (client-side ones included). */
export const ERROR_CODES: readonly string[] = Object.freeze(Object.keys(schema.errors));

/** Server-side defaults from protocol.json, with the address template resolved by the caller. */
export const DEFAULTS = Object.freeze({
  maxRequestBytes: schema.defaults.max_request_bytes,
  maxBatch: schema.defaults.max_batch,
  maxLoopMs: schema.defaults.max_loop_ms,
  timeoutMs: schema.defaults.timeout_ms,
});

/** True when `code` is an error code the sidecar may put on the wire. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && ERROR_CODES.includes(code) && code !== 'E_TIMEOUT' && code !== 'E_CLOSED';
}
