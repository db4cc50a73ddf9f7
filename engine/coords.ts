/**
 * Coordinates: nine unsigned 32-bit components written `a.b.c/d.e.f/g.h.i`.
 * Batches keep coordinates flat (9 words per row) so every function here takes a row index.
 */
import { DIMS } from './types';
import { VtpuError } from './errors';

/** Largest engine component value (2^32 − 1). */
export const MAX_COMPONENT = 0xffffffff;
/** Smallest and largest component in strict phext mode. */
export const PHEXT_RANGE = Object.freeze({ min: 1, max: 999 });

/** Options for {@link parseCoord}. */
export interface ParseCoordOptions {
  /** Strict phext mode: every component must be 1..999. */
  phext?: boolean;
}

function fail(text: string, reason: string): never {
  throw new VtpuError('E_COORD', `bad coordinate ${JSON.stringify(text)}: ${reason}`);
}

/**
 * Parses `a.b.c/d.e.f/g.h.i` into 9 uint32 components.
 * Throws E_COORD naming the reason: empty, wrong count, non-digit, out of range.
 */
export function parseCoord(text: string, opts?: ParseCoordOptions): Uint32Array {
  if (typeof text !== 'string') throw new VtpuError('E_COORD', `coordinate must be a string, got ${typeof text}`);
  if (text.length === 0) fail(text, 'empty');
  const out = new Uint32Array(DIMS);
  let comp = 0;
  let value = 0;
  let digits = 0;
  for (let p = 0; p <= text.length; p++) {
    const ch = p < text.length ? text.charCodeAt(p) : -1;
    if (ch >= 48 && ch <= 57) {
      value = value * 10 + (ch - 48);
      digits++;
      // Fail as soon as it passes 2^32 - 1, long before doubles lose precision.
      if (value > MAX_COMPONENT) fail(text, `component ${comp + 1} out of range 0..${MAX_COMPONENT}`);
      continue;
    }
    const isDot = ch === 46;
    const isSlash = ch === 47;
    if (!isDot && !isSlash && ch !== -1) fail(text, `non-digit character ${JSON.stringify(text[p])} at ${p}`);
    if (digits === 0) fail(text, `component ${comp + 1} is empty`);
    if (comp >= DIMS) fail(text, `expected ${DIMS} components, got more`);
    out[comp++] = value;
    value = 0;
    digits = 0;
    if (ch === -1) break;
    // Groups of three: the separator after component 3 and 6 must be '/', the others '.'.
    const wantSlash = comp % 3 === 0;
    if (comp < DIMS && wantSlash !== isSlash) fail(text, `expected '${wantSlash ? '/' : '.'}' after component ${comp}`);
  }
  if (comp !== DIMS) fail(text, `expected ${DIMS} components (a.b.c/d.e.f/g.h.i), got ${comp}`);
  if (opts?.phext) checkPhextRange(out, 0, text);
  return out;
}

/** Throws E_COORD unless every component of row `row` lies in the phext range 1..999. */
export function checkPhextRange(c: ArrayLike<number>, row = 0, label?: string): void {
  const base = row * DIMS;
  for (let d = 0; d < DIMS; d++) {
    const v = c[base + d];
    if (v < PHEXT_RANGE.min || v > PHEXT_RANGE.max) {
      const name = label ?? formatCoord(c, row);
      throw new VtpuError('E_COORD', `coordinate ${name}: component ${d + 1} = ${v} outside phext range 1..999`);
    }
  }
}

/** Formats row `row` of a flat coordinate array as `a.b.c/d.e.f/g.h.i`. */
export function formatCoord(c: ArrayLike<number>, row = 0): string {
  const b = row * DIMS;
  return `${c[b]}.${c[b + 1]}.${c[b + 2]}/${c[b + 3]}.${c[b + 4]}.${c[b + 5]}/${c[b + 6]}.${c[b + 7]}.${c[b + 8]}`;
}

/**
 * Reads a coordinate op parameter: a string or an array of 9 integers.
 * Wrong type → E_PARAM; malformed or out-of-range → E_COORD. `what` names the parameter.
 */
export function coordFromParam(v: unknown, what = 'coord'): Uint32Array {
  if (typeof v === 'string') {
    try {
      return parseCoord(v);
    } catch (e) {
      throw new VtpuError('E_COORD', `${what}: ${(e as Error).message}`);
    }
  }
  if (!Array.isArray(v)) {
    throw new VtpuError('E_PARAM', `${what} must be a coordinate string or 9 integers, got ${v === null ? 'null' : typeof v}`);
  }
  if (v.length !== DIMS) throw new VtpuError('E_COORD', `${what} must have ${DIMS} components, got ${v.length}`);
  const out = new Uint32Array(DIMS);
  for (let d = 0; d < DIMS; d++) {
    const x = v[d];
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > MAX_COMPONENT) {
      throw new VtpuError('E_COORD', `${what} component ${d + 1} must be an integer 0..${MAX_COMPONENT}, got ${JSON.stringify(x)}`);
    }
    out[d] = x;
  }
  return out;
}

/** Lexicographic comparison of row `ai` of `a` with row `bi` of `b`: negative, 0 or positive. */
export function compareCoords(a: ArrayLike<number>, ai: number, b: ArrayLike<number>, bi: number): number {
  const x = ai * DIMS;
  const y = bi * DIMS;
  for (let d = 0; d < DIMS; d++) {
    const diff = a[x + d] - b[y + d];
    if (diff !== 0) return diff;
  }
  return 0;
}

/** Checks a flat coordinate column (9 words per row) and returns its row count; E_SHAPE otherwise. */
export function validateCoordsArray(coords: Uint32Array): number {
  if (!(coords instanceof Uint32Array)) throw new VtpuError('E_SHAPE', 'coords must be a Uint32Array');
  if (coords.length % DIMS !== 0) {
    throw new VtpuError('E_SHAPE', `coords length ${coords.length} is not a multiple of ${DIMS}`);
  }
  return coords.length / DIMS;
}
