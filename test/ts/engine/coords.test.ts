import { parseCoord, formatCoord, coordFromParam, compareCoords, validateCoordsArray, MAX_COMPONENT } from '../../../engine/coords';
import { parsePattern, formatPattern, matchesPattern, patternFromPrefix, SPACE_END } from '../../../engine/pattern';
import { Layout } from '../../../engine/layout';
import { code } from './helpers';

describe('coordinates', () => {
  test('parse and format round-trip', () => {
    const c = parseCoord('1.2.3/4.5.6/7.8.4294967295');
    expect(Array.from(c)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, MAX_COMPONENT]);
    expect(formatCoord(c)).toBe('1.2.3/4.5.6/7.8.4294967295');
    const flat = new Uint32Array(18);
    flat.set(c, 9);
    expect(formatCoord(flat, 1)).toBe('1.2.3/4.5.6/7.8.4294967295');
  });

  test.each([
    ['', /empty/],
    ['1.2.3/4.5.6/7.8', /got 8/],
    ['1.2.3/4.5.6/7.8.9.10', /more/],
    ['1.2.x/4.5.6/7.8.9', /non-digit/],
    ['1.2.3/4.5.6/7.8.4294967296', /out of range/],
    ['1.2.3.4.5.6/7.8.9', /expected '\/'/],
    ['1..3/4.5.6/7.8.9', /empty/],
    ['-1.2.3/4.5.6/7.8.9', /non-digit/],
  ])('parseCoord(%j) is E_COORD', (text, why) => {
    expect(code(() => parseCoord(text))).toBe('E_COORD');
    expect(() => parseCoord(text)).toThrow(why);
  });

  test('strict phext mode is 1..999', () => {
    expect(formatCoord(parseCoord('1.1.1/1.1.1/1.1.999', { phext: true }))).toBe('1.1.1/1.1.1/1.1.999');
    expect(code(() => parseCoord('0.1.1/1.1.1/1.1.1', { phext: true }))).toBe('E_COORD');
    expect(code(() => parseCoord('1.1.1/1.1.1/1.1.1000', { phext: true }))).toBe('E_COORD');
  });

  test('coordFromParam: string, array, errors', () => {
    expect(Array.from(coordFromParam([0, 0, 0, 0, 0, 0, 0, 0, 7]))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 7]);
    expect(formatCoord(coordFromParam('9.8.7/6.5.4/3.2.1'))).toBe('9.8.7/6.5.4/3.2.1');
    expect(code(() => coordFromParam(undefined))).toBe('E_PARAM');
    expect(code(() => coordFromParam(5))).toBe('E_PARAM');
    expect(code(() => coordFromParam([1, 2, 3]))).toBe('E_COORD');
    expect(code(() => coordFromParam([0, 0, 0, 0, 0, 0, 0, 0, -1]))).toBe('E_COORD');
    expect(code(() => coordFromParam([0, 0, 0, 0, 0, 0, 0, 0, 1.5]))).toBe('E_COORD');
    expect(code(() => coordFromParam('bad'))).toBe('E_COORD');
  });

  test('compareCoords is lexicographic over 9 words', () => {
    const a = new Uint32Array([0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(compareCoords(a, 0, a, 1)).toBeLessThan(0);
    expect(compareCoords(a, 1, a, 0)).toBeGreaterThan(0);
    expect(compareCoords(a, 1, a, 1)).toBe(0);
  });

  test('validateCoordsArray needs a multiple of 9', () => {
    expect(validateCoordsArray(new Uint32Array(27))).toBe(3);
    expect(code(() => validateCoordsArray(new Uint32Array(10)))).toBe('E_SHAPE');
  });
});

describe('patterns', () => {
  test('parse n, *, ranges, open ranges; format round-trips', () => {
    const p = parsePattern('1.*.[2:5]/*.*.*/[7:].[:3].9');
    expect(p.lo[0]).toBe(1);
    expect(p.hi[0]).toBe(2);
    expect(p.hi[1]).toBe(SPACE_END);
    expect([p.lo[2], p.hi[2]]).toEqual([2, 5]);
    expect([p.lo[6], p.hi[6]]).toEqual([7, SPACE_END]);
    expect(formatPattern(p)).toBe('1.*.[2:5]/*.*.*/[7:].[0:3].9');
    expect(formatPattern(parsePattern(formatPattern(p)))).toBe(formatPattern(p));
  });

  test.each(['', '*.*.*/*.*.*', '*.*.*/*.*.*/*.*', '[5:5].*.*/*.*.*/*.*.*', '[6:2].*.*/*.*.*/*.*.*', 'a.*.*/*.*.*/*.*.*',
    '[1:2.*.*/*.*.*/*.*.*', '[1:2:3].*.*/*.*.*/*.*.*', '4294967296.*.*/*.*.*/*.*.*'])('parsePattern(%j) is E_PATTERN', (t) => {
    expect(code(() => parsePattern(t))).toBe('E_PATTERN');
  });

  test('matchesPattern and patternFromPrefix', () => {
    const c = parseCoord('1.2.3/4.5.6/7.8.9');
    expect(matchesPattern(parsePattern('1.*.[3:4]/*.*.*/*.*.9'), c, 0)).toBe(true);
    expect(matchesPattern(parsePattern('1.*.[0:3]/*.*.*/*.*.9'), c, 0)).toBe(false);
    expect(formatPattern(patternFromPrefix(c, 2))).toBe('1.2.*/*.*.*/*.*.*');
    expect(formatPattern(patternFromPrefix(c, 0))).toBe('*.*.*/*.*.*/*.*.*');
    expect(code(() => patternFromPrefix(c, 10))).toBe('E_PARAM');
  });
});

describe('layout', () => {
  const L = new Layout('layer.head.pos/qkv.batch.embed/*.*.*', { qkv: ['query', 'key', 'value'] });

  test('coord, describe, pattern', () => {
    const c = L.coord({ layer: 3, head: 1, pos: 17, qkv: 'value', batch: 0, embed: 2 });
    expect(formatCoord(c)).toBe('3.1.17/2.0.2/0.0.0');
    expect(L.describe(c)).toEqual({ layer: 3, head: 1, pos: 17, qkv: 'value', batch: 0, embed: 2 });
    expect(L.pattern({ qkv: 'key' })).toBe('*.*.*/1.*.*/*.*.*');
    expect(L.pattern({ layer: 2, pos: [10, 20] })).toBe('2.*.[10:20]/*.*.*/*.*.*');
    expect(() => parsePattern(L.pattern({ layer: 2, pos: [10, 20] }))).not.toThrow();
  });

  test('errors', () => {
    expect(code(() => L.coord({ layer: 3, head: 1, pos: 17, qkv: 'value', batch: 0 }))).toBe('E_PARAM');
    expect(code(() => L.coord({ layer: 3, head: 1, pos: 17, qkv: 'nope', batch: 0, embed: 0 }))).toBe('E_COORD');
    expect(code(() => L.pattern({ bogus: 1 }))).toBe('E_PARAM');
    expect(code(() => L.pattern({ pos: [5, 5] }))).toBe('E_PATTERN');
    expect(code(() => new Layout('a.b.c/d.e.f/g.h'))).toBe('E_PARAM');
    expect(code(() => new Layout('a.a.c/d.e.f/*.*.*'))).toBe('E_PARAM');
    expect(code(() => new Layout('a.b.c/d.e.f/*.*.*', { zz: ['x'] }))).toBe('E_PARAM');
  });
});
