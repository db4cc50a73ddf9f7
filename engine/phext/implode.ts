/** implode: scrolls → phext bytes with the fewest breaks, byte-exact with libphext. */
import { checkPhextRange, compareCoords, formatCoord } from '../coords';
import { VtpuError } from '../errors';
import { tick } from '../budget';
import { DIMS } from '../types';
import { BREAK_BYTES, COMPONENT_NAMES, findBreak } from './breaks';
import type { PhextScroll, PhextSlice } from './explode';

/**
 * Writes scrolls as one phext file: sorted by coordinate, the fewest breaks between them.
 * Empty scrolls are skipped (explode drops them, so writing their breaks would only add bytes).
 * @throws E_COORD for a coordinate outside 1..999; E_PARAM for text holding a break byte
 *   (it would move later scrolls) or for two scrolls at one coordinate.
 */
export function implode(scrolls: Iterable<PhextScroll>): Uint8Array {
  const enc = new TextEncoder();
  const slices: PhextSlice[] = [];
  for (const s of scrolls) slices.push({ coord: s.coord, bytes: enc.encode(s.text) });
  return implodeSlices(slices);
}

/** Like {@link implode}, for scrolls already held as UTF-8 bytes (the store's form). */
export function implodeSlices(slices: Iterable<PhextSlice>): Uint8Array {
  const sorted = validate(slices).sort((a, b) => compareCoords(a.coord, 0, b.coord, 0));
  checkDistinct(sorted);
  const out = new Uint8Array(totalLength(sorted));
  let at = 0;
  let cur: ArrayLike<number> = new Uint32Array(DIMS).fill(1);
  for (const s of sorted) {
    tick();
    at = writeBreaks(out, at, cur, s.coord);
    out.set(s.bytes, at);
    at += s.bytes.length;
    cur = s.coord;
  }
  return out;
}

/**
 * Break counts per component to move from `cur` to a later `next`: at the most significant
 * differing component d, next[d]-cur[d]; below it next[j]-1 (each break reset them to 1).
 */
export function breakCounts(cur: ArrayLike<number>, next: ArrayLike<number>): number[] {
  const counts: number[] = new Array(DIMS).fill(0);
  let d = 0;
  while (d < DIMS && cur[d] === next[d]) d++;
  if (d === DIMS) return counts;
  counts[d] = next[d] - cur[d];
  for (let j = d + 1; j < DIMS; j++) counts[j] = next[j] - 1;
  return counts;
}

/** Checks ranges and break bytes; returns the non-empty scrolls. */
function validate(slices: Iterable<PhextSlice>): PhextSlice[] {
  const kept: PhextSlice[] = [];
  for (const s of slices) {
    if (s.coord.length !== DIMS) {
      throw new VtpuError('E_COORD', `scroll coordinate has ${s.coord.length} components, not ${DIMS}`);
    }
    checkPhextRange(s.coord);
    if (s.bytes.length === 0) continue;
    const at = findBreak(s.bytes);
    if (at >= 0) {
      const b = s.bytes[at];
      throw new VtpuError('E_PARAM', `scroll ${formatCoord(s.coord)} holds a phext ${breakName(b)} break ` +
        `(byte 0x${b.toString(16).padStart(2, '0')} at offset ${at}); it would corrupt the file`);
    }
    kept.push(s);
  }
  return kept;
}

/** Rejects two scrolls at one coordinate (input is sorted). */
function checkDistinct(sorted: PhextSlice[]): void {
  for (let i = 1; i < sorted.length; i++) {
    if (compareCoords(sorted[i - 1].coord, 0, sorted[i].coord, 0) === 0) {
      throw new VtpuError('E_PARAM', `two scrolls at ${formatCoord(sorted[i].coord)}`);
    }
  }
}

/** Output size, so the file is written into one allocation. */
function totalLength(sorted: PhextSlice[]): number {
  let n = 0;
  let cur: ArrayLike<number> = new Uint32Array(DIMS).fill(1);
  for (const s of sorted) {
    for (const c of breakCounts(cur, s.coord)) n += c;
    n += s.bytes.length;
    cur = s.coord;
  }
  return n;
}

/** Writes the breaks from `cur` to `next` at `at`; returns the new offset. */
function writeBreaks(out: Uint8Array, at: number, cur: ArrayLike<number>, next: ArrayLike<number>): number {
  const counts = breakCounts(cur, next);
  for (let j = 0; j < DIMS; j++) {
    if (counts[j] === 0) continue;
    out.fill(BREAK_BYTES[j], at, at + counts[j]);
    at += counts[j];
  }
  return at;
}

function breakName(b: number): string {
  return COMPONENT_NAMES[BREAK_BYTES.indexOf(b)];
}
