/** The sidecar's pattern parser against the grammar both sides share (test/conformance/patterns.json). */
import { readFileSync } from 'fs';
import * as path from 'path';
import { formatPattern, parsePattern } from '../../../engine/pattern';
import { VtpuError } from '../../../engine/errors';

interface PatternCases {
  valid: { pattern: string; lo: number[]; hi: number[] }[];
  invalid: string[];
}

const cases = JSON.parse(readFileSync(path.resolve(__dirname, '..', '..', 'conformance', 'patterns.json'), 'utf8')) as PatternCases;

test.each(cases.valid.map((c) => [c.pattern, c] as const))('accepts %j with its box', (_t, c) => {
  const p = parsePattern(c.pattern);
  expect(Array.from(p.lo)).toEqual(c.lo);
  expect(Array.from(p.hi)).toEqual(c.hi);
  const again = parsePattern(formatPattern(p)); // the canonical text names the same box
  expect(Array.from(again.lo)).toEqual(c.lo);
  expect(Array.from(again.hi)).toEqual(c.hi);
});

test.each(cases.invalid)('refuses %j with E_PATTERN', (text) => {
  let err: unknown;
  try {
    parsePattern(text);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(VtpuError);
  expect((err as VtpuError).code).toBe('E_PATTERN');
});
