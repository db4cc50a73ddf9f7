/** explode: phext bytes → scrolls, byte-exact with libphext. */
import { isUtf8 } from 'buffer';
import { checkPhextRange, formatCoord } from '../coords';
import { VtpuError } from '../errors';
import { DIMS } from '../types';
import { BREAK_LEVEL } from './breaks';

/** One non-empty scroll as text. */
export interface PhextScroll {
  coord: Uint32Array;
  text: string;
}

/** One non-empty scroll as its UTF-8 bytes (a view into the source where possible). */
export interface PhextSlice {
  coord: Uint32Array;
  bytes: Uint8Array;
}

/**
 * Splits phext bytes into scrolls, in coordinate order. Starts at 1.1.1/1.1.1/1.1.1; a break
 * increments its component and resets every lower one to 1. Empty scrolls are dropped.
 * Returned `bytes` are views into `bytes` (no copy).
 * @throws E_COORD when a non-empty scroll lands outside 1..999; E_PARAM when one is not UTF-8.
 */
export function explodeSlices(bytes: Uint8Array): PhextSlice[] {
  const out: PhextSlice[] = [];
  // Plain numbers: a long run of breaks must not wrap silently before the range check.
  const cur: number[] = new Array(DIMS).fill(1);
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    const level = BREAK_LEVEL[bytes[i]];
    if (level < 0) continue;
    emit(out, cur, bytes, start, i);
    cur[level]++;
    for (let j = level + 1; j < DIMS; j++) cur[j] = 1;
    start = i + 1;
  }
  emit(out, cur, bytes, start, bytes.length);
  return out;
}

/** Like {@link explodeSlices}, with each scroll decoded to a string. */
export function explode(bytes: Uint8Array): PhextScroll[] {
  // ignoreBOM: a leading U+FEFF is content and must survive a round trip.
  const dec = new TextDecoder('utf-8', { ignoreBOM: true });
  return explodeSlices(bytes).map((s) => ({ coord: s.coord, text: dec.decode(s.bytes) }));
}

/** Records bytes[start..end) at `cur` unless empty. */
function emit(out: PhextSlice[], cur: number[], bytes: Uint8Array, start: number, end: number): void {
  if (end <= start) return;
  const coord = toCoord(cur);
  try {
    checkPhextRange(coord);
  } catch (e) {
    throw new VtpuError('E_COORD', `phext scroll at byte ${start}: ${(e as Error).message}`);
  }
  const view = bytes.subarray(start, end);
  if (!isUtf8(view)) {
    throw new VtpuError('E_PARAM', `phext scroll ${formatCoord(coord)} (byte ${start}) is not valid UTF-8`);
  }
  out.push({ coord, bytes: view });
}

/** Copies `cur` into a coordinate, saturating so an out-of-range value stays visibly out of range. */
function toCoord(cur: number[]): Uint32Array {
  const c = new Uint32Array(DIMS);
  for (let i = 0; i < DIMS; i++) c[i] = Math.min(cur[i], 0xffffffff);
  return c;
}
