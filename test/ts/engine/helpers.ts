/** Helpers shared by the engine suites. */
import { VtpuError } from '../../../engine/errors';

/** The error code a call throws (fails the test when it does not throw a VtpuError). */
export function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof VtpuError) return e.code;
    throw e;
  }
  throw new Error('expected a VtpuError');
}

export const enc = new TextEncoder();
export const dec = new TextDecoder();
