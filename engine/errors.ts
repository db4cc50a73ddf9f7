import type schema from '../protocol/protocol.json';

/**
 * Wire error codes, one per failure family: protocol.json's `errors`, less the two only
 * the client raises. The Python client maps each to an exception class.
 */
export type ErrorCode = Exclude<keyof typeof schema.errors, 'E_TIMEOUT' | 'E_CLOSED'>;

/**
 * The one error type the engine and bridge throw on bad input. `code` travels on the
 * wire; tests assert it.
 */
export class VtpuError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'VtpuError';
    this.code = code;
  }
}

/** Throws a {@link VtpuError} unless `ok`; message builders stay at the call site. */
export function check(ok: unknown, code: ErrorCode, message: () => string): asserts ok {
  if (!ok) throw new VtpuError(code, message());
}
