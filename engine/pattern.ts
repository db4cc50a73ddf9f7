/**
 * Range patterns: each of the 9 components is `n`, `*`, or `[a:b]` (half-open, like a
 * Python slice; `[a:]` and `[:b]` leave an end open). A pattern is a box [lo, hi) per component.
 */
import { DIMS } from './types';
import { VtpuError } from './errors';
import { MAX_COMPONENT } from './coords';

/** Exclusive upper bound of the component space (2^32), what `*` means as `hi`. */
export const SPACE_END = 0x100000000;

/**
 * A parsed pattern: component d matches values v with lo[d] <= v < hi[d].
 * `hi` is a Float64Array because `*` needs 2^32, one past the uint32 range.
 */
export interface Pattern {
  lo: Uint32Array;
  hi: Float64Array;
}

function fail(text: string, reason: string): never {
  throw new VtpuError('E_PATTERN', `bad pattern ${JSON.stringify(text)}: ${reason}`);
}

function parseNumber(text: string, s: string, comp: number, max: number): number {
  if (!/^[0-9]+$/.test(s)) fail(text, `component ${comp + 1}: ${JSON.stringify(s)} is not n, *, or [a:b]`);
  const v = Number(s);
  if (v > max) fail(text, `component ${comp + 1}: ${s} out of range 0..${max}`);
  return v;
}

function parseComponent(text: string, s: string, comp: number, p: Pattern): void {
  if (s === '*') {
    p.lo[comp] = 0;
    p.hi[comp] = SPACE_END;
    return;
  }
  if (s.startsWith('[')) {
    if (!s.endsWith(']')) fail(text, `component ${comp + 1}: missing ']' in ${JSON.stringify(s)}`);
    const parts = s.slice(1, -1).split(':');
    if (parts.length !== 2) fail(text, `component ${comp + 1}: range must be [a:b], got ${JSON.stringify(s)}`);
    const a = parts[0] === '' ? 0 : parseNumber(text, parts[0], comp, MAX_COMPONENT);
    const b = parts[1] === '' ? SPACE_END : parseNumber(text, parts[1], comp, SPACE_END);
    if (!(a < b)) fail(text, `component ${comp + 1}: empty range ${s} (need a < b)`);
    p.lo[comp] = a;
    p.hi[comp] = b;
    return;
  }
  const v = parseNumber(text, s, comp, MAX_COMPONENT);
  p.lo[comp] = v;
  p.hi[comp] = v + 1;
}

/** Parses a pattern string; E_PATTERN names the bad component. */
export function parsePattern(text: string): Pattern {
  if (typeof text !== 'string') throw new VtpuError('E_PATTERN', `pattern must be a string, got ${typeof text}`);
  if (text.length === 0) fail(text, 'empty');
  const groups = text.split('/');
  if (groups.length !== 3) fail(text, `expected 3 '/'-separated groups, got ${groups.length}`);
  const comps = groups.flatMap((g) => g.split('.'));
  if (comps.length !== DIMS || groups.some((g) => g.split('.').length !== 3)) {
    fail(text, `expected ${DIMS} components as a.b.c/d.e.f/g.h.i, got ${comps.length}`);
  }
  const p: Pattern = { lo: new Uint32Array(DIMS), hi: new Float64Array(DIMS) };
  for (let d = 0; d < DIMS; d++) parseComponent(text, comps[d], d, p);
  return p;
}

/** True when row `i` of the flat coordinate array matches the pattern. */
export function matchesPattern(p: Pattern, coords: ArrayLike<number>, i: number): boolean {
  const b = i * DIMS;
  const lo = p.lo;
  const hi = p.hi;
  for (let d = 0; d < DIMS; d++) {
    const v = coords[b + d];
    if (v < lo[d] || v >= hi[d]) return false;
  }
  return true;
}

/** Component d of a pattern as text: `n`, `*`, or `[a:b]`. */
function formatComponent(p: Pattern, d: number): string {
  const lo = p.lo[d];
  const hi = p.hi[d];
  if (lo === 0 && hi === SPACE_END) return '*';
  if (hi === lo + 1) return String(lo);
  return `[${lo}:${hi === SPACE_END ? '' : hi}]`;
}

/** Formats a pattern back to its canonical text (round-trips through {@link parsePattern}). */
export function formatPattern(p: Pattern): string {
  const c: string[] = [];
  for (let d = 0; d < DIMS; d++) c.push(formatComponent(p, d));
  return `${c[0]}.${c[1]}.${c[2]}/${c[3]}.${c[4]}.${c[5]}/${c[6]}.${c[7]}.${c[8]}`;
}

/** The pattern for everything under a node: the first `level` components fixed, the rest `*`. */
export function patternFromPrefix(prefix: ArrayLike<number>, level: number): Pattern {
  if (!Number.isInteger(level) || level < 0 || level > DIMS) {
    throw new VtpuError('E_PARAM', `level must be an integer 0..${DIMS}, got ${level}`);
  }
  const p: Pattern = { lo: new Uint32Array(DIMS), hi: new Float64Array(DIMS) };
  for (let d = 0; d < DIMS; d++) {
    if (d < level) {
      p.lo[d] = prefix[d];
      p.hi[d] = prefix[d] + 1;
    } else {
      p.hi[d] = SPACE_END;
    }
  }
  return p;
}

/** True when component d is unconstrained (`*`). */
export function isWildcard(p: Pattern, d: number): boolean {
  return p.lo[d] === 0 && p.hi[d] === SPACE_END;
}
