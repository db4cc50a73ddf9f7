/** PHEXT_IMPORT / PHEXT_EXPORT through the engine's execute, as the sidecar calls them. */
import { formatCoord, parseCoord } from '../../../engine/coords';
import { Engine } from '../../../engine/engine';
import { PHEXT_EXPORT } from '../../../engine/ops/phext_export';
import { PHEXT_IMPORT } from '../../../engine/ops/phext_import';
import { checksum, initChecksum } from '../../../engine/phext';
import { DType, Kind } from '../../../engine/types';
import { loadVectors, utf8 } from './vectors';

const V = loadVectors();
const code = (k: string) => expect.objectContaining({ code: k });

/** An engine with the phext ops, whether or not engine/ops/index.ts registers them already. */
function engine(): Engine {
  const e = new Engine();
  for (const op of [PHEXT_IMPORT, PHEXT_EXPORT]) if (!e.opNames().includes(op.name)) e.register(op);
  return e;
}

const importPhext = (e: Engine, raw: Uint8Array) => e.execute('PHEXT_IMPORT', { params: {}, raw });
const exportPhext = (e: Engine, params: Record<string, unknown> = {}) => e.execute('PHEXT_EXPORT', { params });
const text = (e: Engine, c: string) => {
  const s = e.store.get(parseCoord(c));
  return s && { kind: s.kind, text: Buffer.from(s.bytes).toString('utf8') };
};

beforeAll(() => initChecksum());

describe('PHEXT_IMPORT', () => {
  test.each(V.explode.map((v, i) => [i, v] as const))('explode vector %i lands in the store as text', (_i, v) => {
    const e = engine();
    expect(importPhext(e, utf8(v.phext)).result).toEqual({ written: Object.keys(v.scrolls).length });
    expect(e.store.size).toBe(Object.keys(v.scrolls).length);
    for (const [c, t] of Object.entries(v.scrolls)) expect(text(e, c)).toEqual({ kind: Kind.Text, text: t });
  });

  test('an empty file writes nothing', () => {
    expect(importPhext(engine(), new Uint8Array(0)).result).toEqual({ written: 0 });
  });

  test('a bad file writes nothing at all', () => {
    const e = engine();
    const bad = new Uint8Array(1002).fill(0x17);
    bad.set(utf8('ok'), 0); // a good scroll first: must not be stored either
    bad[1001] = 0x61; // after 999 scroll breaks: scroll 1000
    expect(() => importPhext(e, bad)).toThrow(code('E_COORD'));
    expect(() => importPhext(e, Uint8Array.of(0x61, 0x17, 0xc3))).toThrow(code('E_PARAM'));
    expect(e.store.size).toBe(0);
  });

  test('without a raw body it is E_PARAM', () => {
    expect(() => engine().execute('PHEXT_IMPORT', { params: {} })).toThrow(code('E_PARAM'));
  });
});

describe('PHEXT_EXPORT', () => {
  test('implode vector 0 comes out byte for byte, with its checksum', async () => {
    const e = engine();
    const v = V.implode[0];
    const expected = utf8(v.phext!);
    importPhext(e, expected);
    const out = exportPhext(e);
    expect(Buffer.from(out.raw!)).toEqual(Buffer.from(expected));
    expect(out.result).toEqual({ n: Object.keys(v.scrolls).length, checksum: await checksum(expected) });
  });

  test('a pattern selects; the file is re-based at 1.1.1/1.1.1/1.1.1', () => {
    const e = engine();
    importPhext(e, utf8(V.explode[0].phext));
    const out = exportPhext(e, { pattern: '1.1.1/1.1.1/[2:10].*.*' });
    expect(out.result.n).toBe(1);
    expect(Buffer.from(out.raw!).toString()).toBe('\u0019four');
  });

  test('an empty store exports an empty file', () => {
    const out = exportPhext(engine());
    expect(out.result).toEqual({ n: 0, checksum: '99aa06d3014798d86001c324468d497f' });
    expect(out.raw).toHaveLength(0);
  });

  test('a non-text scroll is E_DTYPE; a coordinate outside 1..999 is E_COORD', () => {
    const e = engine();
    importPhext(e, utf8('a'));
    e.store.put(parseCoord('1.1.1/1.1.1/1.1.2'), 0, { kind: Kind.Bytes, dtype: DType.None, shape: [], bytes: Uint8Array.of(1) });
    expect(() => exportPhext(e)).toThrow(code('E_DTYPE'));
    expect(exportPhext(e, { pattern: '1.1.1/1.1.1/1.1.1' }).result.n).toBe(1);

    const f = engine();
    f.store.put(parseCoord('0.1.1/1.1.1/1.1.1'), 0, { kind: Kind.Text, dtype: DType.None, shape: [], bytes: utf8('x') });
    expect(() => exportPhext(f)).toThrow(code('E_COORD'));
  });

  test('a bad pattern is E_PATTERN; a non-string one E_PARAM', () => {
    expect(() => exportPhext(engine(), { pattern: '1.2' })).toThrow(code('E_PATTERN'));
    expect(() => exportPhext(engine(), { pattern: 7 })).toThrow(code('E_PARAM'));
  });

  test('import → export round-trips random normalised files', () => {
    let x = 7;
    const rand = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let t = 0; t < 50; t++) {
      const e = engine();
      const scrolls = new Map<string, string>();
      for (let k = 0; k < 10; k++) {
        const c = Array.from({ length: 9 }, () => 1 + Math.floor(rand() * (rand() < 0.8 ? 3 : 999)));
        scrolls.set(formatCoord(c), `s${t}.${k} é`);
      }
      const first = exportPhext(seed(e, scrolls));
      const g = engine();
      expect(importPhext(g, first.raw!).result).toEqual({ written: scrolls.size });
      const again = exportPhext(g);
      expect(Buffer.from(again.raw!)).toEqual(Buffer.from(first.raw!));
      expect(again.result).toEqual(first.result);
    }
  });
});

function seed(e: Engine, scrolls: Map<string, string>): Engine {
  for (const [c, t] of scrolls) e.store.put(parseCoord(c), 0, { kind: Kind.Text, dtype: DType.None, shape: [], bytes: utf8(t) });
  return e;
}
