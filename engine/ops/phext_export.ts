/** PHEXT_EXPORT: the scrolls matching a pattern out as one phext file, with its checksum. */
import type { EngineContext, Instruction } from '../instruction';
import { VtpuError } from '../errors';
import { parsePattern } from '../pattern';
import { batchToSlices, checksumSync, implodeSlices, initChecksum } from '../phext';
import type { OpInput, OpOutput } from '../types';

/** What an absent `pattern` exports: everything. */
export const ALL = '*.*.*/*.*.*/*.*.*';

// Start compiling the checksum WASM as soon as the op is loaded, so the first export finds it
// ready; a failure shows up there as E_INTERNAL. Servers should still await initChecksum().
initChecksum().catch(() => undefined);

/**
 * Ranges over `params.pattern` (default all) in coordinate order and implodes the scrolls.
 * Every matching scroll must be text (E_DTYPE) at a coordinate in 1..999 (E_COORD); nothing
 * is skipped silently. Result `{n, checksum}` (xxh3-128 hex of the bytes); body: the bytes.
 */
export const PHEXT_EXPORT: Instruction = {
  name: 'PHEXT_EXPORT',
  run(engine: EngineContext, input: OpInput): OpOutput {
    const pattern = parsePattern(patternParam(input.params.pattern));
    // The whole store is the most a range can return, so this limit never truncates.
    const limit = Math.max(engine.store.size, 1);
    const { batch, truncated } = engine.store.range(pattern, limit, true);
    if (truncated) throw new VtpuError('E_INTERNAL', 'PHEXT_EXPORT: the range was truncated');
    const slices = batchToSlices(batch);
    const raw = implodeSlices(slices);
    // n counts what the file holds: empty text scrolls leave no trace in a phext file.
    const n = slices.reduce((k, s) => k + (s.bytes.length > 0 ? 1 : 0), 0);
    return { result: { n, checksum: checksumSync(raw) }, raw };
  },
};

function patternParam(v: unknown): string {
  if (v === undefined) return ALL;
  if (typeof v !== 'string') {
    throw new VtpuError('E_PARAM', `PHEXT_EXPORT: pattern must be a string, got ${v === null ? 'null' : typeof v}`);
  }
  return v;
}
