/** Durable-test helpers: temp directories, store contents as a comparable map, writes. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../engine/store/store';
import { parsePattern } from '../../../engine/pattern';
import { DIMS, type ScrollBatch } from '../../../engine/types';

/** A fresh private directory; removed by the returned cleanup. */
export function tempDir(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'vtpu-durable-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Every scroll of `s` as "coords" -> "kind/dtype/shape/bytes-hex". */
export function dump(s: Store): Map<string, string> {
  const out = new Map<string, string>();
  if (s.size === 0) return out;
  const { batch: b } = s.range(parsePattern('*.*.*/*.*.*/*.*.*'), s.size, true);
  for (let i = 0; i < b.n; i++) {
    const key = Array.from(b.coords!.subarray(i * DIMS, (i + 1) * DIMS)).join('.');
    const shape = Array.from(b.shapeValues.subarray(b.shapeOffsets[i], b.shapeOffsets[i + 1])).join('x');
    const bytes = Buffer.from(b.values.subarray(b.valueOffsets[i], b.valueOffsets[i + 1])).toString('hex');
    out.set(key, `${b.kind[i]}/${b.dtype[i]}/${shape}/${bytes}`);
  }
  return out;
}

/** Coordinates 1.1.1/1.1.1/1.a.b as a flat row. */
export function coord(a: number, b: number): Uint32Array {
  return Uint32Array.of(1, 1, 1, 1, 1, 1, 1, a, b);
}

/** Writes a text scroll. */
export function putText(s: Store, a: number, b: number, text: string): void {
  s.put(coord(a, b), 0, { kind: 1, dtype: 0, shape: [], bytes: Buffer.from(text) });
}

/** A batch of `n` rows at 1.1.1/1.1.1/1.a.(1..n): a float32 tensor of shape [2] each. */
export function tensorBatch(a: number, n: number, seed: number): ScrollBatch {
  const coords = new Uint32Array(n * DIMS);
  const values = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    coords.set(coord(a, i + 1), i * DIMS);
    values[2 * i] = seed + i;
    values[2 * i + 1] = -seed * i;
  }
  const so = new Int32Array(n + 1);
  const vo = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) { so[i] = i; vo[i] = 8 * i; }
  return {
    n, coords, kind: new Uint8Array(n).fill(3), dtype: new Uint8Array(n).fill(1),
    shapeOffsets: so, shapeValues: new Uint32Array(n).fill(2), valueOffsets: vo, values: new Uint8Array(values.buffer),
  };
}
