/** libphext conformance: every vector in shared/conformance/phext.json, plus round trips. */
import { formatCoord, parseCoord } from '../../../engine/coords';
import {
  checksum, checksumSync, explode, implode, initChecksum, type PhextScroll,
} from '../../../engine/phext';
import { loadVectors, utf8 } from './vectors';

const V = loadVectors();

/** Exploded scrolls as a plain object, keys in the order explode returned them. */
function asObject(scrolls: PhextScroll[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (const s of scrolls) o[formatCoord(s.coord)] = s.text;
  return o;
}

/** Object form → scrolls, through the phext coordinate parser. */
function fromObject(o: Record<string, string>): PhextScroll[] {
  return Object.entries(o).map(([k, text]) => ({ coord: parseCoord(k, { phext: true }), text }));
}

describe('explode vectors', () => {
  test.each(V.explode.map((v, i) => [i, v] as const))('vector %i', (_i, v) => {
    const got = explode(utf8(v.phext));
    expect(asObject(got)).toEqual(v.scrolls);
    // Coordinate order, exactly the vector's key order.
    expect(got.map((s) => formatCoord(s.coord))).toEqual(Object.keys(v.scrolls));
  });
});

describe('implode vectors', () => {
  test.each(V.implode.map((v, i) => [i, v] as const))('vector %i', (_i, v) => {
    const got = implode(fromObject(v.scrolls));
    if (v.phext !== undefined) expect(Buffer.from(got)).toEqual(Buffer.from(utf8(v.phext)));
    else expect(got.length).toBe(v.length);
    expect(v.phext !== undefined || v.length !== undefined).toBe(true);
    // And it reads back to the same scrolls.
    expect(asObject(explode(got))).toEqual(v.scrolls);
  });

  test('order of the input does not matter', () => {
    const v = V.implode[0];
    const scrolls = fromObject(v.scrolls).reverse();
    expect(Buffer.from(implode(scrolls))).toEqual(Buffer.from(utf8(v.phext!)));
  });
});

describe('checksum vectors', () => {
  beforeAll(() => initChecksum());
  test.each(Object.entries(V.checksum))('%s', async (text, hex) => {
    expect(await checksum(utf8(text))).toBe(hex);
    expect(checksumSync(utf8(text))).toBe(hex);
    expect(hex).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('round trips', () => {
  test.each(V.explode.map((v, i) => [i, v] as const))('implode(explode(x)) for explode vector %i', (_i, v) => {
    const bytes = utf8(v.phext);
    const again = implode(explode(bytes));
    // Normalised files (fewest breaks, no empty scrolls) come back byte for byte.
    if (isNormalised(v.phext)) expect(Buffer.from(again)).toEqual(Buffer.from(bytes));
    expect(asObject(explode(again))).toEqual(v.scrolls);
  });

  test('at least one explode vector is normalised (the byte-exact check above ran)', () => {
    expect(V.explode.filter((v) => isNormalised(v.phext)).length).toBeGreaterThan(0);
  });

  test('explode(implode(s)) == s for random scroll sets', () => {
    const rand = lcg(0x5eed);
    for (let trial = 0; trial < 300; trial++) {
      const s = randomScrolls(rand);
      const back = explode(implode(s));
      expect(asObject(back)).toEqual(asObject(sortScrolls(s)));
    }
  });
});

describe('phext coordinates', () => {
  test.each(V.coordinates.valid)('valid: %s', (text) => {
    const c = parseCoord(text, { phext: true });
    expect(c).toHaveLength(9);
    expect(formatCoord(c)).toBe(text);
  });
  test.each(V.coordinates.invalid_for_phext)('invalid: %j', (text) => {
    expect(() => parseCoord(text, { phext: true })).toThrow(expect.objectContaining({ code: 'E_COORD' }));
  });
});

/**
 * A file is normalised (what implode writes) when it does not end in a break and every run of
 * breaks goes from more to less significant: a less significant break followed by a more
 * significant one is wasted, since the latter resets it. Judged on the bytes, not via implode.
 */
function isNormalised(phext: string): boolean {
  const levels = [0x01, 0x1f, 0x1e, 0x1d, 0x1c, 0x1a, 0x19, 0x18, 0x17];
  let prev = -1;
  for (const ch of phext) {
    const level = levels.indexOf(ch.codePointAt(0)!);
    if (level < 0) { prev = -1; continue; }
    if (level < prev) return false;
    prev = level;
  }
  return prev === -1;
}

/** Deterministic PRNG so failures reproduce. */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** 0..12 scrolls at distinct random coordinates, components biased toward small values. */
function randomScrolls(rand: () => number): PhextScroll[] {
  const seen = new Set<string>();
  const out: PhextScroll[] = [];
  const n = Math.floor(rand() * 13);
  const alphabet = ['a', 'Z', ' ', '\n', 'é', '中', '😀', '\u0000', '\u007f', '\ufeff'];
  while (out.length < n) {
    const coord = new Uint32Array(9).map(() => (rand() < 0.7 ? 1 + Math.floor(rand() * 3) : 1 + Math.floor(rand() * 999)));
    const key = formatCoord(coord);
    if (seen.has(key)) continue;
    seen.add(key);
    const len = 1 + Math.floor(rand() * 8);
    let text = '';
    for (let i = 0; i < len; i++) text += alphabet[Math.floor(rand() * alphabet.length)];
    out.push({ coord, text });
  }
  return out;
}

function sortScrolls(s: PhextScroll[]): PhextScroll[] {
  return [...s].sort((a, b) => {
    for (let i = 0; i < 9; i++) if (a.coord[i] !== b.coord[i]) return a.coord[i] - b.coord[i];
    return 0;
  });
}
