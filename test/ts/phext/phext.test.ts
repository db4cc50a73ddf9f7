/** Edge cases and errors of engine/phext beyond the shared conformance vectors. */
import { formatCoord } from '../../../engine/coords';
import {
  batchToSlices, breakCounts, explode, explodeSlices, implode, slicesToBatch,
} from '../../../engine/phext';
import { DType, Kind, type ScrollBatch } from '../../../engine/types';
import { utf8 } from './vectors';

const c = (...v: number[]) => Uint32Array.from(v);
const ONE = c(1, 1, 1, 1, 1, 1, 1, 1, 1);
const code = (k: string) => expect.objectContaining({ code: k });

describe('explode', () => {
  test('empty input and breaks only give no scrolls', () => {
    expect(explode(new Uint8Array(0))).toEqual([]);
    expect(explode(Uint8Array.of(0x17, 0x01, 0x18))).toEqual([]);
  });

  test('a leading BOM and control bytes that are not breaks stay content', () => {
    const [s] = explode(utf8('\ufeffa\nb\u0000\u001b'));
    expect(s.text).toBe('\ufeffa\nb\u0000\u001b');
  });

  test('a scroll past 999 is E_COORD; resetting past it is fine', () => {
    const breaks = new Uint8Array(999).fill(0x17);
    expect(() => explode(concat(breaks, utf8('x')))).toThrow(code('E_COORD'));
    expect(() => explode(concat(breaks, utf8('x')))).toThrow(/1\.1\.1\/1\.1\.1\/1\.1\.1000/);
    const ok = explode(concat(breaks, Uint8Array.of(0x18), utf8('x')));
    expect(formatCoord(ok[0].coord)).toBe('1.1.1/1.1.1/1.2.1');
  });

  test('invalid UTF-8 is E_PARAM naming the coordinate', () => {
    expect(() => explode(Uint8Array.of(0x61, 0x17, 0xff))).toThrow(code('E_PARAM'));
    expect(() => explode(Uint8Array.of(0x61, 0x17, 0xff))).toThrow(/1\.1\.1\/1\.1\.1\/1\.1\.2/);
  });

  test('slices are views into the input', () => {
    const src = utf8('ab\u0017cd');
    const [, s] = explodeSlices(src);
    expect(s.bytes.buffer).toBe(src.buffer);
    expect(Array.from(s.bytes)).toEqual([0x63, 0x64]);
  });
});

describe('implode', () => {
  test('no scrolls, or only empty ones, give an empty file', () => {
    expect(implode([])).toHaveLength(0);
    expect(implode([{ coord: c(3, 1, 1, 1, 1, 1, 1, 1, 1), text: '' }])).toHaveLength(0);
  });

  test('empty scrolls are skipped, not written as breaks', () => {
    const got = implode([
      { coord: c(1, 1, 1, 1, 1, 1, 1, 1, 3), text: '' },
      { coord: c(1, 1, 1, 1, 1, 1, 1, 2, 1), text: 'a' },
    ]);
    expect(Array.from(got)).toEqual([0x18, 0x61]);
  });

  test('a break byte in text is E_PARAM naming the coordinate', () => {
    const bad = [{ coord: c(1, 1, 1, 1, 1, 1, 1, 1, 7), text: 'a\u001ab' }];
    expect(() => implode(bad)).toThrow(code('E_PARAM'));
    expect(() => implode(bad)).toThrow(/1\.1\.1\/1\.1\.1\/1\.1\.7.*book/);
  });

  test.each([[0], [1000], [2 ** 32 - 1]])('component %i is E_COORD', (v) => {
    const coord = ONE.slice();
    coord[4] = v;
    expect(() => implode([{ coord, text: 'x' }])).toThrow(code('E_COORD'));
  });

  test('two scrolls at one coordinate are E_PARAM', () => {
    expect(() => implode([{ coord: ONE, text: 'a' }, { coord: ONE.slice(), text: 'b' }])).toThrow(code('E_PARAM'));
  });

  test('multi-byte text and the far corner of the space', () => {
    const far = c(999, 999, 999, 999, 999, 999, 999, 999, 999);
    const bytes = implode([{ coord: far, text: '😀' }, { coord: ONE, text: 'é' }]);
    expect(bytes.length).toBe(2 + 998 * 9 + 4);
    const back = explode(bytes);
    expect(back.map((s) => [formatCoord(s.coord), s.text])).toEqual([
      ['1.1.1/1.1.1/1.1.1', 'é'], ['999.999.999/999.999.999/999.999.999', '😀']]);
  });
});

describe('breakCounts', () => {
  test('most significant difference, then lower components from 1', () => {
    expect(breakCounts(c(1, 1, 1, 1, 1, 1, 1, 1, 5), c(1, 1, 1, 1, 1, 1, 1, 1, 9))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 4]);
    expect(breakCounts(c(1, 5, 9, 9, 9, 9, 9, 9, 9), c(1, 7, 1, 2, 1, 1, 1, 1, 3))).toEqual([0, 2, 0, 1, 0, 0, 0, 0, 2]);
    expect(breakCounts(ONE, ONE)).toEqual(new Array(9).fill(0));
  });
});

describe('batch conversion', () => {
  test('slices → batch → slices keeps coordinates and bytes', () => {
    const slices = explodeSlices(utf8('a\u0017\u0017bc\u0001é'));
    const batch = slicesToBatch(slices);
    expect(batch.n).toBe(3);
    expect(Array.from(batch.kind)).toEqual([Kind.Text, Kind.Text, Kind.Text]);
    expect(Array.from(batch.valueOffsets)).toEqual([0, 1, 3, 5]);
    const back = batchToSlices(batch);
    expect(back.map((s) => formatCoord(s.coord))).toEqual(slices.map((s) => formatCoord(s.coord)));
    expect(back.map((s) => Buffer.from(s.bytes).toString())).toEqual(['a', 'bc', 'é']);
  });

  test('a non-text row is E_DTYPE naming it; a batch without coords is E_PARAM', () => {
    const batch: ScrollBatch = { ...slicesToBatch(explodeSlices(utf8('a\u0017b'))), kind: Uint8Array.of(Kind.Text, Kind.Bytes) };
    expect(() => batchToSlices(batch)).toThrow(code('E_DTYPE'));
    expect(() => batchToSlices(batch)).toThrow(/1\.1\.1\/1\.1\.1\/1\.1\.2/);
    expect(() => batchToSlices({ ...batch, coords: undefined })).toThrow(code('E_PARAM'));
  });

  test('missing rows are skipped', () => {
    const batch = slicesToBatch(explodeSlices(utf8('a\u0017b')));
    batch.kind[0] = Kind.Missing;
    expect(batchToSlices(batch).map((s) => Buffer.from(s.bytes).toString())).toEqual(['b']);
    expect(batch.dtype[1]).toBe(DType.None);
  });
});

describe('checksum initialisation', () => {
  test('checksumSync before initChecksum is E_INTERNAL; after, it works', async () => {
    let mod!: typeof import('../../../engine/phext/checksum');
    jest.isolateModules(() => { mod = require('../../../engine/phext/checksum'); });
    expect(mod.checksumReady()).toBe(false);
    expect(() => mod.checksumSync(utf8('x'))).toThrow(code('E_INTERNAL'));
    await Promise.all([mod.initChecksum(), mod.initChecksum()]);
    expect(mod.checksumReady()).toBe(true);
    // xxh3-128 of no bytes (published XXH3_128bits("") value).
    expect(mod.checksumSync(new Uint8Array(0))).toBe('99aa06d3014798d86001c324468d497f');
  });
});

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => Array.from(p)));
}
