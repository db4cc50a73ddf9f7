/** Wire error codes, one per failure family; the Python client maps each to an exception class. */
export type ErrorCode =
  | 'E_COORD' | 'E_PATTERN' | 'E_SHAPE' | 'E_DTYPE' | 'E_OP' | 'E_PARAM'
  | 'E_FRAME' | 'E_LIMIT' | 'E_AUTH' | 'E_INTERNAL' | 'E_OWNER' | 'E_PEER';

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
